package gateway

import "sync"

// conn is one stream's subscription as the hub sees it: the topics it wants
// and a byte-bounded queue of frames waiting for the stream's writer. The hub
// appends without ever blocking; the writer takes the whole queue at once.
type conn struct {
	topics   []string // sorted, unique
	tags     []string // cursor tags, parallel to topics
	maxBytes int

	notify chan struct{} // capacity 1: "the queue has something"

	mu      sync.Mutex
	queue   []queued
	spare   []queued
	bytes   int
	evicted bool
}

type queued struct {
	f   *frame
	idx int // index of the frame's topic in conn.topics
}

func newConn(topics []string, maxBytes int) *conn {
	c := &conn{topics: topics, maxBytes: maxBytes, notify: make(chan struct{}, 1)}
	c.tags = make([]string, len(topics))
	for i, t := range topics {
		c.tags[i] = cursorTag(t)
	}
	return c
}

// enqueue hands f to the stream. Once the queue passes maxBytes the stream is
// marked evicted and its queue dropped: the client reconnects with its
// cursor and catches up from the stream, so nothing is lost.
func (c *conn) enqueue(f *frame, idx int) {
	c.mu.Lock()
	if c.evicted {
		c.mu.Unlock()
		return
	}
	c.bytes += len(f.buf)
	if c.bytes > c.maxBytes {
		c.evicted = true
		clear(c.queue)
		c.queue = c.queue[:0]
		c.bytes = 0
	} else {
		c.queue = append(c.queue, queued{f: f, idx: idx})
	}
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// take returns everything queued and whether the stream was evicted. The
// caller gives the slice back with recycle when done with it.
func (c *conn) take() ([]queued, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.queue
	c.queue, c.spare = c.spare, nil
	c.bytes = 0
	return q, c.evicted
}

func (c *conn) isEvicted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.evicted
}

func (c *conn) recycle(q []queued) {
	clear(q)
	if cap(q) > 4096 {
		return // let an unusual burst's backing array go
	}
	c.mu.Lock()
	if c.spare == nil {
		c.spare = q[:0]
	}
	c.mu.Unlock()
}

// queuedBytes is the size of what waits in the queue.
func (c *conn) queuedBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}
