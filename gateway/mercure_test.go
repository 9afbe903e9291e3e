package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/ssegateway/ssegateway/auth"
	"github.com/ssegateway/ssegateway/mercure"
	"github.com/ssegateway/ssegateway/pubsub"
)

// The Mercure endpoint through the handler, on miniredis, as a Mercure
// client sees it: Mercure's conformance cases, private updates, the
// publish statuses, resumption, where tokens come from, CORS, and active
// subscriptions.
//
// A check that an update does NOT reach a subscriber publishes, after it, a
// control update the subscriber does match, and waits for that: every
// update of the hub goes through one feed, delivered to each stream in the
// feed's order, so once the control has arrived an update published before
// it that has not arrived never will. No timed window is involved.

const (
	mercurePubKey = "the Mercure publishers' key, 32+ bytes"
	mercureSubKey = "the Mercure subscribers' key, 32+ bytes"
)

func keyVerifier(t testing.TB, key string) *auth.KeyVerifier {
	t.Helper()
	v, err := auth.NewKeyVerifier(auth.KeyConfig{Alg: "HS256", Key: []byte(key)})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// mercureJWT signs an HS256 token with key whose mercure claim is claim
// (none if nil), expiring at exp (never if zero).
func mercureJWT(t testing.TB, key string, claim map[string]any, exp time.Time) string {
	t.Helper()
	c := jwt.MapClaims{}
	if claim != nil {
		c["mercure"] = claim
	}
	if !exp.IsZero() {
		c["exp"] = exp.Unix()
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// pubToken may publish to the selectors given.
func pubToken(t testing.TB, publish ...string) string {
	return mercureJWT(t, mercurePubKey, map[string]any{"publish": publish}, time.Time{})
}

// subToken may receive the private updates of the selectors given.
func subToken(t testing.TB, subscribe ...string) string {
	return mercureJWT(t, mercureSubKey, map[string]any{"subscribe": subscribe}, time.Time{})
}

// startMercure runs a node with the Mercure endpoint: a publisher key, a
// subscriber key, anonymous subscribers allowed; edit changes that.
func startMercure(t *testing.T, cfg Config, edit func(mc *MercureConfig, rdb redis.Cmdable)) *testNode {
	t.Helper()
	return serveNode(t, buildNode(t, cfg, pubsub.PublisherConfig{}, func(o *nodeOptions) {
		o.mercure = func(rdb redis.Cmdable) *MercureConfig {
			mc := &MercureConfig{Publisher: keyVerifier(t, mercurePubKey), Subscriber: keyVerifier(t, mercureSubKey), Anonymous: true}
			if edit != nil {
				edit(mc, rdb)
			}
			return mc
		}
	}))
}

// hubURL is the hub's subscribe URL for the topic selectors.
func hubURL(base string, topics ...string) string {
	return base + mercure.HubPath + "?" + url.Values{"topic": topics}.Encode()
}

// update is a publish form.
func update(id, data string, topics ...string) url.Values {
	v := url.Values{"topic": topics, "data": {data}}
	if id != "" {
		v.Set("id", id)
	}
	return v
}

// posted is the hub's answer to a publish.
type posted struct {
	status      int
	contentType string
	body        string
}

// mercurePost posts form to the hub with the bearer token tok (none if
// ""), and extra headers as name, value pairs.
func (n *testNode) mercurePost(t testing.TB, tok string, form url.Values, header ...string) posted {
	t.Helper()
	return n.mercurePostBody(t, tok, "application/x-www-form-urlencoded", form.Encode(), header...)
}

func (n *testNode) mercurePostBody(t testing.TB, tok, contentType, body string, header ...string) posted {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.url+mercure.HubPath, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return posted{status: res.StatusCode, contentType: res.Header.Get("Content-Type"), body: string(b)}
}

// mercurePublish publishes form with a token allowed everything and returns
// the update's id.
func (n *testNode) mercurePublish(t testing.TB, form url.Values) string {
	t.Helper()
	p := n.mercurePost(t, pubToken(t, "*"), form)
	if p.status != http.StatusOK {
		t.Fatalf("publish %v: %d %q", form, p.status, p.body)
	}
	return p.body
}

// open waits for the collector's stream to open (its response headers).
func (c *collector) open(t *testing.T) {
	t.Helper()
	select {
	case <-c.opens:
	case <-c.done:
		t.Fatalf("client stopped: %v", c.err)
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the stream to open")
	}
}

// expect reads the collector's next events and checks their ids and data
// (as "id=data").
func (c *collector) expect(t *testing.T, want ...string) {
	t.Helper()
	for _, w := range want {
		ev := c.next(t)
		if got := ev.LastEventID + "=" + ev.Data; got != w || ev.Type != "message" {
			t.Fatalf("got %s event %s, want %s", ev.Type, got, w)
		}
	}
}

func randomHex(t testing.TB) string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TestMercure_CORSandHEAD: preflights of allowed origins are answered
// with credentials allowed and the headers an EventSource polyfill sends;
// other origins get nothing; HEAD answers a subscription's headers without
// opening a stream.
func TestMercure_CORSandHEAD(t *testing.T) {
	n := startMercure(t, Config{}, func(mc *MercureConfig, rdb redis.Cmdable) {
		mc.CORSOrigins = []string{"https://app.example"}
		mc.Subscriptions = true
		mc.Registry = testRegistry(t, rdb, "n1")
	})
	do := func(method, path string, header ...string) *http.Response {
		req, _ := http.NewRequest(method, n.url+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	for _, path := range []string{mercure.HubPath + "?topic=a", mercure.SubscriptionsPath, mercure.SubscriptionsPath + "/a/b"} {
		for _, m := range []string{"GET", "POST"} {
			res := do(http.MethodOptions, path, "Origin", "https://app.example", "Access-Control-Request-Method", m,
				"Access-Control-Request-Headers", "authorization,last-event-id,cache-control")
			allow := strings.ToLower(res.Header.Get("Access-Control-Allow-Headers"))
			if res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
				res.Header.Get("Access-Control-Allow-Credentials") != "true" || !strings.Contains(allow, "authorization") ||
				!strings.Contains(allow, "last-event-id") || !strings.Contains(allow, "cache-control") {
				t.Errorf("preflight %s %s: %d %v", m, path, res.StatusCode, res.Header)
			}
		}
		res := do(http.MethodOptions, path, "Origin", "https://evil.example", "Access-Control-Request-Method", "GET")
		if res.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight %s from a foreign origin allowed: %v", path, res.Header)
		}
	}
	res := do(http.MethodHead, mercure.HubPath+"?topic=a&lastEventID=x", "Origin", "https://app.example")
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" ||
		res.Header.Get("Last-Event-ID") != "x" || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(strings.ToLower(res.Header.Get("Access-Control-Expose-Headers")), "last-event-id") {
		t.Fatalf("HEAD: %d %v", res.StatusCode, res.Header)
	}
	if got := testGauge(n.srv.m.opened); got != 0 {
		t.Fatalf("HEAD opened %v streams", got)
	}
	// HEAD announces no subscriber either.
	regs, err := n.srv.mercure.cfg.Registry.List(context.Background())
	if err != nil || len(regs) != 0 {
		t.Fatalf("registry after HEAD: %v %v", regs, err)
	}
}

// testRegistry is a subscriptions registry on rdb for the node named node.
func testRegistry(t testing.TB, rdb redis.Cmdable, node string) *mercure.Registry {
	t.Helper()
	r, err := mercure.NewRegistry(rdb, mercure.RegistryConfig{Prefix: "t:", Node: node})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
