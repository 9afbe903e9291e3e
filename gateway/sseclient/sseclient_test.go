package sseclient

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// Cases from the WHATWG HTML standard's event stream interpretation rules.
func TestParser_Next_spec(t *testing.T) {
	cases := []struct {
		name, stream string
		want         []Event
		lastID       string
	}{
		{"two data lines", "data: YHOO\ndata: +2\ndata: 10\n\n", []Event{{"message", "YHOO\n+2\n10", ""}}, ""},
		{"comment and fields", ": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n",
			[]Event{{"message", "first event", "1"}, {"message", "second event", ""}, {"message", " third event", ""}}, ""},
		{"empty data", "data\n\ndata\ndata\n\ndata:", []Event{{"message", "", ""}, {"message", "\n", ""}}, ""},
		{"space handling", "data:test\n\ndata: test\n\n", []Event{{"message", "test", ""}, {"message", "test", ""}}, ""},
		{"CR and CRLF ends", "data: a\rdata: b\r\n\r\nevent: x\rdata: c\r\r", []Event{{"message", "a\nb", ""}, {"x", "c", ""}}, ""},
		{"BOM once", "\xEF\xBB\xBFdata: a\n\n\xEF\xBB\xBFdata: b\n\n", []Event{{"message", "a", ""}}, ""},
		{"id with NUL ignored", "id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", []Event{{"message", "a", "1"}, {"message", "b", "1"}}, "1"},
		{"id without data sets last id", "id: 7\n\n", nil, "7"},
		{"unterminated event dropped", "data: a\n\ndata: b", []Event{{"message", "a", ""}}, ""},
		{"unknown field ignored", "foo: bar\ndata: a\n\n", []Event{{"message", "a", ""}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(c.stream), iotest.OneByteReader(strings.NewReader(c.stream))} {
				p := NewParser(r, "")
				var got []Event
				for {
					ev, err := p.Next()
					if err != nil {
						break
					}
					got = append(got, ev)
				}
				if len(got) != len(c.want) {
					t.Fatalf("got %+v, want %+v", got, c.want)
				}
				for i := range got {
					if got[i] != c.want[i] {
						t.Fatalf("event %d: got %+v, want %+v", i, got[i], c.want[i])
					}
				}
				if p.LastEventID != c.lastID {
					t.Fatalf("last id %q, want %q", p.LastEventID, c.lastID)
				}
			}
		})
	}
}

func TestParser_Next_retry(t *testing.T) {
	p := NewParser(strings.NewReader("retry: 1500\nretry: x\nretry: -1\ndata: a\n\n"), "")
	if _, err := p.Next(); err != nil {
		t.Fatal(err)
	}
	if p.Retry.Milliseconds() != 1500 {
		t.Fatalf("retry %v", p.Retry)
	}
}
