package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssegateway/ssegateway/gateway/sseclient"
	"github.com/ssegateway/ssegateway/internal/testutil"
	"github.com/ssegateway/ssegateway/pubsub"
)

// TestServer_drain_inWaves: on shutdown the node turns unready at once,
// refuses new streams with a 200 that ends with a retry hint, and closes the
// open streams spread over the drain period rather than all together.
func TestServer_drain_inWaves(t *testing.T) {
	const streams = 20
	period := time.Second
	n := startNode(t, Config{DrainPeriod: period}, pubsub.PublisherConfig{})
	ended := make([]time.Time, streams)
	var wg sync.WaitGroup
	for i := range streams {
		res, err := http.Get(eventsURL(n.url, "a"))
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			ended[i] = time.Now()
			if !strings.Contains(string(body), "\nretry: ") {
				t.Errorf("stream %d ended without a retry hint: %q", i, body)
			}
		})
	}
	n.waitStreams(t, streams)
	start := time.Now()
	go n.stop()
	testutil.WaitFor(t, "draining", n.srv.draining.Load)
	res, err := http.Get(n.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz %d while draining", res.StatusCode)
	}
	late, err := http.Get(eventsURL(n.url, "a"))
	if err == nil {
		body, _ := io.ReadAll(late.Body)
		late.Body.Close()
		if late.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "retry: ") {
			t.Fatalf("a stream opened while draining got %d %q, want 200 with only a retry hint", late.StatusCode, body)
		}
	}
	wg.Wait()
	slices.SortFunc(ended, func(a, b time.Time) int { return a.Compare(b) })
	first, last := ended[0].Sub(start), ended[streams-1].Sub(start)
	t.Logf("streams ended between %v and %v after shutdown began", first.Round(time.Millisecond), last.Round(time.Millisecond))
	if last-first < period/2 {
		t.Fatalf("streams ended within %v of each other; the drain should spread them over %v", last-first, period)
	}
	n.stop()
	if got := testGauge(n.srv.m.closed.WithLabelValues(closeShutdown.String())); got != streams+1 {
		t.Fatalf("closed{shutdown} = %v, want %d", got, streams+1)
	}
}

// TestServer_maxConnectionAge: streams end after the maximum age with a
// retry hint, and a client that reconnects with its cursor loses nothing.
func TestServer_maxConnectionAge(t *testing.T) {
	n := startNode(t, Config{MaxConnectionAge: 150 * time.Millisecond, Retry: 20 * time.Millisecond}, pubsub.PublisherConfig{})
	var opens int
	var mu sync.Mutex
	var got []string
	cl := &sseclient.Client{URL: eventsURL(n.url, "age"), Retry: 10 * time.Millisecond,
		OnOpen: func() { mu.Lock(); opens++; mu.Unlock() }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- cl.Run(ctx, func(ev sseclient.Event) error { mu.Lock(); got = append(got, ev.Data); mu.Unlock(); return nil })
	}()
	n.waitStreams(t, 1)
	const events = 120
	for i := range events {
		n.publish(t, "age", fmt.Sprint(i))
		time.Sleep(5 * time.Millisecond) // 600ms of publishing: several ages
	}
	testutil.WaitFor(t, "all events", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= events })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for i, d := range got {
		if d != fmt.Sprint(i) {
			t.Fatalf("event %d is %q: lost or duplicated across reconnects", i, d)
		}
	}
	if len(got) != events || opens < 3 {
		t.Fatalf("%d events over %d connections, want %d over several", len(got), opens, events)
	}
	if testGauge(n.srv.m.closed.WithLabelValues(closeMaxAge.String())) < 2 {
		t.Fatal("no stream closed for max age")
	}
}
