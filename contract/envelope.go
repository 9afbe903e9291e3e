package contract

import (
	"errors"
	"strings"
)

// The first line of an envelope: its version, which says what fields
// follow.
const (
	// EnvelopeVersion is a topic's envelope, the same since contract v1.
	EnvelopeVersion = "1"
	// FeedEnvelopeVersion is a feed's envelope, which names the event's
	// topic (contract v2).
	FeedEnvelopeVersion = "2"
)

// Envelope is what the publish script sends on a source's channel. On the
// wire it is LF-separated fields, the last of which (the data) may itself
// contain any bytes. On a topic's channel:
//
//	1\n<id>\n<prev>\n<type>\n<data>
//
// and on a feed's, where prev is the feed's previous event and the topic is
// the one the event was published to:
//
//	2\n<id>\n<prev>\n<topic>\n<type>\n<data>
//
// ID is the event's stream id (the same in the topic's and the feed's
// history), Prev the id of the source's previous event ("0-0" for the
// first), Type may be empty, Topic is empty on a topic's channel.
type Envelope struct {
	ID, Prev, Topic, Type, Data string
}

// errEnvelope is returned for payloads that are not an envelope.
var errEnvelope = errors.New("contract: malformed envelope")

// ParseEnvelope decodes a channel payload. The returned strings share
// payload's memory.
func ParseEnvelope(payload string) (Envelope, error) {
	var f [5]string
	n := 4
	if strings.HasPrefix(payload, FeedEnvelopeVersion+"\n") {
		n = 5
	}
	rest := payload
	for i := range n {
		j := strings.IndexByte(rest, '\n')
		if j < 0 {
			return Envelope{}, errEnvelope
		}
		f[i], rest = rest[:j], rest[j+1:]
	}
	if f[1] == "" || f[2] == "" {
		return Envelope{}, errEnvelope
	}
	switch f[0] {
	case EnvelopeVersion:
		return Envelope{ID: f[1], Prev: f[2], Type: f[3], Data: rest}, nil
	case FeedEnvelopeVersion:
		if f[3] == "" {
			return Envelope{}, errEnvelope
		}
		return Envelope{ID: f[1], Prev: f[2], Topic: f[3], Type: f[4], Data: rest}, nil
	}
	return Envelope{}, errEnvelope
}

// String encodes e in the wire form ParseEnvelope reads: a feed's when it
// names a topic, a topic's otherwise.
func (e Envelope) String() string {
	if e.Topic != "" {
		return FeedEnvelopeVersion + "\n" + e.ID + "\n" + e.Prev + "\n" + e.Topic + "\n" + e.Type + "\n" + e.Data
	}
	return EnvelopeVersion + "\n" + e.ID + "\n" + e.Prev + "\n" + e.Type + "\n" + e.Data
}
