package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/pubsub"
)

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

// FuzzJSONText: a JSON string that POST /publish accepts decodes without
// any replacement: every U+FFFD in the result was asked for, as a \ufffd
// escape or as the character itself; and what it refuses, encoding/json
// would have altered.
func FuzzJSONText(f *testing.F) {
	for _, s := range []string{`"x"`, `"\ud800"`, `"\ud83d\ude00"`, `"\\ud800"`, "\"\xff\"", `"\ufffd"`, "\"\xef\xbf\xbd\"", `"\udc00\ud800"`, `"\u00e9\n"`, `"\\ufffd"`, `"\\\uFFFD"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, lit string) {
		var want string
		if json.Unmarshal([]byte(lit), &want) != nil || !strings.HasPrefix(lit, `"`) {
			return // not a JSON string: the decoder refuses it before jsonText
		}
		got, herr := jsonText("data", json.RawMessage(lit))
		asked := askedReplacements(lit)
		if herr != nil {
			if strings.Count(want, "\ufffd") == asked {
				t.Fatalf("%q refused (%s), but decodes to %q without a replacement", lit, herr.msg, want)
			}
			return
		}
		if got != want || strings.Count(got, "\ufffd") != asked || !utf8.ValidString(got) {
			t.Fatalf("%q accepted as %q (encoding/json: %q)", lit, got, want)
		}
	})
}

// askedReplacements counts the U+FFFD a JSON string literal asks for: \ufffd
// escapes, and the character itself.
func askedReplacements(lit string) int {
	n := strings.Count(lit, "\ufffd")
	for i := 0; i < len(lit); i++ {
		if lit[i] != '\\' || i+1 >= len(lit) {
			continue
		}
		if lit[i+1] == 'u' && i+6 <= len(lit) && strings.EqualFold(lit[i+2:i+6], "fffd") {
			n++
		}
		i++ // the escaped character, which may be a backslash
	}
	return n
}
