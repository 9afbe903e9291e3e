package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/replay"
)

// readGroup makes the history reads of reconnecting streams. When a node
// dies, its clients reconnect to the others at about the same moment, most
// with the same cursor per topic: identical reads in flight together are
// made once and their result shared, and at most max reads run at once, so
// a reconnect storm costs Redis a few reads per topic, not one per client.
type readGroup struct {
	hist replay.Store
	sem  chan struct{}
	m    *metrics
	// base is the context reads run under: the server's, so a shutdown ends
	// them; wg counts them so the server can wait for them.
	base context.Context
	wg   sync.WaitGroup

	mu    sync.Mutex
	calls map[readKey]*readCall
}

type readKey struct {
	topic        string
	after, until contract.ID
	count        int64
}

type readCall struct {
	done    chan struct{}
	entries []replay.Entry // shared: read only
	err     error
}

// readTimeout bounds one shared read; it does not follow any one stream's
// context, since other streams may be waiting for it.
const readTimeout = 10 * time.Second

func newReadGroup(hist replay.Store, max int, m *metrics) *readGroup {
	return &readGroup{hist: hist, sem: make(chan struct{}, max), m: m, base: context.Background(),
		calls: make(map[readKey]*readCall)}
}

// after is replay.Store.After, shared between identical concurrent calls.
// The returned entries must not be modified.
func (g *readGroup) after(ctx context.Context, topic string, after, until contract.ID, count int64) ([]replay.Entry, error) {
	k := readKey{topic: topic, after: after, until: until, count: count}
	g.mu.Lock()
	c, shared := g.calls[k]
	if !shared {
		c = &readCall{done: make(chan struct{})}
		g.calls[k] = c
	}
	g.mu.Unlock()
	if shared {
		g.m.replayReads.WithLabelValues("true").Inc()
	} else {
		g.m.replayReads.WithLabelValues("false").Inc()
		g.wg.Go(func() { g.do(k, c) })
	}
	select {
	case <-c.done:
		return c.entries, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// do makes one read. It runs on its own goroutine so that the stream that
// started it can leave without failing the others; it ends within
// readTimeout, or when the server's context ends.
func (g *readGroup) do(k readKey, c *readCall) {
	ctx, cancel := context.WithTimeout(g.base, readTimeout)
	defer cancel()
	select {
	case g.sem <- struct{}{}:
		c.entries, c.err = g.hist.After(ctx, k.topic, k.after, k.until, k.count)
		<-g.sem
	case <-ctx.Done():
		c.err = ctx.Err()
	}
	g.mu.Lock()
	delete(g.calls, k)
	g.mu.Unlock()
	close(c.done)
}
