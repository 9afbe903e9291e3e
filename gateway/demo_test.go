package gateway

import (
	"bytes"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"testing"

	jsclient "github.com/ssegateway/ssegateway/clients/js"
	"github.com/ssegateway/ssegateway/pubsub"
)

func TestServer_client_servesModules(t *testing.T) {
	n := startNode(t, Config{}, pubsub.PublisherConfig{})
	get := func(path string, hdr ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, n.url+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, b
	}

	// Every module the entry point imports is served, as a module script.
	want, err := fs.ReadFile(jsclient.Files(), "index.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"index.js", "wire.js", "cursor.js", "policy.js"} {
		res, body := get("/client/" + name)
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
			t.Fatalf("/client/%s: %d %q", name, res.StatusCode, res.Header.Get("Content-Type"))
		}
		if name == "index.js" && !bytes.Equal(body, want) {
			t.Fatal("/client/index.js differs from clients/js/src/index.js")
		}
		for _, imp := range strings.Split(string(body), "\n") {
			if rest, ok := strings.CutPrefix(imp, "import "); ok && !strings.Contains(rest, `from "./`) {
				t.Errorf("%s imports something other than its siblings: %s", name, imp)
			}
		}
	}

	// Unchanged: 304, so browsers revalidate cheaply.
	res, _ := get("/client/index.js")
	if res, _ := get("/client/index.js", "If-None-Match", res.Header.Get("ETag")); res.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation: %d, want 304", res.StatusCode)
	}
	for _, path := range []string{"/client/", "/client/nope.js", "/client/../demo.go", "/client/%2e%2e/demo.go"} {
		if res, _ := get(path); res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, res.StatusCode)
		}
	}

	// The demo page uses the client, and can still use EventSource.
	_, page := get("/")
	for _, s := range []string{`import { connect } from "/client/index.js"`, "new EventSource("} {
		if !bytes.Contains(page, []byte(s)) {
			t.Errorf("the demo page lacks %s", s)
		}
	}
}
