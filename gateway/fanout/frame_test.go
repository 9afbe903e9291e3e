package fanout

import (
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/gateway/sseclient"
)

func TestAppendBody_golden(t *testing.T) {
	cases := []struct {
		name, typ, data, want string
	}{
		{"plain", "", "hello", "data: hello\n\n"},
		{"empty data", "", "", "data: \n\n"},
		{"typed", "tick", "1", "event: tick\ndata: 1\n\n"},
		{"LF", "", "a\nb", "data: a\ndata: b\n\n"},
		{"CR", "", "a\rb", "data: a\ndata: b\n\n"},
		{"CRLF", "", "a\r\nb", "data: a\ndata: b\n\n"},
		{"CR then LF apart", "", "a\r\rb\n\nc", "data: a\ndata: \ndata: b\ndata: \ndata: c\n\n"},
		{"trailing newline", "", "a\n", "data: a\ndata: \n\n"},
		{"only newlines", "", "\n\r\n", "data: \ndata: \ndata: \n\n"},
		{"leading space kept", "", " x", "data:  x\n\n"},
		{"colon in data", "", "k: v", "data: k: v\n\n"},
		{"unicode", "", "héllo 世界 🎉", "data: héllo 世界 🎉\n\n"},
		{"type with newline dropped", "a\nb", "x", "data: x\n\n"},
		{"reserved type dropped", "history-lost", "x", "data: x\n\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := string(AppendBody(nil, c.typ, c.data))
			if got != c.want {
				t.Fatalf("AppendBody(%q, %q) = %q, want %q", c.typ, c.data, got, c.want)
			}
		})
	}
}

// TestAppendBody_roundTrip decodes what the encoder writes with a parser
// written from the WHATWG standard and checks the data arrives intact, with
// line ends normalized to LF as the standard does.
func TestAppendBody_roundTrip(t *testing.T) {
	payloads := []string{
		"", "x", "\n", "\r", "\r\n", "a\nb\rc\r\nd", "\n\n\n", " lead", "  two", ":colon", "data: fake",
		"id: 5\n\nretry: 1", "tab\there", "nul\x00byte", "é世🎉", strings.Repeat("long ", 2000),
	}
	var stream []byte
	for i, p := range payloads {
		stream = append(stream, "id: "...)
		stream = contract.ID{Ms: uint64(i + 1)}.AppendTo(stream)
		stream = append(stream, '\n')
		stream = AppendBody(stream, "", p)
	}
	parser := sseclient.NewParser(strings.NewReader(string(stream)), "")
	for i, p := range payloads {
		ev, err := parser.Next()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		want := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(p)
		wantID := contract.ID{Ms: uint64(i + 1)}.String()
		if ev.Data != want || ev.Type != "message" || ev.LastEventID != wantID {
			t.Fatalf("event %d = %+v, want data %q", i, ev, want)
		}
	}
	if _, err := parser.Next(); err != io.EOF {
		t.Fatalf("after the last event: %v, want EOF", err)
	}
}

func TestFrame_forms(t *testing.T) {
	f := newFrame(&Event{ID: contract.ID{Ms: 17, Seq: 2}, Prev: contract.ID{Ms: 17, Seq: 1}, Topic: "orders/4\"2", Type: "t", Data: "d\n\"x\"\\\x01"})
	f.build(PlainForm{})
	if got, want := string(f.Bytes(PlainForm{})), "id: 17-2\nevent: t\ndata: d\ndata: \"x\"\\\x01\n\n"; got != want {
		t.Fatalf("plain %q, want %q", got, want)
	}
	if got := string(f.Body(PlainForm{})); got != "event: t\ndata: d\ndata: \"x\"\\\x01\n\n" {
		t.Fatalf("plain body %q", got)
	}
	f.build(NamedForm{})
	want := `id: 17-2` + "\n" + `event: t` + "\n" + `data: {"topic":"orders/4\"2","data":"d\n\"x\"\\\u0001"}` + "\n\n"
	if got := string(f.Bytes(NamedForm{})); got != want {
		t.Fatalf("named %q, want %q", got, want)
	}
	// The named form decodes, through the spec parser and JSON, to the topic
	// and the data exactly.
	ev, err := sseclient.NewParser(strings.NewReader(string(f.Bytes(NamedForm{}))), "").Next()
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Topic, Data string }
	if err := json.Unmarshal([]byte(ev.Data), &v); err != nil || v.Topic != "orders/4\"2" || v.Data != "d\n\"x\"\\\x01" {
		t.Fatalf("decoded %+v, %v", v, err)
	}
}

// TestWireFormat_noBareBlankLine checks the rule the stream depends on: the
// retry line and heartbeats never end an event, so they can never reset a
// browser's lastEventId to an empty id buffer.
func TestWireFormat_noBareBlankLine(t *testing.T) {
	stream := string(AppendRetry(nil, 2000)) + Heartbeat + Heartbeat
	p := sseclient.NewParser(strings.NewReader(stream+"id: 9-0\n\n"), "5-0")
	if _, err := p.Next(); err != io.EOF {
		t.Fatalf("Next = %v, want EOF (nothing dispatched)", err)
	}
	if p.LastEventID != "9-0" || p.Retry.Milliseconds() != 2000 {
		t.Fatalf("last id %q retry %v", p.LastEventID, p.Retry)
	}
	p = sseclient.NewParser(strings.NewReader(stream), "5-0")
	_, _ = p.Next()
	if p.LastEventID != "5-0" {
		t.Fatalf("retry and heartbeats changed the last event id to %q", p.LastEventID)
	}
}
