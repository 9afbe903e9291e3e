package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ssegateway/ssegateway/pubsub"
)

// BatchPublisher publishes several events in one round trip, returning
// each one's id or error; *pubsub.Publisher implements it. When the
// Publisher a server is given has it, concurrent POST /publish requests go
// to Redis together.
type BatchPublisher interface {
	PublishMany(ctx context.Context, msgs []pubsub.Message) ([]string, []error)
}

// publishBatcher gathers the publishes of concurrent requests into
// pipelines: a few workers each take whatever is waiting (up to
// maxPublishBatch) and send it as one. With little traffic a batch is one
// event and nothing waits; under load, batches grow by themselves while
// the previous ones are in flight, so Redis and the node make one round
// trip, and a few system calls, for many events.
type publishBatcher struct {
	pub     BatchPublisher
	in      chan *publishCall
	running atomic.Bool
}

type publishCall struct {
	msg  pubsub.Message
	id   string
	err  error
	done chan struct{}
}

const (
	publishWorkers  = 8
	maxPublishBatch = 128
	// publishTimeout bounds one pipeline; it does not follow any one
	// request's context, since other requests ride on it.
	publishTimeout = 10 * time.Second
)

func newPublishBatcher(pub BatchPublisher) *publishBatcher {
	return &publishBatcher{pub: pub, in: make(chan *publishCall, maxPublishBatch*publishWorkers)}
}

// run starts the workers; they stop when ctx ends. wg counts them.
func (b *publishBatcher) run(ctx context.Context, wg *sync.WaitGroup) {
	b.running.Store(true)
	for range publishWorkers {
		wg.Go(func() { b.work(ctx) })
	}
}

func (b *publishBatcher) work(ctx context.Context) {
	calls := make([]*publishCall, 0, maxPublishBatch)
	msgs := make([]pubsub.Message, 0, maxPublishBatch)
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-b.in:
			calls = append(calls[:0], c)
		}
	more:
		for len(calls) < maxPublishBatch {
			select {
			case c := <-b.in:
				calls = append(calls, c)
			default:
				break more
			}
		}
		msgs = msgs[:0]
		for _, c := range calls {
			msgs = append(msgs, c.msg)
		}
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
		ids, errs := b.pub.PublishMany(pctx, msgs)
		cancel()
		for i, c := range calls {
			c.id, c.err = ids[i], errs[i]
			close(c.done)
		}
		clear(calls)
	}
}

// publish hands m to a worker and waits for its id.
func (b *publishBatcher) publish(ctx context.Context, m pubsub.Message) (string, error) {
	c := &publishCall{msg: m, done: make(chan struct{})}
	select {
	case b.in <- c:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	select {
	case <-c.done:
		return c.id, c.err
	case <-ctx.Done():
		// The event may still be published, as when a connection breaks
		// after the request was sent; an idempotency key makes a retry safe.
		return "", ctx.Err()
	}
}
