package fanout

import "sync"

// Outbox is one stream's subscription as the hub sees it: what it wants
// and a byte-bounded queue of frames waiting for the stream's writer. The
// hub appends without ever blocking; the writer takes the whole queue at
// once. Its methods are safe for concurrent use.
type Outbox struct {
	wants    []Want
	form     Form // how the stream writes events
	maxBytes int

	notify chan struct{} // capacity 1: "the queue has something"

	mu      sync.Mutex
	queue   []Item
	spare   []Item
	bytes   int
	evicted bool
}

// Want is one of a stream's subscriptions: a source, and for a feed what
// picks the stream's events among the feed's, as the feed's [Index]
// understands it: []auth.Pattern for the pattern index (an event matching
// several is delivered once). A topic's Filter is nil.
type Want struct {
	Source string
	Filter any
}

// Item is one queued frame and the index, in the outbox's wants, of the
// want it belongs to.
type Item struct {
	Frame *Frame
	Want  int
}

// NewOutbox returns the outbox of a stream of wants (one per source,
// sorted by source) that writes events in form, evicted once more than
// maxBytes wait in it. The frames it is handed are built in form.
func NewOutbox(wants []Want, form Form, maxBytes int) *Outbox {
	return &Outbox{wants: wants, form: form, maxBytes: maxBytes, notify: make(chan struct{}, 1)}
}

// Topics returns an outbox of plain topics, written without their names.
func Topics(topics []string, maxBytes int) *Outbox {
	wants := make([]Want, len(topics))
	for i, t := range topics {
		wants[i] = Want{Source: t}
	}
	return NewOutbox(wants, PlainForm{}, maxBytes)
}

// Wants returns the outbox's wants; the caller must not modify them.
func (o *Outbox) Wants() []Want { return o.wants }

// Form returns how the outbox's stream writes events.
func (o *Outbox) Form() Form { return o.form }

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
	o.bytes += len(f.Bytes(o.form)) // 0 for a lost frame
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
