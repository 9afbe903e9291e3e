package pubsub

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssegateway/ssegateway/contract"
)

// Defaults applied by [NewPublisher] to zero fields of [PublisherConfig].
const (
	DefaultMaxLen       = 10000
	DefaultFeedMaxLen   = 100000
	DefaultMaxAge       = 24 * time.Hour
	DefaultMaxDataBytes = 64 << 10
)

// PublisherConfig configures a [Publisher]. Zero fields take the defaults
// above; a negative MaxLen, FeedMaxLen, MaxAge or MaxDataBytes means "no
// limit".
type PublisherConfig struct {
	Keys         contract.Keys
	MaxLen       int64         // entries kept per topic stream (approximate)
	FeedMaxLen   int64         // entries kept per feed stream (approximate)
	MaxAge       time.Duration // age of entries kept, and stream expiry
	MaxDataBytes int           // largest data accepted
	MaxTopicLen  int           // longest topic accepted; 0 means contract.MaxTopicLen
	Sharded      bool          // SPUBLISH instead of PUBLISH (Redis Cluster)
	// IdempotencyTTL is how long a publish's idempotency record lives:
	// a repeat with the same key within it publishes nothing. Default 1m.
	IdempotencyTTL time.Duration
}

// Message is one event to publish.
type Message struct {
	Topic string
	Type  string // optional; empty means the SSE default "message"
	Data  string // UTF-8 text
	// IdempotencyKey, when set, makes the publish idempotent for
	// IdempotencyTTL: publishing again with the same topic and key returns
	// the first id and publishes nothing, so a retry after an unknown
	// outcome cannot duplicate the event. When empty, Publish uses a fresh
	// random key, kept for 5 seconds, which makes retries inside one call
	// (a Redis client retrying on a new connection) safe.
	IdempotencyKey string
}

// Publisher publishes events through the publish script. It is safe for
// concurrent use and starts no goroutines.
type Publisher struct {
	rdb        redis.Scripter
	cfg        PublisherConfig
	script     *redis.Script
	feedScript *redis.Script // the feed publish script (PublishFeed)
	maxLen     string
	feedMaxLen string
	maxAge     string
	command    string
	idemTTL    string
	loaded     atomic.Bool // the script is known to be in Redis's cache (for PublishMany)
}

// NewPublisher returns a Publisher that runs the script on rdb.
func NewPublisher(rdb redis.Scripter, cfg PublisherConfig) *Publisher {
	if cfg.MaxLen == 0 {
		cfg.MaxLen = DefaultMaxLen
	}
	if cfg.FeedMaxLen == 0 {
		cfg.FeedMaxLen = DefaultFeedMaxLen
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.MaxDataBytes == 0 {
		cfg.MaxDataBytes = DefaultMaxDataBytes
	}
	p := &Publisher{rdb: rdb, cfg: cfg, script: redis.NewScript(contract.PublishScript()), command: "PUBLISH",
		feedScript: redis.NewScript(contract.FeedPublishScript())}
	p.maxLen = strconv.FormatInt(max(cfg.MaxLen, 0), 10)
	p.feedMaxLen = strconv.FormatInt(max(cfg.FeedMaxLen, 0), 10)
	p.maxAge = strconv.FormatInt(max(cfg.MaxAge.Milliseconds(), 0), 10)
	if cfg.IdempotencyTTL <= 0 {
		cfg.IdempotencyTTL = time.Minute
	}
	p.idemTTL = strconv.FormatInt(max(cfg.IdempotencyTTL.Milliseconds(), 1), 10)
	if cfg.Sharded {
		p.command = "SPUBLISH"
	}
	return p
}

// Validate checks m against the contract and the configured limits without
// touching Redis. Errors wrap [contract.ErrInvalid] or [contract.ErrTooLarge].
func (p *Publisher) Validate(m Message) error {
	if err := contract.ValidateTopic(m.Topic, p.cfg.MaxTopicLen); err != nil {
		return err
	}
	if err := contract.ValidateType(m.Type); err != nil {
		return err
	}
	if m.IdempotencyKey != "" {
		if err := contract.ValidateIdempotencyKey(m.IdempotencyKey); err != nil {
			return err
		}
	}
	return contract.ValidateData(m.Data, p.cfg.MaxDataBytes)
}

// Publish validates m and runs the publish script (EVALSHA, falling back to
// EVAL when Redis does not have it cached). It returns the new event id.
// Validation errors are returned as [Publisher.Validate] gives them: they
// say what is wrong in words fit for a client and match [contract.ErrInvalid] or
// [contract.ErrTooLarge]. Other errors come from Redis.
func (p *Publisher) Publish(ctx context.Context, m Message) (string, error) {
	if err := p.Validate(m); err != nil {
		return "", err
	}
	keys, args := p.scriptArgs(m)
	id, err := p.script.Run(ctx, p.rdb, keys, args...).Text()
	if err != nil {
		p.failed(ctx, err)
		return "", fmt.Errorf("pubsub: publish to %q: %w", m.Topic, err)
	}
	return id, nil
}

// scriptArgs are the publish script's keys and arguments for m: a topic
// under a first path segment also goes to that segment's feed.
func (p *Publisher) scriptArgs(m Message) ([]string, []any) {
	key, ttl := p.idempotency(m)
	k := p.cfg.Keys
	keys := []string{k.Stream(m.Topic), k.Last(m.Topic), k.Channel(m.Topic), k.Idempotency(m.Topic, key)}
	args := []any{m.Type, m.Data, p.maxLen, p.maxAge, p.command, ttl}
	if feed, ok := contract.FeedOf(m.Topic); ok {
		keys = append(keys, k.Stream(feed), k.Last(feed), k.Channel(feed))
		args = append(args, m.Topic, p.feedMaxLen)
	}
	return keys, args
}

// failed reacts to a publish that failed with err. A cluster client keeps
// routing a slot to its old primary until its slot map is reloaded (every
// minute by default): after a failover, a network error (not a reply) is
// the sign to reload now. The reload is lazy and happens once however many
// publishes ask for it.
func (p *Publisher) failed(ctx context.Context, err error) {
	var reply redis.Error
	if rs, ok := p.rdb.(stateReloader); ok && !errors.As(err, &reply) {
		rs.ReloadState(context.WithoutCancel(ctx))
	}
}

// FeedMessage is one event for a feed that has no topic streams of its own
// (the Mercure hub's): its name (the feed entry's topic field; no LF), its
// data, and the key that finds it again (see [contract.Keys.Lookup]).
type FeedMessage struct {
	Feed, Name, Data, Lookup string
}

// PublishFeed appends m to its feed through the feed publish script and
// returns the event's id. The caller validates m's content; PublishFeed
// refuses only a feed name that is not a feed's and a name with LF.
// Like Publish it makes the call idempotent with a fresh random key, so a
// Redis client's own retry cannot publish the event twice.
func (p *Publisher) PublishFeed(ctx context.Context, m FeedMessage) (string, error) {
	if !contract.IsFeed(m.Feed) || m.Name == "" || strings.ContainsAny(m.Name, "\r\n") {
		return "", fmt.Errorf("pubsub: publish to feed %q: a feed and a one-line name are required: %w", m.Feed, contract.ErrInvalid)
	}
	if p.cfg.MaxDataBytes > 0 && len(m.Data) > p.cfg.MaxDataBytes {
		return "", fmt.Errorf("pubsub: data is %d bytes, at most %d allowed: %w", len(m.Data), p.cfg.MaxDataBytes, contract.ErrTooLarge)
	}
	k := p.cfg.Keys
	keys := []string{k.Stream(m.Feed), k.Last(m.Feed), k.Channel(m.Feed), k.Lookup(m.Feed, m.Lookup),
		k.Idempotency(m.Feed, rand.Text())}
	id, err := p.feedScript.Run(ctx, p.rdb, keys, m.Name, m.Data, p.feedMaxLen, p.maxAge, p.command, autoKeyTTL).Text()
	if err != nil {
		p.failed(ctx, err)
		return "", fmt.Errorf("pubsub: publish to %q: %w", m.Feed, err)
	}
	return id, nil
}

// pipeliner is what PublishMany needs of a client beyond redis.Scripter;
// every go-redis client has it.
type pipeliner interface {
	Pipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error)
}

// PublishMany publishes msgs in one round trip (a pipeline of EVALSHA; on
// a cluster, one per shard), in order: events of one topic get increasing
// ids in the order given. It returns, per message, its id or its error: a
// message that fails validation (wrapping [contract.ErrInvalid] or [contract.ErrTooLarge]) is
// not sent, and does not stop the others. Messages Redis refused for want
// of the script (its cache was flushed, as by a restart) are sent once more
// after loading it.
func (p *Publisher) PublishMany(ctx context.Context, msgs []Message) ([]string, []error) {
	ids := make([]string, len(msgs))
	errs := make([]error, len(msgs))
	valid := make([]int, 0, len(msgs))
	for i, m := range msgs {
		if errs[i] = p.Validate(m); errs[i] == nil {
			valid = append(valid, i)
		}
	}
	if len(valid) == 0 {
		return ids, errs
	}
	pl, ok := p.rdb.(pipeliner)
	if !ok {
		for _, i := range valid {
			ids[i], errs[i] = p.Publish(ctx, msgs[i])
		}
		return ids, errs
	}
	// Load the script first: a pipeline cannot fall back from EVALSHA to
	// EVAL per command without reordering a topic's events.
	if !p.loaded.Load() {
		if err := p.script.Load(ctx, p.rdb).Err(); err != nil {
			for _, i := range valid {
				errs[i] = fmt.Errorf("pubsub: load the publish script: %w", err)
			}
			return ids, errs
		}
		p.loaded.Store(true)
	}
	for attempt := 0; ; attempt++ {
		noScript := p.pipeline(ctx, pl, msgs, valid, ids, errs)
		if len(noScript) == 0 || attempt == 1 {
			break
		}
		// Redis lost its script cache (a restart, SCRIPT FLUSH): those
		// events were not published. Load the script and send them again,
		// in order.
		if err := p.script.Load(ctx, p.rdb).Err(); err != nil {
			break
		}
		p.loaded.Store(true)
		valid = noScript
	}
	return ids, errs
}

// pipeline sends the messages at indexes valid as one pipeline, filling ids
// and errs, and returns the indexes that failed with NOSCRIPT.
func (p *Publisher) pipeline(ctx context.Context, pl pipeliner, msgs []Message, valid []int, ids []string, errs []error) []int {
	cmds := make([]*redis.Cmd, len(msgs))
	_, _ = pl.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for _, i := range valid {
			keys, args := p.scriptArgs(msgs[i])
			cmds[i] = p.script.EvalSha(ctx, pipe, keys, args...)
		}
		return nil
	})
	var noScript []int
	for _, i := range valid {
		id, err := cmds[i].Text()
		if err != nil {
			if redis.HasErrorPrefix(err, "NOSCRIPT") {
				p.loaded.Store(false)
				noScript = append(noScript, i)
			} else {
				p.failed(ctx, err)
			}
			errs[i] = fmt.Errorf("pubsub: publish to %q: %w", msgs[i].Topic, err)
			continue
		}
		ids[i], errs[i] = id, nil
	}
	return noScript
}

// autoKeyTTL is the lifetime of the idempotency record of a publish with
// no key of its own. It only has to cover the client library's retries of
// the one call (well under a second); a short life keeps Redis from holding
// a record for every event of the last IdempotencyTTL (at 10,000 events a
// second and a minute's TTL, 600,000 keys).
const autoKeyTTL = "5000"

// idempotency returns the message's idempotency key, or a fresh one, and
// the record's lifetime in milliseconds.
func (p *Publisher) idempotency(m Message) (key, ttl string) {
	if m.IdempotencyKey != "" {
		return m.IdempotencyKey, p.idemTTL
	}
	return rand.Text(), autoKeyTTL
}

// stateReloader is *redis.ClusterClient's slot map reload.
type stateReloader interface{ ReloadState(context.Context) }
