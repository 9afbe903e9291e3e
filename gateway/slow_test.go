package gateway

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
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

	slow := dialSlow(t, u)
	n.waitStreams(t, 1)
	fast := subscribe(t, eventsURL(n.url, "big"), "")
	n.waitStreams(t, 2)

	const events = 600 // 600 x 16 KiB: more than the server's 4 MiB send buffer and the client's 16 KiB
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
	deadline := time.Now().Add(15 * time.Second)
	// (Under the race detector the other client can be too slow as well: it
	// is then evicted too, and catches up on reconnect like any other.)
	for testGauge(n.srv.m.closed.WithLabelValues(closeSlow.String())) < 1 {
		if time.Now().After(deadline) {
			var reasons []string
			for r := closeClient; r <= closeRedis; r++ {
				reasons = append(reasons, fmt.Sprintf("%s=%v", r, testGauge(n.srv.m.closed.WithLabelValues(r.String()))))
			}
			t.Fatalf("slow client not evicted; streams closed: %v, open %v", reasons, testGauge(n.srv.m.open))
		}
		time.Sleep(5 * time.Millisecond)
	}

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

// dialSlow opens a stream of u as a client that sends its request and does
// not read. Its receive buffer is fixed before connecting (which also turns
// off autotuning), so the kernel cannot absorb a whole test's events.
func dialSlow(t *testing.T, u *url.URL) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
		})
		return errors.Join(err, serr)
	}}
	slow, err := d.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slow.Close() })
	fmt.Fprintf(slow, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", u.RequestURI(), u.Host)
	return slow
}

// TestServer_sendBuffer: with SendBuffer set, a stream's socket has that
// kernel send buffer (Linux reports twice the value set).
func TestServer_sendBuffer(t *testing.T) {
	n := startNode(t, Config{SendBuffer: 64 << 10}, pubsub.PublisherConfig{})
	subscribe(t, eventsURL(n.url, "sb"), "")
	n.waitStreams(t, 1)
	n.srv.streamsMu.Lock()
	var conn net.Conn
	for st := range n.srv.streams {
		conn = st.sink.(connSink).conn
	}
	n.srv.streamsMu.Unlock()
	raw, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var size int
	var serr error
	if err := raw.Control(func(fd uintptr) {
		size, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	}); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	if size != 2*(64<<10) {
		t.Errorf("SO_SNDBUF %d, want %d", size, 2*(64<<10))
	}
}
