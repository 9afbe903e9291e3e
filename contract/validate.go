package contract

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Limits on what the contract accepts. Front doors may configure tighter ones.
const (
	// MaxTopicLen is the longest topic name accepted.
	MaxTopicLen = 256
	// MaxTypeLen is the longest event type accepted.
	MaxTypeLen = 128
	// HistoryLostType is the event type the gateway itself sends when a
	// client's history cannot be replayed. Publishers may not use it.
	HistoryLostType = "history-lost"
)

// ErrInvalid is matched (errors.Is) by every validation error of this
// package; ErrTooLarge by those about size.
var (
	ErrInvalid  = errors.New("contract: invalid")
	ErrTooLarge = errors.New("contract: too large")
)

// validationError says what is wrong in words a client can act on, and
// matches its kind with errors.Is.
type validationError struct {
	msg  string
	kind error
}

func (e *validationError) Error() string { return e.msg }
func (e *validationError) Unwrap() error { return e.kind }

func invalid(format string, args ...any) error {
	return &validationError{msg: fmt.Sprintf(format, args...), kind: ErrInvalid}
}

// ValidateTopic reports whether topic is a legal topic name: 1 to maxLen
// bytes (maxLen <= 0 or above [MaxTopicLen] means MaxTopicLen) of ASCII
// letters, digits and - _ . : / @ = + ~. Braces, glob characters, spaces and
// control bytes are refused, so a topic can never leave its hash tag or the
// key prefix.
func ValidateTopic(topic string, maxLen int) error {
	if maxLen <= 0 || maxLen > MaxTopicLen {
		maxLen = MaxTopicLen
	}
	if topic == "" {
		return invalid("topic is empty")
	}
	if len(topic) > maxLen {
		return invalid("topic is %d bytes, at most %d allowed", len(topic), maxLen)
	}
	for i := 0; i < len(topic); i++ {
		if !topicByte(topic[i]) {
			return invalid("topic %q has %q at byte %d; allowed are letters, digits and - _ . : / @ = + ~",
				truncate(topic, 64), topic[i], i)
		}
	}
	return nil
}

func topicByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '_', '.', ':', '/', '@', '=', '+', '~':
		return true
	}
	return false
}

// ValidateType reports whether typ may be used as an event type: empty (the
// SSE default "message"), or up to [MaxTypeLen] bytes of printable UTF-8 with
// no CR, LF or NUL, and not the reserved [HistoryLostType].
func ValidateType(typ string) error {
	if len(typ) > MaxTypeLen {
		return invalid("type is %d bytes, at most %d allowed", len(typ), MaxTypeLen)
	}
	if !utf8.ValidString(typ) {
		return invalid("type is not valid UTF-8")
	}
	for _, r := range typ {
		if r < 0x20 || r == 0x7f {
			return invalid("type must not contain control characters")
		}
	}
	if typ == HistoryLostType {
		return invalid("type %q is reserved for the gateway", typ)
	}
	return nil
}

// ValidateData reports whether data can be carried to an EventSource intact:
// it must be valid UTF-8 (a browser replaces invalid bytes) and at most
// maxBytes long when maxBytes > 0.
func ValidateData(data string, maxBytes int) error {
	if maxBytes > 0 && len(data) > maxBytes {
		return &validationError{msg: fmt.Sprintf("data is %d bytes, at most %d allowed", len(data), maxBytes), kind: ErrTooLarge}
	}
	if !utf8.ValidString(data) {
		return invalid("data is not valid UTF-8")
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// MaxIdempotencyKeyLen is the longest idempotency key accepted.
const MaxIdempotencyKeyLen = 128

// ValidateIdempotencyKey reports whether key can name an idempotency record:
// 1 to 128 bytes of ASCII letters, digits and - _ . :
func ValidateIdempotencyKey(key string) error {
	if key == "" || len(key) > MaxIdempotencyKeyLen {
		return invalid("idempotency key must be 1 to %d bytes", MaxIdempotencyKeyLen)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return invalid("idempotency key has %q at byte %d; allowed are letters, digits and - _ . :", c, i)
		}
	}
	return nil
}
