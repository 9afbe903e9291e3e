package gateway

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ssegateway/ssegateway/gateway/sseclient"
	"github.com/ssegateway/ssegateway/pubsub"
)

// TestServer_slowClient_evictedThenCatchesUp: a client that stops reading
// is evicted once its queue overflows, while another client on the same
// topic gets everything; the evicted client reconnects with the cursor of
// the last event it fully received and gets exactly the rest.
func TestServer_slowClient_evictedThenCatchesUp(t *testing.T) {
	n := startNode(t, Config{MaxQueueBytes: 64 << 10, WriteTimeout: time.Second}, pubsub.PublisherConfig{MaxDataBytes: 32 << 10})
	u, _ := url.Parse(eventsURL(n.url, "big"))

	// The slow client: sends its request and does not read.
	slow, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", u.RequestURI(), u.Host)
	n.waitStreams(t, 1)
	fast := subscribe(t, eventsURL(n.url, "big"), "")
	n.waitStreams(t, 2)

	const events = 400 // 400 x 16 KiB: far more than socket buffers hold
	payload := strings.Repeat("x", 16<<10)
	for i := range events {
		n.publish(t, "big", fmt.Sprintf("%d:%s", i, payload))
	}
	for i := range events {
		ev := fast.next(t)
		if !strings.HasPrefix(ev.Data, fmt.Sprintf("%d:", i)) {
			t.Fatalf("fast client: event %d is %.20q", i, ev.Data)
		}
	}
	waitFor(t, "slow client evicted", func() bool {
		return testGauge(n.srv.m.closed.WithLabelValues(closeSlow.String())) == 1
	})

	// The slow client reads what reached it — the response ends (after a
	// retry: hint when the node could still write one) — then resumes from
	// its cursor.
	_ = slow.SetReadDeadline(time.Now().Add(30 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(slow), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := sseclient.NewParser(res.Body, "")
	next := 0
	for {
		ev, err := p.Next()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the evicted stream never ended: %v", err)
			}
			break // io.EOF, or a cut connection after a failed write
		}
		if !strings.HasPrefix(ev.Data, fmt.Sprintf("%d:", next)) {
			t.Fatalf("slow client: event %d is %.20q", next, ev.Data)
		}
		next++
	}
	if next >= events {
		t.Fatalf("the slow client got all %d events before eviction; the test did not overflow its queue", next)
	}
	t.Logf("slow client received %d events before eviction, cursor %q", next, p.LastEventID)
	again := subscribe(t, eventsURL(n.url, "big"), p.LastEventID)
	for ; next < events; next++ {
		if ev := again.next(t); !strings.HasPrefix(ev.Data, fmt.Sprintf("%d:", next)) {
			t.Fatalf("after reconnect: want event %d, got %.20q", next, ev.Data)
		}
	}
}
