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

// Stream is the Redis Stream holding the topic's history.
func (k Keys) Stream(topic string) string { return k.prefix + "{" + topic + "}:stream" }

// Last is the string key holding the last event id issued for the topic. It
// outlives the stream so ids keep increasing after the stream expires, and so
// a reader can tell an expired-but-complete history from a lost one.
func (k Keys) Last(topic string) string { return k.prefix + "{" + topic + "}:last" }

// Idempotency is the record that makes a publish with key idempotent.
func (k Keys) Idempotency(topic, key string) string {
	return k.prefix + "{" + topic + "}:idem:" + key
}

// Channel is the pub/sub channel carrying the topic's live envelopes.
func (k Keys) Channel(topic string) string { return k.prefix + "{" + topic + "}:events" }

// TopicOf returns the topic of a channel name produced by [Keys.Channel].
func (k Keys) TopicOf(channel string) (string, bool) {
	rest, ok := strings.CutPrefix(channel, k.prefix+"{")
	if !ok {
		return "", false
	}
	topic, ok := strings.CutSuffix(rest, "}:events")
	if !ok || topic == "" {
		return "", false
	}
	return topic, true
}
