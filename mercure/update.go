package mercure

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// EarliestID is the reserved last event id that asks for every update the
// hub still has; it is also the Last-Event-ID response header's value when
// no event precedes the first one sent.
const EarliestID = "earliest"

// ReservedNamespace is the part of a topic that marks the hub's own topics
// (subscription events). Publishers may not use it.
const ReservedNamespace = "/.well-known/mercure"

// MaxIDBytes is the longest update id accepted from a publisher, and
// MaxTypeBytes the longest event type. Mercure sets no limit; ids travel
// back in Last-Event-ID request headers, which servers and proxies limit.
const (
	MaxIDBytes   = 1024
	MaxTypeBytes = 1024
)

// Update is one Mercure update.
type Update struct {
	// Topics are the update's topics: the first is the canonical one, the
	// others are alternates. A subscriber matching any of them gets the
	// update once.
	Topics []string
	// Data is the content, sent as the event's data (any bytes; one data:
	// line per line).
	Data string
	// Private updates reach only subscribers whose mercure.subscribe claim
	// matches one of Topics.
	Private bool
	// ID is the update's id, sent as the event's id: the publisher's, or a
	// urn:uuid: the hub generated.
	ID string
	// Type is the event type (SSE "event"); empty for the default "message".
	Type string
	// Retry is the reconnection time in milliseconds (SSE "retry"); 0 for
	// none.
	Retry uint64
}

// NewID returns a fresh update id, "urn:uuid:" and a random (version 4)
// UUID.
func NewID() string {
	var u [16]byte
	_, _ = rand.Read(u[:]) // never fails (crypto/rand.Read crashes the program instead)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	var b [45]byte
	copy(b[:], "urn:uuid:")
	hex.Encode(b[9:17], u[0:4])
	b[17] = '-'
	hex.Encode(b[18:22], u[4:6])
	b[22] = '-'
	hex.Encode(b[23:27], u[6:8])
	b[27] = '-'
	hex.Encode(b[28:32], u[8:10])
	b[32] = '-'
	hex.Encode(b[33:45], u[10:16])
	return string(b[:])
}

// Validate applies the rules Mercure v0.24 checks after it has authorized a
// publisher (in its order), and ours:
//
//   - a topic containing "/.well-known/mercure": 403, as Mercure;
//   - an id or type containing NUL, CR or LF: 400, as Mercure (they would
//     let a publisher inject SSE fields);
//   - ours, for exact resumption: an id starting with "#" (the spec's MUST
//     NOT), equal to "earliest", not valid UTF-8, containing any other
//     control character, or over [MaxIDBytes]; a type not valid UTF-8 or
//     over [MaxTypeBytes]; a topic over [MaxTopicBytes]: 400.
//
// An empty ID is valid (the hub generates one).
func (u *Update) Validate() error {
	for _, t := range u.Topics {
		if strings.Contains(t, ReservedNamespace) {
			return newError(ErrReserved, `%q: topic value references the reserved "/.well-known/mercure" namespace`, t)
		}
		if len(t) > MaxTopicBytes {
			return invalid("topic %q is %d bytes, at most %d allowed", truncate(t, 64), len(t), MaxTopicBytes)
		}
	}
	if err := validateID(u.ID); err != nil {
		return err
	}
	if strings.ContainsAny(u.Type, "\x00\r\n") {
		return invalid(`"type" field contains a forbidden control character`)
	}
	if !utf8.ValidString(u.Type) {
		return invalid(`"type" field is not valid UTF-8`)
	}
	if len(u.Type) > MaxTypeBytes {
		return invalid(`"type" field is %d bytes, at most %d allowed`, len(u.Type), MaxTypeBytes)
	}
	return nil
}

func validateID(id string) error {
	if strings.ContainsAny(id, "\x00\r\n") {
		return invalid(`"id" field contains a forbidden control character`)
	}
	switch {
	case strings.HasPrefix(id, "#"):
		return invalid(`"id" field must not start with "#"`)
	case id == EarliestID:
		return invalid(`"id" field must not be the reserved value "earliest"`)
	case len(id) > MaxIDBytes:
		return invalid(`"id" field is %d bytes, at most %d allowed`, len(id), MaxIDBytes)
	case !utf8.ValidString(id):
		return invalid(`"id" field is not valid UTF-8`)
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return invalid(`"id" field contains a forbidden control character`)
		}
	}
	return nil
}

// AppendEvent appends u as a text/event-stream event, byte for byte as
// Mercure v0.24 writes it: "event:" when Type is set, "retry:" when Retry
// is not 0, "id:", then one "data:" line per line of Data (split at CRLF,
// CR or LF), and a blank line.
func (u *Update) AppendEvent(dst []byte) []byte {
	if u.Type != "" {
		dst = append(dst, "event: "...)
		dst = append(dst, u.Type...)
		dst = append(dst, '\n')
	}
	if u.Retry != 0 {
		dst = append(dst, "retry: "...)
		dst = strconv.AppendUint(dst, u.Retry, 10)
		dst = append(dst, '\n')
	}
	dst = append(dst, "id: "...)
	dst = append(dst, u.ID...)
	dst = append(dst, "\ndata: "...)
	d := u.Data
	for {
		i := strings.IndexAny(d, "\r\n")
		if i < 0 {
			break
		}
		dst = append(dst, d[:i]...)
		dst = append(dst, "\ndata: "...)
		if d[i] == '\r' && i+1 < len(d) && d[i+1] == '\n' {
			i++
		}
		d = d[i+1:]
	}
	dst = append(dst, d...)
	return append(dst, "\n\n"...)
}

// The encoding of an update, for one Redis stream entry field and one
// pub/sub envelope:
//
//	update  = version flags id type retry ntopics *topic data
//	version = "1"
//	flags   = "0" / "1"                ; "1": private
//	id      = field
//	type    = field
//	retry   = number ";"
//	ntopics = number ";"
//	topic   = field
//	field   = number ":" *OCTET        ; number is the byte length
//	number  = "0" / %x31-39 *DIGIT     ; decimal, no leading zeros
//	data    = *OCTET                   ; the rest of the string
//
// It is lossless for any bytes, and canonical: decoding and encoding again
// gives the same string.
const encodingVersion = '1'

// ErrMalformed is returned by [DecodeUpdate] for a string that is not an
// encoded update.
var ErrMalformed = errors.New("mercure: malformed encoded update")

// Encode returns u's encoding (see [DecodeUpdate]).
func (u *Update) Encode() string { return string(u.AppendEncoded(nil)) }

// AppendEncoded appends u's encoding to dst.
func (u *Update) AppendEncoded(dst []byte) []byte {
	dst = append(dst, encodingVersion)
	if u.Private {
		dst = append(dst, '1')
	} else {
		dst = append(dst, '0')
	}
	dst = appendField(dst, u.ID)
	dst = appendField(dst, u.Type)
	dst = strconv.AppendUint(dst, u.Retry, 10)
	dst = append(dst, ';')
	dst = strconv.AppendInt(dst, int64(len(u.Topics)), 10)
	dst = append(dst, ';')
	for _, t := range u.Topics {
		dst = appendField(dst, t)
	}
	return append(dst, u.Data...)
}

func appendField(dst []byte, s string) []byte {
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	dst = append(dst, ':')
	return append(dst, s...)
}

// DecodeUpdate decodes a string made by [Update.Encode]. The update's
// strings share s's memory. It returns an error matching ErrMalformed, and
// never panics, whatever s holds.
func DecodeUpdate(s string) (*Update, error) {
	d := decoder{s: s}
	if len(s) < 2 || s[0] != encodingVersion {
		return nil, ErrMalformed
	}
	u := &Update{}
	switch s[1] {
	case '0':
	case '1':
		u.Private = true
	default:
		return nil, ErrMalformed
	}
	d.pos = 2
	u.ID = d.field()
	u.Type = d.field()
	u.Retry = d.number(';')
	n := d.number(';')
	// Every topic takes at least two bytes ("0:"): a count beyond that is
	// a lie, refused before anything is allocated for it.
	if d.bad || n > uint64(len(s)-d.pos)/2 {
		return nil, ErrMalformed
	}
	u.Topics = make([]string, n)
	for i := range u.Topics {
		u.Topics[i] = d.field()
	}
	if d.bad {
		return nil, ErrMalformed
	}
	u.Data = s[d.pos:]
	return u, nil
}

type decoder struct {
	s   string
	pos int
	bad bool
}

// number reads a canonical decimal number ending with end.
func (d *decoder) number(end byte) uint64 {
	if d.bad {
		return 0
	}
	i := strings.IndexByte(d.s[d.pos:min(len(d.s), d.pos+21)], end)
	if i <= 0 || (i > 1 && d.s[d.pos] == '0') {
		d.bad = true
		return 0
	}
	digits := d.s[d.pos : d.pos+i]
	for j := 0; j < len(digits); j++ {
		if digits[j] < '0' || digits[j] > '9' {
			d.bad = true
			return 0
		}
	}
	v, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		d.bad = true
		return 0
	}
	d.pos += i + 1
	return v
}

// field reads a length-prefixed field.
func (d *decoder) field() string {
	n := d.number(':')
	if d.bad || n > uint64(len(d.s)-d.pos) {
		d.bad = true
		return ""
	}
	f := d.s[d.pos : d.pos+int(n)]
	d.pos += int(n)
	return f
}
