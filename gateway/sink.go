package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// sink is where a stream's bytes go: each write is sent at once.
type sink interface {
	write(b []byte) (int, error)
	setWriteDeadline(t time.Time) error
}

// responseSink writes through net/http: HTTP/2 streams, and anything that
// cannot be taken over.
type responseSink struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (s responseSink) write(b []byte) (int, error) {
	n, err := s.w.Write(b)
	if err == nil {
		err = s.rc.Flush()
	}
	return n, err
}

func (s responseSink) setWriteDeadline(t time.Time) error { return s.rc.SetWriteDeadline(t) }

// connSink owns an HTTP/1.x connection taken over from net/http after the
// request: the stream's bytes go straight to the socket, with no chunk
// framing, no extra buffer copy and no flush, and the response ends by
// closing the connection (Connection: close). That is one syscall per
// write and less memory per idle stream.
type connSink struct {
	conn net.Conn
}

func (s connSink) write(b []byte) (int, error)        { return s.conn.Write(b) }
func (s connSink) setWriteDeadline(t time.Time) error { return s.conn.SetWriteDeadline(t) }

// takenOver is an HTTP/1.x connection the stream owns after takeOver.
type takenOver struct {
	sink connSink
	// conn is the connection when the stream itself may read it to watch
	// for the client going away (plain TCP: see stream.liveOn); nil when a
	// goroutine of takeOver's watches (TLS, whose reads cannot be woken
	// and resumed safely).
	conn net.Conn
	// ctx ends when the watcher sees the client go; it never ends for a
	// stream that watches itself.
	ctx  context.Context
	stop func() // closes the connection and waits for the watcher
}

// takeOver hijacks an HTTP/1.x response and writes its status line and
// headers (those already set, CORS included). net/http no longer watches a
// hijacked connection: a TLS connection gets a small goroutine that reads
// it until the client leaves, which ends the returned context; a plain one
// is read by the stream itself. ok is false when the connection cannot be
// taken over (HTTP/2); nothing has been written then.
func takeOver(ctx context.Context, w http.ResponseWriter, r *http.Request, sendBuffer int) (t takenOver, ok bool) {
	if r.ProtoMajor != 1 {
		return t, false
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return t, false
	}
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	h := w.Header().Clone()
	h.Set("Connection", "close")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	_ = h.Write(&head)
	head.WriteString("\r\n")
	// Anything the client sent after the request (it should send nothing)
	// is discarded with the buffer. A failed write shows again at the
	// stream's first write.
	_ = brw
	_ = conn.SetReadDeadline(time.Time{})
	tc, isTLS := conn.(*tls.Conn)
	if sendBuffer > 0 {
		raw := conn
		if isTLS {
			raw = tc.NetConn()
		}
		if tcp, ok := raw.(*net.TCPConn); ok {
			_ = tcp.SetWriteBuffer(sendBuffer)
		}
	}
	_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, _ = conn.Write(head.Bytes())
	// The stream outlives the request (the handler returns), so its
	// context keeps the request's values but not its cancellation.
	t = takenOver{sink: connSink{conn: conn}, ctx: context.WithoutCancel(ctx)}
	if !isTLS {
		t.conn = conn
		t.stop = func() { _ = conn.Close() }
		return t, true
	}
	cctx, cancel := context.WithCancel(t.ctx)
	t.ctx = cctx
	// Watch for the client going away: a read returns when it closes (or
	// resets) the connection. The watcher ends when the stream closes the
	// connection.
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cancel()
		var b [64]byte
		for {
			if _, err := conn.Read(b[:]); err != nil {
				return
			}
		}
	}()
	t.stop = func() { _ = conn.Close(); <-done; cancel() }
	return t, true
}
