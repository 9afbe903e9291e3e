package contract

import (
	"errors"
	"strings"
)

// EnvelopeVersion is the first line of every envelope this package writes.
const EnvelopeVersion = "1"

// Envelope is what the publish script sends on a topic's channel. On the wire
// it is five fields separated by LF, the last of which (the data) may itself
// contain any bytes:
//
//	1\n<id>\n<prev>\n<type>\n<data>
//
// ID is the event's stream id, Prev the id of the topic's previous event
// ("0-0" for the first), Type may be empty.
type Envelope struct {
	ID, Prev, Type, Data string
}

// errEnvelope is returned for payloads that are not a version 1 envelope.
var errEnvelope = errors.New("contract: malformed envelope")

// ParseEnvelope decodes a channel payload. The returned strings share
// payload's memory.
func ParseEnvelope(payload string) (Envelope, error) {
	var f [4]string
	rest := payload
	for i := range f {
		j := strings.IndexByte(rest, '\n')
		if j < 0 {
			return Envelope{}, errEnvelope
		}
		f[i], rest = rest[:j], rest[j+1:]
	}
	if f[0] != EnvelopeVersion || f[1] == "" || f[2] == "" {
		return Envelope{}, errEnvelope
	}
	return Envelope{ID: f[1], Prev: f[2], Type: f[3], Data: rest}, nil
}

// String encodes e in the wire form ParseEnvelope reads.
func (e Envelope) String() string {
	return EnvelopeVersion + "\n" + e.ID + "\n" + e.Prev + "\n" + e.Type + "\n" + e.Data
}
