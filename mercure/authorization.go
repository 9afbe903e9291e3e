package mercure

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// DefaultCookieName is the cookie Mercure reads a token from.
const DefaultCookieName = "mercureAuthorization"

// Claims is the part of a JWT's claims object Mercure reads: decode a
// verified token's claims into it (auth.KeyVerifier.VerifyClaims does),
// then use [Claims.Claim].
type Claims struct {
	Mercure Claim `json:"mercure"`
	// Namespaced is the same claim under "https://mercure.rocks/"; when
	// present it replaces Mercure, as in Mercure.
	Namespaced *Claim `json:"https://mercure.rocks/"`
}

// Claim is the "mercure" claim of a JWT. Encoded (gateway token writes
// one), its empty fields are left out.
type Claim struct {
	// Publish are the selectors of the topics the bearer may publish to.
	// nil (absent or null) means the token cannot publish at all; Mercure
	// refuses it (401) before reading the request's form. An empty list
	// fails later, at [Claim.CanPublish].
	Publish []string `json:"publish,omitempty"`
	// Subscribe are the selectors of the private updates the bearer may
	// receive, and of the subscriptions API URLs it may read.
	Subscribe []string `json:"subscribe,omitempty"`
	// Payload is attached to the bearer's subscriptions (subscription
	// events and the subscriptions API); nil when absent or null.
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Claim returns the effective mercure claim: the namespaced one when
// present, otherwise "mercure" (the zero Claim when the token has neither).
// Its payload is rewritten as Mercure writes it back out (it decodes the
// payload into Go values and encodes them again: object keys sorted, numbers
// as float64). It refuses (ErrUnauthorized, 401 as Mercure) a claim with
// more than [MaxClaimSelectors] publish or subscribe selectors.
func (c *Claims) Claim() (*Claim, error) {
	cl := c.Mercure
	if c.Namespaced != nil {
		cl = *c.Namespaced
	}
	if len(cl.Publish) > MaxClaimSelectors || len(cl.Subscribe) > MaxClaimSelectors {
		return nil, newError(ErrUnauthorized, "too many matchers in mercure claim")
	}
	p, err := normalizePayload(cl.Payload)
	if err != nil {
		return nil, newError(ErrUnauthorized, "mercure.payload: %v", err)
	}
	cl.Payload = p
	return &cl, nil
}

func normalizePayload(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// CanPublish reports whether the claim allows publishing an update with
// topics, as Mercure v0.24 decides: "*" among the publish selectors allows
// everything; otherwise every topic (canonical and alternates) must match
// one of them. Mercure answers a refusal with 401 (the spec says 403).
func (c *Claim) CanPublish(cache *SelectorCache, topics []string) bool {
	for _, s := range c.Publish {
		if s == AnySelector {
			return true
		}
	}
	for _, t := range topics {
		if !anySelectorMatches(cache, c.Publish, t) {
			return false
		}
	}
	return true
}

// CanReceive reports whether the claim's subscribe selectors match one of
// topics: whether its bearer may receive a private update with those topics
// (canonical or alternate), or read a subscriptions API URL (topics = the
// request URI). A nil claim (anonymous) can receive nothing private.
func (c *Claim) CanReceive(cache *SelectorCache, topics []string) bool {
	if c == nil {
		return false
	}
	for _, t := range topics {
		if anySelectorMatches(cache, c.Subscribe, t) {
			return true
		}
	}
	return false
}

// anySelectorMatches: a selector that does not compile (too long, too many
// variables) still matches itself, as every selector does.
func anySelectorMatches(cache *SelectorCache, selectors []string, topic string) bool {
	for _, s := range selectors {
		if s == AnySelector || s == topic {
			return true
		}
		var sel *Selector
		var err error
		if cache != nil {
			sel, err = cache.Get(s)
		} else {
			sel, err = ParseSelector(s)
		}
		if err == nil && sel.Match(topic) {
			return true
		}
	}
	return false
}

// TokenSource says where a request's token came from.
type TokenSource uint8

const (
	// SourceNone: the request carries no token (an anonymous subscriber).
	SourceNone TokenSource = iota
	// SourceHeader: the Authorization header ("Bearer <token>").
	SourceHeader
	// SourceQuery: the "authorization" query parameter.
	SourceQuery
	// SourceCookie: the authorization cookie.
	SourceCookie
)

func (s TokenSource) String() string {
	switch s {
	case SourceNone:
		return "none"
	case SourceHeader:
		return "header"
	case SourceQuery:
		return "query"
	case SourceCookie:
		return "cookie"
	}
	return fmt.Sprintf("TokenSource(%d)", s)
}

// TokenRequest is what a request shows of its credentials.
type TokenRequest struct {
	// Header holds the values of the Authorization header; nil when the
	// request has none.
	Header []string
	// Query holds the values of the "authorization" query parameter; nil
	// when the URL has none.
	Query []string
	// Cookie is the value of the first cookie named as configured
	// (DefaultCookieName unless set), and HasCookie whether there is one.
	Cookie    string
	HasCookie bool
	// Post is true for a POST (publishing): a cookie token then needs an
	// Origin (or Referer) among the publish origins.
	Post bool
	// Origin and Referer are the request's headers of those names.
	Origin, Referer string
}

// Token finds the request's token in Mercure's order of precedence; the
// first source present is the only one used, even when its token then fails
// verification:
//
//  1. the Authorization header: exactly one, "Bearer " and a token (the
//     scheme's case is not significant here; Mercure requires "Bearer");
//  2. the "authorization" query parameter: exactly one, non-empty;
//  3. the cookie, even with an empty value (which then fails
//     verification). For a POST, the request's Origin, or when it has none
//     the scheme://host of its Referer, must be among publishOrigins
//     (CSRF protection); with neither header the request is refused.
//
// No source gives ("", SourceNone, nil): anonymous. Errors match
// ErrUnauthorized (Mercure answers 401).
func (r TokenRequest) Token(publishOrigins Origins) (string, TokenSource, error) {
	if r.Header != nil {
		if len(r.Header) != 1 {
			return "", SourceHeader, newError(ErrUnauthorized, `invalid "Authorization" HTTP header`)
		}
		scheme, tok, ok := strings.Cut(r.Header[0], " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
			return "", SourceHeader, newError(ErrUnauthorized, `invalid "Authorization" HTTP header`)
		}
		return tok, SourceHeader, nil
	}
	if r.Query != nil {
		if len(r.Query) != 1 || r.Query[0] == "" {
			return "", SourceQuery, newError(ErrUnauthorized, `invalid "authorization" Query parameter`)
		}
		return r.Query[0], SourceQuery, nil
	}
	if !r.HasCookie {
		return "", SourceNone, nil
	}
	if !r.Post {
		return r.Cookie, SourceCookie, nil
	}
	origin := r.Origin
	if origin == "" {
		if r.Referer == "" {
			return "", SourceCookie, newError(ErrUnauthorized,
				`an "Origin" or a "Referer" HTTP header must be present to use the cookie-based authorization mechanism`)
		}
		u, err := url.Parse(r.Referer)
		if err != nil {
			return "", SourceCookie, newError(ErrUnauthorized, "unable to parse referer: %v", err)
		}
		origin = u.Scheme + "://" + u.Host
	}
	if !publishOrigins.Allows(origin) {
		return "", SourceCookie, newError(ErrUnauthorized, "%q: origin not allowed to post updates", origin)
	}
	return r.Cookie, SourceCookie, nil
}

// Origins is a list of allowed origins, as Mercure's publish_origins and
// cors_origins take them: "*" allows every origin, an entry with one "*"
// allows every origin with its prefix and suffix
// ("https://*.example.com"), others allow themselves. Matching ignores
// case. The zero Origins allows none.
type Origins struct {
	all   bool
	exact []string
	wild  [][2]string
}

// ParseOrigins checks and compiles origins. Each must be "*", "null", or a
// URL with a scheme, a host and optionally a port, and nothing else (no
// path, not even "/"), as Mercure requires.
func ParseOrigins(origins []string) (Origins, error) {
	var o Origins
	for _, origin := range origins {
		if origin != "*" && origin != "null" {
			u, err := url.Parse(origin)
			if err != nil || !u.IsAbs() || u.Opaque != "" || u.User != nil || u.Path != "" ||
				u.RawQuery != "" || u.Fragment != "" || u.Host == "" || strings.HasSuffix(origin, "?") || strings.HasSuffix(origin, "#") {
				return Origins{}, fmt.Errorf(`mercure: invalid origin %q: must be a URL having only a scheme, a host and optionally a port, "*" or "null"`, origin)
			}
		}
		origin = strings.ToLower(origin)
		if origin == "*" {
			return Origins{all: true}, nil
		}
		if prefix, suffix, ok := strings.Cut(origin, "*"); ok {
			o.wild = append(o.wild, [2]string{prefix, suffix})
		} else {
			o.exact = append(o.exact, origin)
		}
	}
	return o, nil
}

// All reports whether every origin is allowed ("*").
func (o Origins) All() bool { return o.all }

// Allows reports whether origin is allowed.
func (o Origins) Allows(origin string) bool {
	if o.all {
		return true
	}
	origin = strings.ToLower(origin)
	for _, e := range o.exact {
		if e == origin {
			return true
		}
	}
	for _, w := range o.wild {
		if len(origin) >= len(w[0])+len(w[1]) && strings.HasPrefix(origin, w[0]) && strings.HasSuffix(origin, w[1]) {
			return true
		}
	}
	return false
}
