package contract

import (
	"errors"
	"strconv"
	"strings"
)

// ID is a Redis stream id, <ms>-<seq>. The zero ID, 0-0, is the position
// before a topic's first event. IDs order by Ms, then Seq.
type ID struct {
	Ms, Seq uint64
}

var errBadID = errors.New("contract: malformed stream id")

// ParseID parses "<ms>-<seq>" as Redis writes it: decimal digits only, no
// signs, no spaces, each part fitting 64 bits.
func ParseID(s string) (ID, error) {
	ms, seq, ok := strings.Cut(s, "-")
	if !ok || !digits(ms) || !digits(seq) {
		return ID{}, errBadID
	}
	m, err := strconv.ParseUint(ms, 10, 64)
	if err != nil {
		return ID{}, errBadID
	}
	q, err := strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return ID{}, errBadID
	}
	return ID{Ms: m, Seq: q}, nil
}

func digits(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String returns the Redis form of id.
func (id ID) String() string { return string(id.AppendTo(nil)) }

// AppendTo appends the Redis form of id to b.
func (id ID) AppendTo(b []byte) []byte {
	b = strconv.AppendUint(b, id.Ms, 10)
	b = append(b, '-')
	return strconv.AppendUint(b, id.Seq, 10)
}

// Less reports whether id orders before o.
func (id ID) Less(o ID) bool {
	return id.Ms < o.Ms || (id.Ms == o.Ms && id.Seq < o.Seq)
}

// IsZero reports whether id is 0-0.
func (id ID) IsZero() bool { return id == ID{} }
