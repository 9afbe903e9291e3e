package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ssegateway/ssegateway/auth"
	"github.com/ssegateway/ssegateway/internal/testutil"
	"github.com/ssegateway/ssegateway/pubsub"
)

// TestServer_maxConnections: over the limit a stream gets a 200 that ends at
// once with a retry hint (never an error status, which would stop an
// EventSource for good); under it again, streams are accepted.
func TestServer_maxConnections(t *testing.T) {
	n := startNode(t, Config{MaxConnections: 2}, pubsub.PublisherConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func(c context.Context) *http.Response {
		req, _ := http.NewRequestWithContext(c, http.MethodGet, eventsURL(n.url, "a"), nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	first := open(ctx)
	defer first.Body.Close()
	secondCtx, closeSecond := context.WithCancel(ctx)
	second := open(secondCtx)
	defer second.Body.Close()
	n.waitStreams(t, 2)
	third := open(ctx)
	body, _ := io.ReadAll(third.Body)
	third.Body.Close()
	if third.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "retry: ") || strings.Contains(string(body), "id:") {
		t.Fatalf("over the limit: %d %q, want 200 with only a retry hint", third.StatusCode, body)
	}
	if got := testGauge(n.srv.m.closed.WithLabelValues(closeLimit.String())); got != 1 {
		t.Fatalf("closed{limit} = %v", got)
	}
	closeSecond()
	n.waitStreams(t, 1)
	again := open(ctx)
	defer again.Body.Close()
	n.waitStreams(t, 2)
}

func TestServer_publishRateLimit(t *testing.T) {
	n := startNode(t, Config{PublishRate: 1, PublishBurst: 2}, pubsub.PublisherConfig{})
	var codes []int
	var last *http.Response
	for range 3 {
		res, err := http.Post(n.url+"/publish", "application/json", strings.NewReader(`{"topic":"a","data":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		codes = append(codes, res.StatusCode)
		last = res
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != http.StatusTooManyRequests {
		t.Fatalf("statuses %v, want 200 200 429", codes)
	}
	if ra := last.Header.Get("Retry-After"); ra != "1" {
		t.Fatalf("Retry-After %q", ra)
	}
	time.Sleep(1100 * time.Millisecond)
	res, err := http.Post(n.url+"/publish", "application/json", strings.NewReader(`{"topic":"a","data":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("after a second: %d", res.StatusCode)
	}
}

func TestServer_headerLimits(t *testing.T) {
	n := startNode(t, Config{ReadHeaderTimeout: 200 * time.Millisecond, MaxHeaderBytes: 4096, MaxTopics: 1}, pubsub.PublisherConfig{})
	u := strings.TrimPrefix(n.url, "http://")
	// Slowloris: headers that never finish are cut off.
	conn, err := net.Dial("tcp", u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /events?topic=a HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatalf("the server did not close a connection whose headers never ended: %v", err)
	}
	// Oversized headers.
	req, _ := http.NewRequest(http.MethodGet, n.url+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("x", 8192))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("oversized headers: %d, want 431", res.StatusCode)
	}
	// A limit refusal is counted.
	res, err = http.Get(eventsURL(n.url, "a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 400 || testGauge(n.srv.m.limited.WithLabelValues(limitTopics)) != 1 {
		t.Fatalf("too many topics: %d, counted %v", res.StatusCode, testGauge(n.srv.m.limited.WithLabelValues(limitTopics)))
	}
}

// openCounted opens a stream and reads until its checkpoint (served) or its
// end (refused with a retry hint). A served stream stays open until ctx ends.
func openCounted(t *testing.T, ctx context.Context, u string, header map[string]string) (served bool) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d: every refusal by a limit must be a 200 with a retry hint", res.StatusCode)
	}
	br := bufio.NewReader(res.Body)
	var body strings.Builder
	for {
		line, err := br.ReadString('\n')
		body.WriteString(line)
		if strings.HasPrefix(line, "id: ") {
			t.Cleanup(func() { res.Body.Close() })
			return true
		}
		if err != nil {
			res.Body.Close()
			if !strings.HasPrefix(body.String(), "retry: ") {
				t.Fatalf("a refused stream sent %q, want only a retry hint", body.String())
			}
			return false
		}
	}
}

func subjectToken(t *testing.T, sub string, subscribe []string) string {
	t.Helper()
	return signToken(t, auth.Claims{Subject: sub, Expires: time.Now().Add(time.Hour).Unix(), SSE: &auth.SSEClaim{Subscribe: subscribe}})
}

// TestServer_maxStreamsPerClient: anonymous sockets from one address to a
// public topic cannot take every stream slot of the node: past their
// client's limit they get a 200 with a retry hint, and an authenticated user
// (limited per subject) is still served. The slot frees when a stream ends.
func TestServer_maxStreamsPerClient(t *testing.T) {
	n := startNode(t, Config{Auth: testVerifier(t), PublicTopics: mustPatterns(t, "pub/*"), MaxConnections: 10, MaxStreamsPerClient: 4},
		pubsub.PublisherConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	firstCtx, firstCancel := context.WithCancel(ctx)
	defer firstCancel()
	anonymous := 0
	for i := range 10 {
		sctx := ctx
		if i == 0 {
			sctx = firstCtx
		}
		if openCounted(t, sctx, eventsURL(n.url, "pub/x"), nil) {
			anonymous++
		}
	}
	if anonymous != 4 {
		t.Fatalf("%d anonymous streams from one address served, want 4", anonymous)
	}
	if got := testGauge(n.srv.m.limited.WithLabelValues(limitStreamsPerClient)); got != 6 {
		t.Fatalf("limit_refusals_total{streams_per_client} = %v, want 6", got)
	}
	// An authenticated user from the same address is counted apart.
	alice := bearerHeader(subjectToken(t, "alice", []string{"orders/*"}))
	for i := range 5 {
		if served := openCounted(t, ctx, eventsURL(n.url, "orders/1", "pub/x"), alice); served != (i < 4) {
			t.Fatalf("alice's stream %d: served %v", i, served)
		}
	}
	// Another user is not held back by alice's streams, and the node's own
	// limit still applies on top: 4 + 4 + 2 = 10.
	bob := bearerHeader(subjectToken(t, "bob", []string{"orders/*"}))
	for i := range 3 {
		if served := openCounted(t, ctx, eventsURL(n.url, "orders/2"), bob); served != (i < 2) {
			t.Fatalf("bob's stream %d: served %v", i, served)
		}
	}
	if got := testGauge(n.srv.m.limited.WithLabelValues(limitConnections)); got != 1 {
		t.Fatalf("limit_refusals_total{connections} = %v, want 1", got)
	}
	// A stream ends: its client's slot is free again.
	firstCancel()
	testutil.WaitFor(t, "the first stream to end", func() bool { return testGauge(n.srv.m.open) == 9 })
	if !openCounted(t, ctx, eventsURL(n.url, "pub/y"), nil) {
		t.Fatal("an anonymous stream was refused after one of the address's streams ended")
	}
}
