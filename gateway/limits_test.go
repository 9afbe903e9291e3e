package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

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
