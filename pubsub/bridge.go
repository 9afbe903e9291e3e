package pubsub

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/ssegateway/ssegateway/contract"
)

// Bridge keeps publishers of contract version 1 working for topics with
// "/". Version 1 kept such a topic's keys under the whole topic as hash tag
// (sse:{orders/42}:stream); version 2 keeps them under the first segment
// and adds the feed, so a version 1 publisher — a service still running the
// old script, an old gateway node in a rolling upgrade — writes where no
// version 2 gateway reads. The bridge notices such publishes (a pattern
// subscription to version 1 channels, which version 2 never publishes on)
// and republishes each event through the version 2 script, keeping its id,
// so cursors stay valid and each event is delivered once however many nodes
// bridge it: it reads the version 1 stream after a record of what was
// bridged, and publishes with an idempotency key per event.
//
// Pattern subscriptions do not see sharded publishes, so the bridge works
// on one Redis and on Sentinel; on Redis Cluster, Run returns at once.
type Bridge struct {
	rdb  redis.UniversalClient
	pub  *Publisher
	keys contract.Keys
	log  zerolog.Logger
	// onBridged, if set, is told how many events of a topic were bridged.
	onBridged func(topic string, n int)

	mu     sync.Mutex
	queued map[string]string // topics waiting → the predecessor of the first envelope seen
	kick   chan struct{}
	warned map[string]bool // topics logged already (bounded)
}

// BridgeConfig configures a [Bridge].
type BridgeConfig struct {
	Logger zerolog.Logger
	// OnBridged, if set, is called with each topic's count of events
	// bridged, from the bridge's goroutine.
	OnBridged func(topic string, n int)
}

// NewBridge returns a bridge that republishes through pub, on rdb (the
// publisher's client). It starts nothing; call Run.
func NewBridge(rdb redis.UniversalClient, pub *Publisher, cfg BridgeConfig) *Bridge {
	return &Bridge{rdb: rdb, pub: pub, keys: pub.cfg.Keys, log: cfg.Logger, onBridged: cfg.OnBridged,
		queued: map[string]string{}, kick: make(chan struct{}, 1), warned: map[string]bool{}}
}

// bridgeBatch is how many version 1 events one read takes.
const bridgeBatch = 100

// Run bridges until ctx ends, reconnecting with backoff. It returns nil
// after ctx ends and its goroutines have stopped, at once on Redis Cluster.
func (b *Bridge) Run(ctx context.Context) error {
	if _, cluster := b.rdb.(*redis.ClusterClient); cluster {
		return nil
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { b.work(ctx) })
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := b.listen(ctx)
		if ctx.Err() != nil {
			break
		}
		b.log.Debug().Err(err).Dur("retry_in", backoff).Msg("contract v1 bridge: subscription lost")
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return nil
}

// v1Prefix is what a version 1 key of topic starts with.
func (b *Bridge) v1Prefix(topic string) string { return b.keys.Prefix() + "{" + topic + "}:" }

// listen holds the pattern subscription and queues every topic a version
// 1 envelope arrives for.
func (b *Bridge) listen(ctx context.Context) error {
	pattern := globEscape(b.keys.Prefix()) + "{*/*}:events"
	ps := b.rdb.PSubscribe(ctx, pattern)
	defer ps.Close()
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	for {
		msg, err := ps.ReceiveMessage(ctx)
		if err != nil {
			return err
		}
		rest := strings.TrimPrefix(msg.Channel, b.keys.Prefix()+"{")
		topic, ok := strings.CutSuffix(rest, "}:events")
		if !ok || contract.ValidateTopic(topic, 0) != nil {
			continue
		}
		if _, ok := contract.FeedOf(topic); !ok {
			continue
		}
		env, err := contract.ParseEnvelope(msg.Payload)
		if err != nil || env.Topic != "" {
			continue
		}
		b.mu.Lock()
		if _, ok := b.queued[topic]; !ok {
			b.queued[topic] = env.Prev
		}
		b.mu.Unlock()
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
}

// work bridges the queued topics, one at a time.
func (b *Bridge) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.kick:
		}
		for {
			b.mu.Lock()
			var topic, hint string
			for t, h := range b.queued {
				topic, hint = t, h
				delete(b.queued, t)
				break
			}
			b.mu.Unlock()
			if topic == "" || ctx.Err() != nil {
				break
			}
			n, err := b.bridge(ctx, topic, hint)
			if n > 0 {
				b.warn(topic, n)
				if b.onBridged != nil {
					b.onBridged(topic, n)
				}
			}
			if err != nil && ctx.Err() == nil {
				b.log.Warn().Err(err).Str("topic", topic).Msg("contract v1 bridge: bridging failed; retrying with the topic's next event")
			}
		}
	}
}

// bridge republishes topic's version 1 events after the bridged record
// (or, the first time, after hint: the predecessor of the first envelope
// seen, so history from before is left alone). It returns how many it
// published.
func (b *Bridge) bridge(ctx context.Context, topic, hint string) (int, error) {
	v1 := b.v1Prefix(topic)
	record := v1 + "bridged"
	from, err := b.rdb.Get(ctx, record).Result()
	switch {
	case errors.Is(err, redis.Nil):
		from = hint
	case err != nil:
		return 0, err
	}
	n := 0
	for {
		msgs, err := b.rdb.XRangeN(ctx, v1+"stream", "("+from, "+", bridgeBatch).Result()
		if err != nil {
			return n, err
		}
		for _, m := range msgs {
			typ, _ := m.Values[contract.FieldType].(string)
			data, _ := m.Values[contract.FieldData].(string)
			msg := Message{Topic: topic, Type: typ, Data: data, IdempotencyKey: "v1-" + m.ID}
			done, err := b.rdb.Exists(ctx, b.keys.Idempotency(topic, msg.IdempotencyKey)).Result()
			switch {
			case err != nil:
				return n, err
			case done > 0:
				// Another node bridged it.
			case b.pub.Validate(msg) != nil:
				b.log.Warn().Err(b.pub.Validate(msg)).Str("topic", topic).Str("id", m.ID).
					Msg("contract v1 bridge: an event the contract refuses is left out")
			default:
				if _, err := b.pub.publishKeeping(ctx, msg, m.ID); err != nil {
					return n, err
				}
				n++
			}
			from = m.ID
			// The record follows each event, so a node that takes over
			// after a failure starts where this one stopped; an event
			// bridged twice is published once (idempotency key).
			if err := b.rdb.Set(ctx, record, from, b.recordLife()).Err(); err != nil {
				return n, err
			}
		}
		if len(msgs) < bridgeBatch {
			return n, nil
		}
	}
}

// recordLife is how long a topic's bridged record outlives its last
// bridged event, as the :last records do: twice the age limit, at least
// seven days.
func (b *Bridge) recordLife() time.Duration {
	return max(2*b.pub.cfg.MaxAge, 7*24*time.Hour)
}

// maxWarned bounds the topics the bridge remembers having logged.
const maxWarned = 1000

func (b *Bridge) warn(topic string, n int) {
	b.mu.Lock()
	first := !b.warned[topic] && len(b.warned) < maxWarned
	if first {
		b.warned[topic] = true
	}
	b.mu.Unlock()
	if first {
		b.log.Warn().Str("topic", topic).Int("events", n).
			Msg("a publisher uses the version 1 contract for this topic: its events are bridged to version 2; upgrade it (see docs/publishing.md, From contract version 1)")
	}
}

// globEscape escapes the characters Redis glob patterns give meaning to.
func globEscape(s string) string {
	var sb strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			sb.WriteByte('\\')
		}
		sb.WriteRune(r)
	}
	return sb.String()
}
