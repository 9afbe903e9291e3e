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

// AppendNamedBody appends an event whose data carries its topic: the data
// becomes the JSON object {"topic": topic, "data": data}, data as a JSON
// string, on one data: line. Streams with pattern subscriptions write every
// event this way, so a browser learns each event's topic without parsing
// the application's payload; the type stays in the event: field.
func AppendNamedBody(b []byte, typ, topic, data string) []byte {
	if typ != "" && contract.ValidateType(typ) == nil {
		b = append(b, "event: "...)
		b = append(b, typ...)
		b = append(b, '\n')
	}
	b = append(b, `data: {"topic":`...)
	b = appendJSONString(b, topic)
	b = append(b, `,"data":`...)
	b = appendJSONString(b, data)
	return append(b, '}', '\n', '\n')
}

// appendJSONString appends s as a JSON string. s is valid UTF-8 (the
// contract refuses anything else); only quotes, backslashes and control
// characters are escaped, so CR and LF never reach the wire raw.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// Frame is one event of one source, encoded once per form it is written in
// and shared by every stream it goes to. It is immutable once the hub has
// handed it out.
type Frame struct {
	// ID is the event's id and Prev its predecessor's in the source.
	ID, Prev contract.ID
	// Topic is the event's topic.
	Topic string
	// Lost marks a loss of history found at the node: the events after Prev
	// are gone, and the source goes on after ID (which may lie before Prev
	// when Redis lost its data and ids started again). A lost frame has no
	// bytes; each stream writes its own history-lost event.
	Lost bool

	ev event
	// plain and named are "id: <event id>\n" followed by the body, without
	// and with the topic; each is built when a stream that wants it is
	// handed the frame, under the source's lock.
	plain, named []byte
	body         int // where the body starts in either (set before the frame is shared)
}

// Bytes is the whole event with the event's own id: what a stream whose
// cursor is that id writes. named picks the form with the topic.
func (f *Frame) Bytes(named bool) []byte {
	if named {
		return f.named
	}
	return f.plain
}

// Body is the event without its id line, for a stream that writes a cursor
// of its own before it.
func (f *Frame) Body(named bool) []byte { return f.Bytes(named)[f.body:] }

// event is one event of a source as the hub handles it.
type event struct {
	id, prev         contract.ID
	topic, typ, data string
}

func newFrame(ev event) *Frame {
	var idb [42]byte
	body := len("id: ") + len(ev.id.AppendTo(idb[:0])) + 1
	return &Frame{ID: ev.id, Prev: ev.prev, Topic: ev.topic, ev: ev, body: body}
}

// build makes the form a stream wants, once. The source's lock must be held.
func (f *Frame) build(named bool) {
	if f.Lost || (named && f.named != nil) || (!named && f.plain != nil) {
		return
	}
	ev := f.ev
	b := make([]byte, 0, 40+len(ev.typ)+len(ev.topic)+len(ev.data)+len(ev.data)/16)
	b = append(b, "id: "...)
	b = ev.id.AppendTo(b)
	b = append(b, '\n')
	if named {
		f.named = AppendNamedBody(b, ev.typ, ev.topic, ev.data)
	} else {
		f.plain = AppendBody(b, ev.typ, ev.data)
	}
}
