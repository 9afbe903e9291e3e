package gateway

import (
	"strconv"
	"strings"

	"github.com/ssegateway/ssegateway/contract"
)

// The SSE wire format (WHATWG HTML, "Server-sent events"). Two rules shape
// everything written here:
//   - A blank line dispatches an event and sets the EventSource's
//     lastEventId to the id buffer, which starts empty on every connection.
//     So no blank line is ever written without an id: field before it:
//     heartbeats are comment lines only, and the retry: line stands alone.
//   - A data value is cut at CR, LF and CRLF, so each line of the payload is
//     sent as its own data: field and the client joins them with LF.

// appendData appends the event type and data fields and the blank line that
// ends the event.
func appendBody(b []byte, typ, data string) []byte {
	if typ != "" && contract.ValidateType(typ) == nil {
		b = append(b, "event: "...)
		b = append(b, typ...)
		b = append(b, '\n')
	}
	for {
		i := strings.IndexAny(data, "\r\n")
		if i < 0 {
			break
		}
		b = append(b, "data: "...)
		b = append(b, data[:i]...)
		b = append(b, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	b = append(b, "data: "...)
	b = append(b, data...)
	return append(b, '\n', '\n')
}

// appendRetry appends a retry: field, without a blank line.
func appendRetry(b []byte, ms int64) []byte {
	b = append(b, "retry: "...)
	b = strconv.AppendInt(b, ms, 10)
	return append(b, '\n')
}

// heartbeat is a comment line: it keeps proxies from timing the stream out
// and dispatches nothing.
const heartbeat = ":\n"

// frame is one event of one topic, encoded once and shared by every
// subscriber on the node. It is immutable once built.
type frame struct {
	id, prev contract.ID
	// buf is "id: <event id>\n" followed by the body; single-topic streams
	// write it whole, multi-topic streams write their own id line and then
	// buf[body:].
	buf  []byte
	body int
	// lost marks a node-level history loss: the events between prev and id
	// are gone, and buf is empty.
	lost bool
}

func newFrame(ev event) *frame {
	b := make([]byte, 0, 32+len(ev.typ)+len(ev.data)+len(ev.data)/16)
	b = append(b, "id: "...)
	b = ev.id.AppendTo(b)
	b = append(b, '\n')
	body := len(b)
	b = appendBody(b, ev.typ, ev.data)
	return &frame{id: ev.id, prev: ev.prev, buf: b, body: body}
}

// event is one event of a topic as the hub handles it.
type event struct {
	id, prev  contract.ID
	typ, data string
}
