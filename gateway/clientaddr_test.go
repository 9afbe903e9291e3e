package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ssegateway/ssegateway/internal/testutil"
	"github.com/ssegateway/ssegateway/pubsub"
)

// streamLogClient opens a stream with the headers given, closes it, and
// returns the "client" field of the node's "stream opened" log line.
func streamLogClient(t *testing.T, n *testNode, logs *lockedBuffer, header map[string]string) string {
	t.Helper()
	before := len(logs.String())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, eventsURL(n.url, "a"), nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("stream: %d", res.StatusCode)
	}
	var client string
	testutil.WaitFor(t, "the stream's log line", func() bool {
		for _, line := range strings.Split(logs.String()[before:], "\n") {
			var rec struct{ Message, Client string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Message == "stream opened" {
				client = rec.Client
				if len(line) > 512 {
					t.Errorf("a log line of %d bytes: %.200s…", len(line), line)
				}
				return true
			}
		}
		return false
	})
	return client
}

func postWith(t *testing.T, base string, header map[string]string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/publish", strings.NewReader(`{"topic":"a","data":"x"}`))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// TestServer_clientAddress_headersNotBelieved: with no trusted proxies,
// X-Forwarded-For and X-Real-IP change nothing: a publisher without a
// subject cannot reset its rate limit with a new header on every request,
// and a 20 KB header does not reach the log.
func TestServer_clientAddress_headersNotBelieved(t *testing.T) {
	var logs lockedBuffer
	n := serveNode(t, buildNode(t, Config{PublishRate: 0.01, PublishBurst: 1}, pubsub.PublisherConfig{},
		func(o *nodeOptions) { o.logger = zerolog.New(&logs) }))
	if code := postWith(t, n.url, map[string]string{"X-Forwarded-For": "198.51.100.1"}); code != http.StatusOK {
		t.Fatalf("first publish: %d", code)
	}
	for _, h := range []map[string]string{
		{"X-Forwarded-For": "198.51.100.2"},
		{"X-Real-IP": "198.51.100.3"},
		{"X-Forwarded-For": "198.51.100.4, 127.0.0.1", "X-Real-IP": "198.51.100.5"},
	} {
		if code := postWith(t, n.url, h); code != http.StatusTooManyRequests {
			t.Errorf("publish with %v: %d, want 429: the header reset the rate limit", h, code)
		}
	}
	big := strings.Repeat("f", 20<<10)
	if got := streamLogClient(t, n, &logs, map[string]string{"X-Forwarded-For": big, "X-Real-IP": big}); got != "127.0.0.1" {
		t.Errorf("logged client %.80q, want the socket's 127.0.0.1", got)
	}
}

// TestServer_clientAddress_trustedProxy: behind a trusted proxy, the client
// is the rightmost X-Forwarded-For address that is not a trusted proxy, and
// per-client limits follow it.
func TestServer_clientAddress_trustedProxy(t *testing.T) {
	var logs lockedBuffer
	n := serveNode(t, buildNode(t, Config{PublishRate: 0.01, PublishBurst: 1,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}},
		pubsub.PublisherConfig{}, func(o *nodeOptions) { o.logger = zerolog.New(&logs) }))
	for xff, want := range map[string]string{
		"203.0.113.7":               "203.0.113.7",
		"198.51.100.1, 203.0.113.7": "203.0.113.7", // a client's own header, then what the proxy saw
		"203.0.113.7, 10.1.2.3":     "203.0.113.7", // two proxies deep
		"2001:db8::1":               "2001:db8::1",
		"not-an-address":            "127.0.0.1", // unreadable: the peer
		strings.Repeat("203.0.113.7, ", 1000) + "203.0.113.8": "203.0.113.8",
		"203.0.113.7, " + strings.Repeat("x", 9):              "127.0.0.1",
	} {
		if got := streamLogClient(t, n, &logs, map[string]string{"X-Forwarded-For": xff}); got != want {
			t.Errorf("X-Forwarded-For %.40q: client %q, want %q", xff, got, want)
		}
	}
	// Two clients behind the proxy have a rate limit each.
	for _, ip := range []string{"203.0.113.1", "203.0.113.2"} {
		if code := postWith(t, n.url, map[string]string{"X-Forwarded-For": ip}); code != http.StatusOK {
			t.Errorf("first publish from %s: %d", ip, code)
		}
	}
	if code := postWith(t, n.url, map[string]string{"X-Forwarded-For": "203.0.113.1"}); code != http.StatusTooManyRequests {
		t.Errorf("second publish from 203.0.113.1: %d, want 429", code)
	}
}

// TestIPExtractor_untrustedPeer: a peer outside the trusted networks is the
// client, whatever it claims.
func TestIPExtractor_untrustedPeer(t *testing.T) {
	ex := ipExtractor([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	for _, tc := range []struct{ peer, xff, want string }{
		{"198.51.100.9:1234", "203.0.113.7", "198.51.100.9"},
		{"192.168.1.1:1234", "203.0.113.7", "192.168.1.1"}, // private, but not configured
		{"127.0.0.1:1234", "203.0.113.7", "127.0.0.1"},     // loopback, likewise
		{"10.0.0.5:1234", "203.0.113.7", "203.0.113.7"},
		{"10.0.0.5:1234", "", "10.0.0.5"},
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = tc.peer
		if tc.xff != "" {
			req.Header.Set("X-Forwarded-For", tc.xff)
		}
		req.Header.Set("X-Real-IP", "192.0.2.1")
		if got := ex(req); got != tc.want {
			t.Errorf("peer %s, XFF %q: %q, want %q", tc.peer, tc.xff, got, tc.want)
		}
	}
}

func TestAddrKey(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.7":          "addr:203.0.113.7",
		"::ffff:203.0.113.7":   "addr:203.0.113.7",
		"2001:db8:1:2:3:4:5:6": "addr:2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "addr:2001:db8:1:2::/64",
		"fe80::1%eth0":         "addr:fe80::/64",
		"":                     "addr:",
	} {
		if got := addrKey(in); got != want {
			t.Errorf("addrKey(%q) = %q, want %q", in, got, want)
		}
	}
}
