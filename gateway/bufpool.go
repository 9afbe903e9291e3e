package gateway

import "sync"

// bufPool lends streams their write buffers. A stream holds one only from
// its first append to the flush that writes it, so a node's idle streams
// hold none, and a buffer a replay or a burst grew goes back to serve the
// next writer instead of staying with one stream for its whole life.
type bufPool struct {
	p sync.Pool // of *[]byte, empty
}

// bufStart is the capacity of a new buffer: a few ordinary events.
const bufStart = 1 << 10

// bufKeep is the largest buffer the pool takes back: a replay's, which
// flushes at flushAt, with the event that crossed it.
const bufKeep = 2 * flushAt

func (p *bufPool) get() *[]byte {
	if b, ok := p.p.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, bufStart)
	return &b
}

// put takes back b, whose contents are no longer needed.
func (p *bufPool) put(b *[]byte) {
	if cap(*b) > bufKeep {
		return
	}
	*b = (*b)[:0]
	p.p.Put(b)
}
