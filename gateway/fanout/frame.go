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

// Event is one event of a source as the hub handles it. Indexes and forms
// read it; they may keep what they derive from it in Meta. It is guarded by
// its source's lock until its frame is handed out, and read-only after.
type Event struct {
	ID, Prev contract.ID
	// Topic is the event's topic: the source's name for a topic, the name
	// the feed's envelope carries for a feed.
	Topic, Type, Data string
	// Meta is what an index or a form made of the event for the others (a
	// decoded payload), so it is made once.
	Meta any
}

// Form is how a stream writes events: a frame is encoded once per form its
// streams use, when the first stream of that form is handed it. Forms are
// compared as values (==), so they must be comparable.
type Form interface {
	// AppendEvent appends ev as it goes on the wire: its id: line first,
	// then its fields and the blank line that dispatches it.
	AppendEvent(b []byte, ev *Event) []byte
}

// PlainForm writes an event as published: "id: <event id>", then the
// event: and data: fields.
type PlainForm struct{}

// AppendEvent implements Form.
func (PlainForm) AppendEvent(b []byte, ev *Event) []byte {
	return AppendBody(appendIDLine(b, ev.ID), ev.Type, ev.Data)
}

// NamedForm writes an event with its topic in its data (see
// [AppendNamedBody]): the form of streams with pattern subscriptions.
type NamedForm struct{}

// AppendEvent implements Form.
func (NamedForm) AppendEvent(b []byte, ev *Event) []byte {
	return AppendNamedBody(appendIDLine(b, ev.ID), ev.Type, ev.Topic, ev.Data)
}

func appendIDLine(b []byte, id contract.ID) []byte {
	b = append(b, "id: "...)
	b = id.AppendTo(b)
	return append(b, '\n')
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

	ev *Event
	// encs are the forms built, all before any stream is handed the frame
	// (under the source's lock); one holds the first, so that a source
	// whose streams share one form (nearly all) allocates no slice for it.
	encs []encoding
	one  [1]encoding
	body int // where the body starts after the id line of the built-in forms
}

type encoding struct {
	form Form
	b    []byte
}

// Bytes is the whole event in form: what a stream whose cursor is the
// event's own id (or that writes no cursor of its own) writes.
func (f *Frame) Bytes(form Form) []byte {
	for _, e := range f.encs {
		if e.form == form {
			return e.b
		}
	}
	return nil
}

// Body is the event without its id line, for a stream that writes a cursor
// of its own before it; only for [PlainForm] and [NamedForm].
func (f *Frame) Body(form Form) []byte { return f.Bytes(form)[f.body:] }

func newFrame(ev *Event) *Frame {
	var idb [42]byte
	body := len("id: ") + len(ev.ID.AppendTo(idb[:0])) + 1
	f := &Frame{ID: ev.ID, Prev: ev.Prev, Topic: ev.Topic, ev: ev, body: body}
	f.encs = f.one[:0]
	return f
}

// build makes the frame in form, once. The source's lock must be held, and
// no stream may have been handed the frame yet.
func (f *Frame) build(form Form) {
	if f.Lost || f.Bytes(form) != nil {
		return
	}
	ev := f.ev
	b := make([]byte, 0, 40+len(ev.Type)+len(ev.Topic)+len(ev.Data)+len(ev.Data)/16)
	f.encs = append(f.encs, encoding{form: form, b: form.AppendEvent(b, ev)})
}
