package replay

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/ssegateway/ssegateway/contract"
)

// ErrHistoryLost is returned by [Store.After] when events after the position
// are no longer in the stream (trimmed by count or age, expired, or lost by
// Redis), or the position never belonged to the topic.
var ErrHistoryLost = errors.New("replay: history lost")

// Entry is one event of a source's history (a topic's, or a feed's).
type Entry struct {
	ID    contract.ID
	Prev  contract.ID // the source's event before this one; 0-0 for the first
	Topic string      // in a feed's history, the event's topic; empty in a topic's
	Type  string      // empty for the SSE default type
	Data  string
}

// Store reads topics' histories. Implementations are safe for concurrent use.
type Store interface {
	// Last returns the id of the topic's newest event, or 0-0 if the topic
	// has none on record.
	Last(ctx context.Context, topic string) (contract.ID, error)
	// After returns up to count entries with after < id <= until, oldest
	// first. A zero until means no upper bound. It returns ErrHistoryLost when
	// the first entry does not name after as its predecessor — with the
	// entries: the history retained after the gap, which begins at the
	// first entry's Prev — or when until lies beyond after but no entry is
	// found (with no entries).
	After(ctx context.Context, topic string, after, until contract.ID, count int64) ([]Entry, error)
	// Contains reports whether the topic's stream holds an entry with id.
	Contains(ctx context.Context, topic string, id contract.ID) (bool, error)
	// Lasts returns the id of each topic's newest event on record, 0-0 for
	// topics with none, in one round trip per batch of topics.
	Lasts(ctx context.Context, topics []string) ([]contract.ID, error)
	// Lookup returns the id a feed's lookup record holds for key (see
	// contract.Keys.Lookup), and whether there is one.
	Lookup(ctx context.Context, feed, key string) (contract.ID, bool, error)
}

// Keys names a source's stream, its last-id record and a feed's lookup
// records; contract.Keys satisfies it.
type Keys interface {
	Stream(source string) string
	Last(source string) string
	Lookup(feed, key string) string
}

// RedisStore is a Store on Redis Streams written by the publish script.
type RedisStore struct {
	rdb  redis.Cmdable
	keys Keys
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore returns a Store reading through rdb.
func NewRedisStore(rdb redis.Cmdable, keys Keys) *RedisStore {
	return &RedisStore{rdb: rdb, keys: keys}
}

// Last implements [Store]. It reads the topic's last-id record and, when that
// has expired, the stream's newest entry.
func (s *RedisStore) Last(ctx context.Context, topic string) (contract.ID, error) {
	v, err := s.rdb.Get(ctx, s.keys.Last(topic)).Result()
	if err == nil {
		id, err := contract.ParseID(v)
		if err != nil {
			return contract.ID{}, fmt.Errorf("replay: last id of %q is %q: %w", topic, v, err)
		}
		return id, nil
	}
	if !errors.Is(err, redis.Nil) {
		return contract.ID{}, fmt.Errorf("replay: last id of %q: %w", topic, err)
	}
	msgs, err := s.rdb.XRevRangeN(ctx, s.keys.Stream(topic), "+", "-", 1).Result()
	if err != nil {
		return contract.ID{}, fmt.Errorf("replay: newest entry of %q: %w", topic, err)
	}
	if len(msgs) == 0 {
		return contract.ID{}, nil
	}
	id, err := contract.ParseID(msgs[0].ID)
	if err != nil {
		return contract.ID{}, fmt.Errorf("replay: newest entry of %q: %w", topic, err)
	}
	return id, nil
}

// After implements [Store].
func (s *RedisStore) After(ctx context.Context, topic string, after, until contract.ID, count int64) ([]Entry, error) {
	stop := "+"
	if !until.IsZero() {
		if !after.Less(until) {
			return nil, nil
		}
		stop = until.String()
	}
	msgs, err := s.rdb.XRangeN(ctx, s.keys.Stream(topic), "("+after.String(), stop, count).Result()
	if err != nil {
		return nil, fmt.Errorf("replay: read %q after %s: %w", topic, after, err)
	}
	if len(msgs) == 0 {
		if until.IsZero() {
			return nil, nil
		}
		return nil, fmt.Errorf("replay: %q has no entries after %s up to %s: %w", topic, after, until, ErrHistoryLost)
	}
	entries := make([]Entry, len(msgs))
	for i, m := range msgs {
		e, err := entry(m)
		if err != nil {
			return nil, fmt.Errorf("replay: read %q: %w", topic, err)
		}
		entries[i] = e
	}
	if entries[0].Prev != after {
		return entries, fmt.Errorf("replay: %q entry %s follows %s, not %s: %w",
			topic, entries[0].ID, entries[0].Prev, after, ErrHistoryLost)
	}
	return entries, nil
}

// lastsBatch is how many topics one pipeline of Lasts asks about.
const lastsBatch = 1000

// Lasts implements [Store]. It reads the :last records only (a stream whose
// record is gone counts as 0-0, which only ever makes a caller look again).
func (s *RedisStore) Lasts(ctx context.Context, topics []string) ([]contract.ID, error) {
	out := make([]contract.ID, len(topics))
	for lo := 0; lo < len(topics); lo += lastsBatch {
		hi := min(lo+lastsBatch, len(topics))
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.StringCmd, hi-lo)
		for i, t := range topics[lo:hi] {
			cmds[i] = pipe.Get(ctx, s.keys.Last(t))
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("replay: last ids of %d topics: %w", hi-lo, err)
		}
		for i, c := range cmds {
			v, err := c.Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("replay: last id of %q: %w", topics[lo+i], err)
			}
			if out[lo+i], err = contract.ParseID(v); err != nil {
				return nil, fmt.Errorf("replay: last id of %q is %q: %w", topics[lo+i], v, err)
			}
		}
	}
	return out, nil
}

// Lookup implements [Store].
func (s *RedisStore) Lookup(ctx context.Context, feed, key string) (contract.ID, bool, error) {
	v, err := s.rdb.Get(ctx, s.keys.Lookup(feed, key)).Result()
	if errors.Is(err, redis.Nil) {
		return contract.ID{}, false, nil
	}
	if err != nil {
		return contract.ID{}, false, fmt.Errorf("replay: look up %q in %q: %w", key, feed, err)
	}
	id, err := contract.ParseID(v)
	if err != nil {
		return contract.ID{}, false, fmt.Errorf("replay: lookup record of %q in %q is %q: %w", key, feed, v, err)
	}
	return id, true, nil
}

// Contains implements [Store].
func (s *RedisStore) Contains(ctx context.Context, topic string, id contract.ID) (bool, error) {
	v := id.String()
	msgs, err := s.rdb.XRangeN(ctx, s.keys.Stream(topic), v, v, 1).Result()
	if err != nil {
		return false, fmt.Errorf("replay: look up %s in %q: %w", v, topic, err)
	}
	return len(msgs) == 1, nil
}

func entry(m redis.XMessage) (Entry, error) {
	id, err := contract.ParseID(m.ID)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{ID: id}
	p, _ := m.Values[contract.FieldPrev].(string)
	if e.Prev, err = contract.ParseID(p); err != nil {
		return Entry{}, fmt.Errorf("entry %s has no valid predecessor field %s (not written by the publish script?)", m.ID, contract.FieldPrev)
	}
	e.Topic, _ = m.Values[contract.FieldTopic].(string)
	e.Type, _ = m.Values[contract.FieldType].(string)
	e.Data, _ = m.Values[contract.FieldData].(string)
	return e, nil
}
