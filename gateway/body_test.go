package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssegateway/ssegateway/pubsub"
)

// guard bounds how long a test waits on a socket before it declares the
// server stuck. It is far above every timeout configured in these tests:
// without the fixes, the server holds these sockets forever.
const guard = 20 * time.Second

// rawRequest opens a TCP connection to the node and sends head (a request
// line and headers, without the blank line that ends them) and then the
// start of a body.
func rawRequest(t *testing.T, n *testNode, head, bodyStart string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, head+"\r\nHost: gw\r\n\r\n"+bodyStart); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(guard))
	return conn
}

// answer reads the response on conn, then checks that the server closes the
// connection (rather than wait for the rest of the body).
func answer(t *testing.T, conn net.Conn) (*http.Response, string) {
	t.Helper()
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no response while the body is pending: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the server kept the connection open after answering")
		}
	}
	return res, string(body)
}

// TestServer_publish_tokenCheckedBeforeBody: a publish without a valid
// publishing token is refused while its body is still on the way, and the
// connection is closed: a client without a token cannot hold a socket by
// sending a body slowly.
func TestServer_publish_tokenCheckedBeforeBody(t *testing.T) {
	// Body deadlines far beyond the test's guard: only the order matters.
	n := startNode(t, Config{Auth: testVerifier(t), BodyTimeout: time.Hour, MinBodyRate: -1}, pubsub.PublisherConfig{})
	subscriber := token(t, []string{"a"}, nil, time.Now().Add(time.Hour))
	for _, tc := range []struct {
		name, header string
		status       int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"bad token", "\r\nAuthorization: Bearer nope", http.StatusUnauthorized},
		{"a token that grants no publishing", "\r\nAuthorization: Bearer " + subscriber, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := rawRequest(t, n, "POST /publish HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 1000"+tc.header, `{"topic":`)
			res, body := answer(t, conn)
			if res.StatusCode != tc.status {
				t.Fatalf("%d %s, want %d", res.StatusCode, body, tc.status)
			}
		})
	}
}

// TestServer_bodyTimeout: a body that does not arrive within BodyTimeout is
// cut off with 408 and its connection closed, on POST /publish and on a
// route that never reads a body (net/http would otherwise wait for the rest
// of it before answering).
func TestServer_bodyTimeout(t *testing.T) {
	n := startNode(t, Config{BodyTimeout: 300 * time.Millisecond, MinBodyRate: -1}, pubsub.PublisherConfig{})
	conn := rawRequest(t, n, "POST /publish HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 1000", `{"topic":"a","data":"`)
	res, body := answer(t, conn)
	if res.StatusCode != http.StatusRequestTimeout || !strings.Contains(body, "did not arrive within 300ms") {
		t.Fatalf("publish with a stalled body: %d %s, want 408", res.StatusCode, body)
	}
	if got := testGauge(n.srv.m.limited.WithLabelValues(limitBodyTimeout)); got != 1 {
		t.Fatalf("limit_refusals_total{body_timeout} = %v", got)
	}
	for _, req := range [][2]string{
		{"GET /healthz HTTP/1.1\r\nContent-Length: 1000", "x"},
		{"POST /nowhere HTTP/1.1\r\nContent-Length: 1000", "x"},
		{"GET /readyz HTTP/1.1\r\nTransfer-Encoding: chunked", "3e8\r\nx"},
	} {
		answer(t, rawRequest(t, n, req[0], req[1]))
	}
	// A body sent in time is served, and the connection stays usable.
	conn = rawRequest(t, n, "POST /publish HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 24", `{"topic":"a","data":"x"}`)
	br := bufio.NewReader(conn)
	for i := range 2 {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d on one connection: %v", i, err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d", i, res.StatusCode)
		}
		fmt.Fprintf(conn, "POST /publish HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 24\r\n\r\n{\"topic\":\"a\",\"data\":\"y\"}")
	}
}

// TestServer_minBodyRate: a body that trickles in slower than MinBodyRate
// is cut off once the grace has passed, long before BodyTimeout; one sent in
// pieces at a fair rate is served.
func TestServer_minBodyRate(t *testing.T) {
	n := startNode(t, Config{BodyTimeout: time.Hour, BodyRateGrace: 200 * time.Millisecond, MinBodyRate: 100}, pubsub.PublisherConfig{})
	conn := rawRequest(t, n, "POST /publish HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 1000", `{"topic":"a","data":"`)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { // 10 bytes a second
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if _, err := conn.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	})
	res, body := answer(t, conn)
	cancel()
	wg.Wait()
	if res.StatusCode != http.StatusRequestTimeout || !strings.Contains(body, "slower than 100 bytes per second") {
		t.Fatalf("a trickled body: %d %s, want 408", res.StatusCode, body)
	}

	conn = rawRequest(t, n, "POST /publish HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 24", `{"topic":`)
	for _, part := range []string{`"a","da`, `ta":"x"}`} {
		if _, err := io.WriteString(conn, part); err != nil {
			t.Fatal(err)
		}
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("a body in pieces: %d %s", res.StatusCode, b)
	}
}

// slowPublisher takes a while to answer, as Redis under load may.
type slowPublisher struct {
	Publisher
	delay time.Duration
}

func (p slowPublisher) Publish(ctx context.Context, m pubsub.Message) (string, error) {
	select {
	case <-time.After(p.delay):
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return p.Publisher.Publish(ctx, m)
}

// TestServer_bodyTimeout_notOnRedis: the body deadline bounds the body
// only: a publish whose body is in waits for Redis as long as Redis takes
// (the deadline must not outlive the body and cancel the request).
func TestServer_bodyTimeout_notOnRedis(t *testing.T) {
	n := serveNode(t, buildNode(t, Config{BodyTimeout: 200 * time.Millisecond, MinBodyRate: -1}, pubsub.PublisherConfig{},
		func(o *nodeOptions) {
			o.publisher = func(p *pubsub.Publisher) Publisher { return slowPublisher{p, time.Second} }
		}))
	res, err := http.Post(n.url+"/publish", "application/json", strings.NewReader(`{"topic":"a","data":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("a publish slower than the body timeout: %d %s", res.StatusCode, b)
	}
}
