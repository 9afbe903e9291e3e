package fanout

import (
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/gateway/sseclient"
)

// FuzzAppendBody decodes what the encoder writes with the spec-following
// parser: the data and type must come back exactly (line ends normalized to
// LF, as the standard does), and the id must be the one written.
func FuzzAppendBody(f *testing.F) {
	for _, s := range []string{"", "x", "a\nb", "a\r\nb", "\r", "\n\n", " lead", ":colon", "data: x", "é世🎉", "id: 1\n\n"} {
		f.Add("t", s)
	}
	f.Fuzz(func(t *testing.T, typ, data string) {
		if !utf8.ValidString(data) {
			return // publishers refuse it; a browser would mangle it
		}
		b := []byte("id: 7-1\n")
		b = AppendBody(b, typ, data)
		p := sseclient.NewParser(strings.NewReader(string(b)), "")
		ev, err := p.Next()
		if err != nil {
			t.Fatalf("no event decoded from %q: %v", b, err)
		}
		want := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(data)
		wantType := "message"
		if typ != "" && contract.ValidateType(typ) == nil {
			wantType = typ
		}
		if ev.Data != want || ev.Type != wantType || ev.LastEventID != "7-1" {
			t.Fatalf("wrote %q/%q, decoded %+v", typ, data, ev)
		}
		if _, err := p.Next(); err != io.EOF {
			t.Fatalf("more than one event from %q", b)
		}
	})
}
