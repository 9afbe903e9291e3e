package gateway

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// recordSink keeps what is written to it; failing makes writes fail.
type recordSink struct {
	got     bytes.Buffer
	failing bool
}

func (s *recordSink) write(b []byte) (int, error) {
	if s.failing {
		return 0, errors.New("broken")
	}
	return s.got.Write(b)
}

func (s *recordSink) setWriteDeadline(time.Time) error { return nil }

// TestStream_buffersLent: a stream holds a write buffer only until the
// flush that writes it, whether the write worked or not, so idle streams
// hold none; and a buffer a replay grew past bufKeep is not kept.
func TestStream_buffersLent(t *testing.T) {
	sk := &recordSink{}
	d := &streamDeps{writeTimeout: time.Second, m: newMetrics("test"), bufs: &bufPool{}}
	st := &stream{d: d, sink: sk}

	if err := st.heartbeat(); err != nil {
		t.Fatal(err)
	}
	if sk.got.Len() == 0 {
		t.Fatalf("wrote %q", sk.got.String())
	}
	if st.buf != nil || st.bufp != nil {
		t.Fatalf("the stream kept its buffer after the flush: cap %d", cap(st.buf))
	}

	// Nothing to write: the buffer goes back all the same.
	st.grab()
	if err := st.flush(); err != nil || st.buf != nil {
		t.Fatalf("empty flush: err %v, buffer kept %v", err, st.buf != nil)
	}

	// A failed write gives the buffer back too.
	sk.failing = true
	st.grab()
	st.buf = append(st.buf, "data: x\n\n"...)
	if err := st.flush(); err == nil || st.buf != nil {
		t.Fatalf("failed flush: err %v, buffer kept %v", err, st.buf != nil)
	}

	// The pool lends what it was given back, emptied, and refuses giants.
	p := &bufPool{}
	b := p.get()
	if len(*b) != 0 || cap(*b) < bufStart {
		t.Fatalf("new buffer: len %d cap %d", len(*b), cap(*b))
	}
	big := make([]byte, 10, bufKeep+1)
	p.put(&big)
	for range 10 {
		if got := p.get(); cap(*got) > bufKeep {
			t.Fatalf("the pool lent a buffer of %d bytes, over %d", cap(*got), bufKeep)
		}
	}
}
