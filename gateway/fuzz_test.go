package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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
