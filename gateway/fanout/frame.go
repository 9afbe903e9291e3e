package fanout

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

// AppendBody appends the event type and data fields and the blank line that
// ends the event. A type the contract does not allow is left out.
func AppendBody(b []byte, typ, data string) []byte {
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

// AppendRetry appends a retry: field, without a blank line.
func AppendRetry(b []byte, ms int64) []byte {
	b = append(b, "retry: "...)
	b = strconv.AppendInt(b, ms, 10)
	return append(b, '\n')
}

// Heartbeat is a comment line: it keeps proxies from timing the stream out
// and dispatches nothing.
const Heartbeat = ":\n"

// Frame is one event of one source, encoded once and shared by every stream
// it goes to. It is immutable once the hub has handed it out.
type Frame struct {
	// ID is the event's id and Prev its predecessor's in the source.
	ID, Prev contract.ID
	// Lost marks a loss of history found at the node: the events after Prev
	// are gone, and the source goes on after ID (which may lie before Prev
	// when Redis lost its data and ids started again). A lost frame has no
	// bytes; each stream writes its own history-lost event.
	Lost bool
	// buf is "id: <event id>\n" followed by the body.
	buf  []byte
	body int
}

// Bytes is the whole event with the event's own id: what a stream whose
// cursor is that id writes.
func (f *Frame) Bytes() []byte { return f.buf }

// Body is the event without its id line, for a stream that writes a cursor
// of its own before it.
func (f *Frame) Body() []byte { return f.buf[f.body:] }

// event is one event of a source as the hub handles it.
type event struct {
	id, prev  contract.ID
	typ, data string
}

func newFrame(ev event) *Frame {
	b := make([]byte, 0, 32+len(ev.typ)+len(ev.data)+len(ev.data)/16)
	b = append(b, "id: "...)
	b = ev.id.AppendTo(b)
	b = append(b, '\n')
	body := len(b)
	b = AppendBody(b, ev.typ, ev.data)
	return &Frame{ID: ev.id, Prev: ev.prev, buf: b, body: body}
}
