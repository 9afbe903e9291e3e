package pubsub

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/ssegateway/ssegateway/contract"
)

// Handler receives what the node's pub/sub connection reports. All methods
// are called from the subscriber's receive goroutine, one at a time, in the
// order Redis sent the replies; they must not block on I/O.
type Handler interface {
	// HandleEvent is called for every envelope received on a source's
	// channel (a topic's, or a feed's: see contract.FeedOf).
	HandleEvent(source string, e contract.Envelope)
	// HandleSubscribed is called when Redis confirms a subscription to
	// source: after Subscribe, and again after every reconnect. Events
	// published while the source was not subscribed are not delivered; the
	// handler must look for them in the history.
	HandleSubscribed(source string)
	// HandleDisconnected is called when a working connection is lost (not
	// again for each failed attempt to reconnect). Nothing is received until
	// the following HandleSubscribed calls.
	HandleDisconnected(err error)
}

// SubscriberConfig configures a [Subscriber].
type SubscriberConfig struct {
	Keys contract.Keys
	// PingInterval is how long the connection may stay silent before a PING
	// is sent; a PING unanswered for another interval ends the connection.
	// Default 2s.
	PingInterval time.Duration
	// MaxBackoff bounds the delay between reconnect attempts. Default 5s.
	MaxBackoff time.Duration
	Logger     zerolog.Logger
}

// Subscriber holds the node's single Redis pub/sub connection. Subscribe and
// Unsubscribe may be called from any goroutine at any time, before or during
// Run; they never block on Redis.
type Subscriber struct {
	rdb  redis.UniversalClient
	cfg  SubscriberConfig
	kick chan struct{}

	healthy atomic.Bool

	mu    sync.Mutex
	want  map[string]struct{} // channels the node wants
	fresh map[string]struct{} // wanted channels whose subscription must be (re)confirmed
	gone  map[string]struct{} // channels to unsubscribe if still unwanted
}

// NewSubscriber returns a Subscriber on rdb. It starts nothing; call Run.
func NewSubscriber(rdb redis.UniversalClient, cfg SubscriberConfig) *Subscriber {
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 2 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	return &Subscriber{
		rdb:   rdb,
		cfg:   cfg,
		kick:  make(chan struct{}, 1),
		want:  make(map[string]struct{}),
		fresh: make(map[string]struct{}),
		gone:  make(map[string]struct{}),
	}
}

// Subscribe asks for the sources' events (topics or feeds). Each source's
// Handler.HandleSubscribed follows once Redis confirms a subscription sent
// after this call, even if the channel was already subscribed.
func (s *Subscriber) Subscribe(topics ...string) {
	s.mu.Lock()
	for _, t := range topics {
		ch := s.cfg.Keys.Channel(t)
		s.want[ch] = struct{}{}
		s.fresh[ch] = struct{}{}
	}
	s.mu.Unlock()
	s.wake()
}

// Unsubscribe drops the node's interest in the sources.
func (s *Subscriber) Unsubscribe(topics ...string) {
	s.mu.Lock()
	for _, t := range topics {
		ch := s.cfg.Keys.Channel(t)
		delete(s.want, ch)
		delete(s.fresh, ch)
		s.gone[ch] = struct{}{}
	}
	s.mu.Unlock()
	s.wake()
}

// Healthy reports whether the connection is up and answered recently.
func (s *Subscriber) Healthy() bool { return s.healthy.Load() }

func (s *Subscriber) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run holds the connection until ctx ends, reconnecting with backoff, and
// reports to h. It returns nil after ctx ends and every goroutine it started
// has exited.
func (s *Subscriber) Run(ctx context.Context, h Handler) error {
	backoff := 50 * time.Millisecond
	for {
		start := time.Now()
		err := s.session(ctx, h)
		wasUp := s.healthy.Swap(false)
		if ctx.Err() != nil {
			return nil
		}
		if wasUp {
			// Only the loss of a working connection is news; failed
			// attempts while Redis stays down are retried quietly.
			s.cfg.Logger.Warn().Err(err).Msg("redis pub/sub connection lost; reconnecting")
			h.HandleDisconnected(err)
		} else {
			s.cfg.Logger.Debug().Err(err).Dur("retry_in", backoff).Msg("redis pub/sub connection attempt failed")
		}
		if time.Since(start) > 10*time.Second {
			backoff = 50 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, s.cfg.MaxBackoff)
	}
}

// session runs one connection: a command goroutine that applies changes of
// interest, and the receive loop on the calling goroutine.
func (s *Subscriber) session(ctx context.Context, h Handler) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ps := s.rdb.Subscribe(ctx)
	defer ps.Close()
	if err := ps.Ping(ctx); err != nil {
		return err
	}
	// Everything wanted is (re)subscribed on a new connection.
	s.mu.Lock()
	for ch := range s.want {
		s.fresh[ch] = struct{}{}
	}
	s.mu.Unlock()
	s.wake()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.commands(ctx, ps, cancel)
	}()
	// Closing the connection unblocks a pending read at once on shutdown.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	err := s.receive(ctx, ps, h)
	stop()
	cancel(err)
	wg.Wait()
	if err == nil {
		// The receive loop ended because the command goroutine failed.
		err = context.Cause(ctx)
	}
	return err
}

// commands sends SUBSCRIBE and UNSUBSCRIBE as interest changes.
func (s *Subscriber) commands(ctx context.Context, ps *redis.PubSub, fail context.CancelCauseFunc) {
	have := make(map[string]struct{})
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		}
		s.mu.Lock()
		var sub, unsub []string
		for ch := range s.fresh {
			sub = append(sub, ch)
		}
		for ch := range s.gone {
			if _, ok := s.want[ch]; !ok {
				if _, ok := have[ch]; ok {
					unsub = append(unsub, ch)
				}
			}
		}
		clear(s.fresh)
		clear(s.gone)
		s.mu.Unlock()
		if len(unsub) > 0 {
			if err := ps.Unsubscribe(ctx, unsub...); err != nil {
				s.requeue(nil, unsub)
				fail(err)
				return
			}
			for _, ch := range unsub {
				delete(have, ch)
			}
		}
		if len(sub) > 0 {
			if err := ps.Subscribe(ctx, sub...); err != nil {
				s.requeue(sub, nil)
				fail(err)
				return
			}
			for _, ch := range sub {
				have[ch] = struct{}{}
			}
		}
	}
}

// requeue puts back work a failed command did not do. Subscriptions are
// redone anyway on the next connection; unsubscriptions must not be forgotten
// within this one.
func (s *Subscriber) requeue(sub, unsub []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range sub {
		if _, ok := s.want[ch]; ok {
			s.fresh[ch] = struct{}{}
		}
	}
	for _, ch := range unsub {
		s.gone[ch] = struct{}{}
	}
}

func (s *Subscriber) receive(ctx context.Context, ps *redis.PubSub, h Handler) error {
	return receiveLoop(ctx, ps, s.cfg.PingInterval, func(msg any, err error) error {
		if err != nil {
			return err
		}
		s.healthy.Store(true)
		dispatch(s.cfg, msg, h)
		return nil
	})
}

// receiveLoop reads ps until ctx ends (it then returns nil) or handle
// returns an error. A silent connection gets a PING after pingEvery, and
// ends if that is not answered within another pingEvery. handle gets every
// message, and every error other than those timeouts: it returns nil to go
// on, or the error that ends the loop.
func receiveLoop(ctx context.Context, ps *redis.PubSub, pingEvery time.Duration, handle func(msg any, err error) error) error {
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, pingEvery)
		if ctx.Err() != nil {
			return nil
		}
		var ne net.Error
		if err != nil && errors.As(err, &ne) && ne.Timeout() {
			if pinged {
				return errors.New("pubsub: redis did not answer a ping")
			}
			if err := ps.Ping(ctx); err != nil {
				return err
			}
			pinged = true
			continue
		}
		if err == nil {
			pinged = false
		}
		if err := handle(msg, err); err != nil {
			return err
		}
	}
}

// dispatch hands a received message to h: envelopes and subscription
// confirmations. It returns the channel of a sunsubscribe, which Redis
// Cluster sends when a shard channel's slot leaves the node.
func dispatch(cfg SubscriberConfig, msg any, h Handler) (sunsubscribed string) {
	switch m := msg.(type) {
	case *redis.Message:
		source, ok := cfg.Keys.SourceOf(m.Channel)
		if !ok {
			return ""
		}
		env, err := contract.ParseEnvelope(m.Payload)
		if err != nil {
			cfg.Logger.Error().Str("source", source).Int("bytes", len(m.Payload)).
				Msg("dropping a message that is not a publish-script envelope; publish through the script")
			return ""
		}
		h.HandleEvent(source, env)
	case *redis.Subscription:
		switch m.Kind {
		case "subscribe", "ssubscribe":
			if source, ok := cfg.Keys.SourceOf(m.Channel); ok {
				h.HandleSubscribed(source)
			}
		case "sunsubscribe":
			return m.Channel
		}
	}
	return ""
}
