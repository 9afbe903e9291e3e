package mercure

import (
	"mime"
	"net/url"
	"strconv"
)

// MaxPublishTopics is the most topics one update may have (Mercure's
// limit).
const MaxPublishTopics = 1000

// DefaultMaxDataBytes is the largest data [ParsePublishForm] accepts when
// not configured. (Mercure has no limit of its own on data; its form parser
// refuses bodies over 10 MB.)
const DefaultMaxDataBytes = 64 << 10

// PublishConfig sets the limits of [ParsePublishForm].
type PublishConfig struct {
	// MaxDataBytes is the largest data accepted; 0 means
	// DefaultMaxDataBytes, negative means no limit.
	MaxDataBytes int
}

// ParsePublishForm reads a publish request's body (of the given
// Content-Type) as Mercure v0.24 reads it, and returns the update. The
// caller limits the body's size before reading it, and authorizes the
// publisher (see [Claim.CanPublish]) and then calls [Update.Validate]
// before publishing: that is Mercure's order, so a request gets the
// status Mercure would give it.
//
// It reads, from the form body only (never the URL's query):
//
//   - topic, repeatable: the first is canonical, the rest alternates;
//   - data: the first value, "" if absent;
//   - private: the update is private if the name is present at all, with
//     any value ("on", "", even "false"), as the spec says;
//   - id: the first value; when absent or empty, a fresh [NewID];
//   - type: the first value;
//   - retry: the first value, a decimal uint64; absent or "" means 0.
//
// Other names are ignored. A body whose Content-Type is not
// application/x-www-form-urlencoded is read as an empty form (so it fails
// for want of a topic), as Go's Request.ParseForm does for Mercure.
//
// Errors are [*RequestError]s:
//
//	400 the Content-Type cannot be parsed, or the body is not a valid form
//	    (bad %-escape, a ";" separator); Mercure says "Bad Request"
//	400 Missing "topic" parameter
//	400 too many topics in update                   (over MaxPublishTopics)
//	400 Invalid "retry" parameter
//	413 data over the configured limit              (ours)
func ParsePublishForm(contentType string, body []byte, cfg PublishConfig) (*Update, error) {
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, invalid("Bad Request: invalid Content-Type: %v", err)
	}
	var form url.Values
	if mt == "application/x-www-form-urlencoded" {
		if form, err = url.ParseQuery(string(body)); err != nil {
			return nil, invalid("Bad Request: the body is not a valid form: %v", err)
		}
	}
	topics := form["topic"]
	if len(topics) == 0 {
		return nil, invalid(`Missing "topic" parameter`)
	}
	if len(topics) > MaxPublishTopics {
		return nil, invalid("too many topics in update")
	}
	u := &Update{Topics: topics, Data: form.Get("data"), ID: form.Get("id"), Type: form.Get("type")}
	if s := form.Get("retry"); s != "" {
		if u.Retry, err = strconv.ParseUint(s, 10, 64); err != nil {
			return nil, invalid(`Invalid "retry" parameter`)
		}
	}
	_, u.Private = form["private"]
	limit := cfg.MaxDataBytes
	if limit == 0 {
		limit = DefaultMaxDataBytes
	}
	if limit > 0 && len(u.Data) > limit {
		return nil, newError(ErrTooLarge, `"data" is %d bytes, at most %d allowed`, len(u.Data), limit)
	}
	if u.ID == "" {
		u.ID = NewID()
	}
	return u, nil
}
