package gateway

import (
	"hash/fnv"
	"strings"

	"github.com/ssegateway/ssegateway/contract"
)

// The cursor is what a client gets in id: and sends back as Last-Event-ID.
//
// A stream of one topic uses the event's stream id itself: "1732406400000-3".
//
// A stream of several topics carries every topic's position:
//
//	m1.<tag><ms>[_<seq>].<tag><ms>[_<seq>]...
//
// one entry per topic in the stream's (sorted) topic order. <tag> is four
// base62 characters of a hash of the topic name, so positions follow their
// topics even if the client reconnects with topics added or removed; <ms>
// and <seq> are the position's stream id in base62, the _<seq> part left out
// when it is 0. Typical cursors of up to 8 topics stay under 128 bytes, and
// every character is an unreserved URL character that CORS lets through.
const (
	multiPrefix  = "m1"
	tagLen       = 4
	maxCursorLen = 4096
	base62       = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// cursorTag returns the 4-character tag of a topic name.
func cursorTag(topic string) string {
	h := fnv.New32a()
	h.Write([]byte(topic))
	v := h.Sum32() % (62 * 62 * 62 * 62)
	var b [tagLen]byte
	for i := tagLen - 1; i >= 0; i-- {
		b[i] = base62[v%62]
		v /= 62
	}
	return string(b[:])
}

// cursorTags returns the tags of topics.
func cursorTags(topics []string) []string {
	tags := make([]string, len(topics))
	for i, t := range topics {
		tags[i] = cursorTag(t)
	}
	return tags
}

// appendCursor appends the cursor for positions pos of a stream whose topics
// have the given tags.
func appendCursor(b []byte, tags []string, pos []contract.ID) []byte {
	if len(tags) == 1 {
		return pos[0].AppendTo(b)
	}
	b = append(b, multiPrefix...)
	for i, p := range pos {
		b = append(b, '.')
		b = append(b, tags[i]...)
		b = appendBase62(b, p.Ms)
		if p.Seq != 0 {
			b = append(b, '_')
			b = appendBase62(b, p.Seq)
		}
	}
	return b
}

func appendBase62(b []byte, v uint64) []byte {
	var tmp [11]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = base62[v%62]
		v /= 62
		if v == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}

func parseBase62(s string) (uint64, bool) {
	if s == "" || len(s) > 11 {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		d := strings.IndexByte(base62, s[i])
		if d < 0 {
			return 0, false
		}
		hi := v * 62
		if hi/62 != v || hi+uint64(d) < hi {
			return 0, false
		}
		v = hi + uint64(d)
	}
	return v, true
}

// startKind says where a topic of a (re)connecting stream starts.
type startKind uint8

const (
	startLive     startKind = iota // no position: start with the next event (after id, if set)
	startAt                        // resume after the given id
	startInvalid                   // a cursor was given but cannot place this topic
	startEarliest                  // everything the history still holds, with no history-lost for what it does not
)

type start struct {
	kind startKind
	id   contract.ID
}

// decodeCursor places each of the stream's topics from the cursor s. An
// empty s starts every topic live. A cursor that cannot be read at all marks
// every topic invalid; the stream answers that with a history-lost event,
// never with an error status, because EventSource never retries after one.
func decodeCursor(s string, tags []string) []start {
	n := len(tags)
	out := make([]start, n)
	if s == "" {
		return out
	}
	invalid := func() []start {
		for i := range out {
			out[i] = start{kind: startInvalid}
		}
		return out
	}
	if len(s) > maxCursorLen {
		return invalid()
	}
	rest, multi := strings.CutPrefix(s, multiPrefix+".")
	if !multi {
		id, err := contract.ParseID(s)
		if err != nil || n != 1 {
			// A bare id cannot say which of several topics it belongs to.
			return invalid()
		}
		out[0] = start{kind: startAt, id: id}
		return out
	}
	seen := make(map[string]contract.ID)
	dup := make(map[string]bool)
	for _, e := range strings.Split(rest, ".") {
		if len(e) < tagLen+1 {
			return invalid()
		}
		tag, num := e[:tagLen], e[tagLen:]
		ms, seq, hasSeq := strings.Cut(num, "_")
		var id contract.ID
		var ok bool
		if id.Ms, ok = parseBase62(ms); !ok {
			return invalid()
		}
		if hasSeq {
			if id.Seq, ok = parseBase62(seq); !ok || id.Seq == 0 {
				return invalid()
			}
		}
		if _, ok := seen[tag]; ok {
			dup[tag] = true
		}
		seen[tag] = id
	}
	own := make(map[string]int)
	for _, t := range tags {
		own[t]++
	}
	for i, t := range tags {
		id, ok := seen[t]
		switch {
		case !ok:
			out[i] = start{kind: startLive}
		case dup[t] || own[t] > 1:
			out[i] = start{kind: startInvalid} // two topics share a tag: ambiguous
		default:
			out[i] = start{kind: startAt, id: id}
		}
	}
	return out
}
