package fanout

import (
	"sync"

	"github.com/ssegateway/ssegateway/auth"
)

// Outbox is one stream's subscription as the hub sees it: what it wants
// and a byte-bounded queue of frames waiting for the stream's writer. The
// hub appends without ever blocking; the writer takes the whole queue at
// once. Its methods are safe for concurrent use.
type Outbox struct {
	wants    []Want
	named    bool // frames are encoded with their topic
	maxBytes int

	notify chan struct{} // capacity 1: "the queue has something"

	mu      sync.Mutex
	queue   []Item
	spare   []Item
	bytes   int
	evicted bool
}

// Want is one of a stream's subscriptions: a source, and for a feed the
// patterns that pick its events (an event matching several is delivered
// once).
type Want struct {
	Source   string
	Patterns []auth.Pattern
}

// Item is one queued frame and the index, in the outbox's wants, of the
// want it belongs to.
type Item struct {
	Frame *Frame
	Want  int
}

// NewOutbox returns the outbox of a stream of wants (one per source,
// sorted by source), evicted once more than maxBytes wait in it. With
// named, the stream writes each event with its topic (see
// [Frame.Body]), and the frames it is handed are built that way.
func NewOutbox(wants []Want, named bool, maxBytes int) *Outbox {
	return &Outbox{wants: wants, named: named, maxBytes: maxBytes, notify: make(chan struct{}, 1)}
}

// Topics returns an outbox of plain topics, written without their names.
func Topics(topics []string, maxBytes int) *Outbox {
	wants := make([]Want, len(topics))
	for i, t := range topics {
		wants[i] = Want{Source: t}
	}
	return NewOutbox(wants, false, maxBytes)
}

// Wants returns the outbox's wants; the caller must not modify them.
func (o *Outbox) Wants() []Want { return o.wants }

// Named reports whether the outbox's frames carry their topic.
func (o *Outbox) Named() bool { return o.named }

// Notify receives a value when the queue has something; one value may stand
// for many frames.
func (o *Outbox) Notify() <-chan struct{} { return o.notify }

// enqueue hands f to the stream. Once the queue passes maxBytes the stream
// is marked evicted and its queue dropped: the client reconnects with its
// cursor and catches up from the history, so nothing is lost.
func (o *Outbox) enqueue(f *Frame, idx int) {
	o.mu.Lock()
	if o.evicted {
		o.mu.Unlock()
		return
	}
	o.bytes += len(f.Bytes(o.named)) // 0 for a lost frame
	if o.bytes > o.maxBytes {
		o.evicted = true
		clear(o.queue)
		o.queue = o.queue[:0]
		o.bytes = 0
	} else {
		o.queue = append(o.queue, Item{Frame: f, Want: idx})
	}
	o.mu.Unlock()
	select {
	case o.notify <- struct{}{}:
	default:
	}
}

// Take returns everything queued and whether the stream was evicted. The
// caller gives the slice back with Recycle when done with it.
func (o *Outbox) Take() ([]Item, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	q := o.queue
	o.queue, o.spare = o.spare, nil
	o.bytes = 0
	return q, o.evicted
}

// Evicted reports whether the stream fell too far behind.
func (o *Outbox) Evicted() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.evicted
}

// Recycle gives back a slice Take returned, for reuse.
func (o *Outbox) Recycle(q []Item) {
	clear(q)
	if cap(q) > 4096 {
		return // let an unusual burst's backing array go
	}
	o.mu.Lock()
	if o.spare == nil {
		o.spare = q[:0]
	}
	o.mu.Unlock()
}

// QueuedBytes is the size of what waits in the queue.
func (o *Outbox) QueuedBytes() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.bytes
}
