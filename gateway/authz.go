package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ssegateway/ssegateway/auth"
)

// The token sources, in order of precedence: the Authorization header (a
// bearer token), then the cookie, then the query parameter. The first
// source present is the only one used.
const (
	sourceHeader = "header"
	sourceCookie = "cookie"
	sourceQuery  = "query"
)

// subscriberToken finds a subscriber's token and says where it was.
func (s *Server) subscriberToken(c echo.Context) (token, source string, herr *httpErr) {
	if tok, present, err := bearer(c.Request()); present {
		return tok, sourceHeader, err
	}
	if s.cfg.TokenCookie != "" {
		if ck, err := c.Cookie(s.cfg.TokenCookie); err == nil && ck.Value != "" {
			return ck.Value, sourceCookie, nil
		}
	}
	if s.cfg.TokenQueryParam != "" {
		if v := c.QueryParam(s.cfg.TokenQueryParam); v != "" {
			return v, sourceQuery, nil
		}
	}
	return "", "", nil
}

// bearer reads an Authorization: Bearer header.
func bearer(r *http.Request) (token string, present bool, err *httpErr) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false, nil
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", true, &httpErr{http.StatusUnauthorized, `the Authorization header must be "Bearer <token>"`}
	}
	return strings.TrimSpace(tok), true, nil
}

// grantFor verifies token. No token gives a nil grant: anonymous.
func (s *Server) grantFor(c echo.Context, token string) (*auth.Grant, *httpErr) {
	if token == "" || s.cfg.Auth == nil {
		return nil, nil
	}
	g, err := s.cfg.Auth.Verify(c.Request().Context(), token)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), auth.ErrInvalidToken.Error()+": ")
		if !errors.Is(err, auth.ErrInvalidToken) {
			msg = "token could not be verified"
			s.log.Warn().Err(err).Msg("verifying a token failed")
		}
		return nil, &httpErr{http.StatusUnauthorized, "invalid token: " + msg}
	}
	return g, nil
}

// authorizeSubscribe decides whether the request may stream items (topics
// and patterns). A pattern needs a grant (or a public pattern) that covers
// every topic it can match. It returns the token's expiry (zero if none)
// and subject (empty if none), or the refusal.
func (s *Server) authorizeSubscribe(c echo.Context, items []string) (time.Time, string, *httpErr) {
	if s.cfg.AllowAnonymous {
		return time.Time{}, "", nil
	}
	token, source, herr := s.subscriberToken(c)
	if herr != nil {
		return time.Time{}, "", herr
	}
	g, herr := s.grantFor(c, token)
	if herr != nil {
		// A browser sends its cookie (or its EventSource's URL, with a
		// query token) on every reconnect, and an EventSource never retries
		// after a 401: a stale token there would lock it out of topics
		// anyone may read. So a request for public topics only is served
		// as anonymous, whatever its cookie or query token says. An
		// Authorization header is chosen by the client on every request:
		// a bad one is answered 401, so the client learns and fixes it.
		if source != sourceHeader && s.allPublic(items) {
			s.m.tokensIgnored.WithLabelValues(source).Inc()
			return time.Time{}, "", nil
		}
		return time.Time{}, "", herr
	}
	var denied []string
	for _, t := range items {
		if allows(s.cfg.PublicTopics, t) || g != nil && allows(g.Subscribe, t) {
			continue
		}
		denied = append(denied, t)
	}
	switch {
	case len(denied) == 0 && g != nil:
		return g.Expires, g.Subject, nil
	case len(denied) == 0:
		return time.Time{}, "", nil
	case g == nil:
		return time.Time{}, "", &httpErr{http.StatusUnauthorized, "a token is required for: " + strings.Join(denied, ", ")}
	}
	return time.Time{}, "", &httpErr{http.StatusForbidden, "the token does not allow subscribing to: " + strings.Join(denied, ", ")}
}

// allPublic reports whether anyone may subscribe to every one of items.
func (s *Server) allPublic(items []string) bool {
	for _, t := range items {
		if !allows(s.cfg.PublicTopics, t) {
			return false
		}
	}
	return true
}

// allows reports whether ps let a client subscribe to item: a topic they
// match, or a pattern one of them covers.
func allows(ps auth.Patterns, item string) bool {
	if !isPattern(item) {
		return ps.Allows(item)
	}
	p, err := auth.ParsePattern(item)
	return err == nil && ps.Covers(p)
}

// publisher is who sends a POST /publish: its grant (nil when anyone may
// publish) and its key for rate limiting.
type publisher struct {
	grant *auth.Grant
	key   string
}

// authenticatePublisher checks the publisher's token, from the headers
// alone, so that a request without one is refused before its body is read:
// the token must be valid and grant publishing on something. Publishers
// are services: only the Authorization header carries their token. The
// publisher's key is the token's subject, else the client's address.
func (s *Server) authenticatePublisher(c echo.Context) (publisher, *httpErr) {
	if s.cfg.AllowAnonymous {
		return publisher{key: addrKey(c.RealIP())}, nil
	}
	token, _, herr := bearer(c.Request())
	if herr != nil {
		return publisher{}, herr
	}
	if token == "" {
		return publisher{}, &httpErr{http.StatusUnauthorized, "publishing requires a bearer token"}
	}
	g, herr := s.grantFor(c, token)
	if herr != nil {
		return publisher{}, herr
	}
	if len(g.Publish) == 0 {
		return publisher{}, &httpErr{http.StatusForbidden, "the token does not allow publishing"}
	}
	return publisher{grant: g, key: clientKey(g.Subject, c.RealIP())}, nil
}

// authorizeTopic decides whether p may publish on topic.
func (p publisher) authorizeTopic(topic string) *httpErr {
	if p.grant != nil && !p.grant.Publish.Allows(topic) {
		return &httpErr{http.StatusForbidden, fmt.Sprintf("the token does not allow publishing to: %s", topic)}
	}
	return nil
}

// refuse answers an authorization failure: 401s carry WWW-Authenticate.
func (s *Server) refuse(c echo.Context, e *httpErr) error {
	if e.status == http.StatusUnauthorized {
		v := `Bearer realm="ssegateway"`
		if strings.HasPrefix(e.msg, "invalid token") {
			v += `, error="invalid_token"`
		}
		c.Response().Header().Set("WWW-Authenticate", v)
	}
	s.m.authRefused.WithLabelValues(fmt.Sprint(e.status)).Inc()
	return jsonError(c, e.status, e.msg)
}
