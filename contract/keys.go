package contract

import (
	"fmt"
	"strings"
)

// DefaultPrefix is the key prefix used when none is configured.
const DefaultPrefix = "sse:"

// Keys names a topic's Redis keys and channel under a prefix. The zero value
// uses no prefix; use [NewKeys] to validate one. Keys is a plain value and safe
// for concurrent use.
type Keys struct {
	prefix string
}

// NewKeys returns the key layout for prefix. The prefix may be empty; it must
// not contain braces (they would move the hash tag), whitespace or control
// characters, and must be at most 64 bytes.
func NewKeys(prefix string) (Keys, error) {
	if len(prefix) > 64 {
		return Keys{}, fmt.Errorf("contract: key prefix is %d bytes, at most 64 allowed", len(prefix))
	}
	for _, r := range prefix {
		if r == '{' || r == '}' || r <= ' ' || r == 0x7f {
			return Keys{}, fmt.Errorf("contract: key prefix %q must not contain braces, spaces or control characters", prefix)
		}
	}
	return Keys{prefix: prefix}, nil
}

// Prefix returns the configured prefix.
func (k Keys) Prefix() string { return k.prefix }

// A source is what a node follows: a topic, or a feed (see [FeedOf]).
// Its keys carry the source's first path segment as their hash tag, so a
// topic, its feed and their keys share one Redis Cluster slot, and the
// publish script can write them all atomically:
//
//	topic news           sse:{news}:stream
//	topic orders/42      sse:{orders}/42:stream
//	feed  orders/**      sse:{orders}/**:stream
//
// (A topic that starts with "/" has no first segment: its whole name is the
// hash tag, and it belongs to no feed.)
func (k Keys) name(source, suffix string) string {
	tag, rest := source, ""
	if i := strings.IndexByte(source, '/'); i > 0 {
		tag, rest = source[:i], source[i:]
	}
	return k.prefix + "{" + tag + "}" + rest + suffix
}

// Stream is the Redis Stream holding the source's history.
func (k Keys) Stream(source string) string { return k.name(source, ":stream") }

// Last is the string key holding the last event id issued for the source.
// It outlives the stream so ids keep increasing after the stream expires,
// and so a reader can tell an expired-but-complete history from a lost one.
func (k Keys) Last(source string) string { return k.name(source, ":last") }

// Idempotency is the record that makes a publish with key idempotent.
func (k Keys) Idempotency(topic, key string) string { return k.name(topic, ":idem:"+key) }

// Lookup is the record that finds a feed's event by a key of the front
// door's (the Mercure hub's publisher-chosen update ids).
func (k Keys) Lookup(source, key string) string { return k.name(source, ":id:"+key) }

// Channel is the pub/sub channel carrying the source's live envelopes.
func (k Keys) Channel(source string) string { return k.name(source, ":events") }

// SourceOf returns the source of a channel name produced by [Keys.Channel].
func (k Keys) SourceOf(channel string) (string, bool) {
	rest, ok := strings.CutPrefix(channel, k.prefix+"{")
	if !ok {
		return "", false
	}
	rest, ok = strings.CutSuffix(rest, ":events")
	if !ok {
		return "", false
	}
	tag, after, ok := strings.Cut(rest, "}")
	if !ok || tag == "" || (after != "" && after[0] != '/') {
		return "", false
	}
	return tag + after, true
}

// FeedSuffix ends the name of every feed: the feed of the topics under
// orders/ is "orders/**".
const FeedSuffix = "/**"

// FeedOf returns the feed that carries a topic, or that a subscription
// pattern follows: the first path segment followed by [FeedSuffix]. A topic
// without a "/" belongs to no feed (no pattern can match it), and a pattern
// whose first segment has a wildcard follows none (it could match topics of
// every feed).
//
// A feed is a source of its own: every event of every topic under the
// first segment, in one history, so a pattern subscription can be resumed
// exactly, including topics that did not exist when it connected.
func FeedOf(topicOrPattern string) (string, bool) {
	first, _, ok := strings.Cut(topicOrPattern, "/")
	if !ok || first == "" || strings.Contains(first, "*") {
		return "", false
	}
	return first + FeedSuffix, true
}

// IsFeed reports whether a source name is a feed's.
func IsFeed(source string) bool { return strings.HasSuffix(source, FeedSuffix) }
