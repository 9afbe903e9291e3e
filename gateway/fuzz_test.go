package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/gateway/sseclient"
	"github.com/ssegateway/ssegateway/pubsub"
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
		b = appendBody(b, typ, data)
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

// FuzzValidateTopic: a topic that passes validation can never move its hash
// tag or leave the prefix.
func FuzzValidateTopic(f *testing.F) {
	for _, s := range []string{"a", "a{b}", "}", "a\x00b", "a\nb", "*", "orders/42", strings.Repeat("x", 300)} {
		f.Add(s)
	}
	keys, _ := contract.NewKeys("p:")
	f.Fuzz(func(t *testing.T, topic string) {
		if contract.ValidateTopic(topic, 0) != nil {
			return
		}
		for _, k := range []string{keys.Stream(topic), keys.Last(topic), keys.Channel(topic), keys.Idempotency(topic, "k")} {
			if !strings.HasPrefix(k, "p:{"+topic+"}:") || strings.Count(k, "{") != 1 || strings.Count(k, "}") != 1 {
				t.Fatalf("topic %q gives key %q", topic, k)
			}
		}
		if got, ok := keys.TopicOf(keys.Channel(topic)); !ok || got != topic {
			t.Fatalf("channel of %q does not map back: %q", topic, got)
		}
	})
}

// FuzzPublishBody: any body gets a JSON answer with a 2xx or 4xx status,
// never a panic or a 5xx (Redis is up).
func FuzzPublishBody(f *testing.F) {
	for _, s := range []string{`{"topic":"a","data":"x"}`, `{"topic":"a","data":{"k":[1,2]}}`, `{}`, `[]`, `{"topic":"a{","data":1}`,
		`{"topic":"a","data":"x","type":"history-lost"}`, `{"topic":"a","data":"\ud800"}`, `nul`, "\x00", `{"topic":"a","data":"x"}{}`} {
		f.Add(s)
	}
	n := buildNode(f, Config{MaxPublishBytes: 4096}, pubsub.PublisherConfig{})
	h := n.srv.Handler()
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, "/publish", strings.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 || rec.Code < 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			t.Fatalf("body %q: %d %s", body, rec.Code, rec.Body)
		}
		if rec.Code == http.StatusOK {
			if _, err := contract.ParseID(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(rec.Body.String()), `{"id":"`), `"}`)); err != nil {
				t.Fatalf("200 without an id: %s", rec.Body)
			}
		}
	})
}
