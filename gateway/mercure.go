package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ssegateway/ssegateway/auth"
	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/gateway/fanout"
	"github.com/ssegateway/ssegateway/mercure"
	"github.com/ssegateway/ssegateway/pubsub"
)

// The Mercure endpoint (/.well-known/mercure) speaks the protocol of
// Mercure v0.24 on the gateway's engine. Its updates go to one feed, the
// hub's, whose entries carry the whole update (mercure.Update's encoding)
// and, as their topic field, the update's id; every node follows that feed
// and matches each update once per distinct subscriber filter
// (mercure.Matcher), resumes subscribers from the feed by the update id
// they last saw (a lookup record the publish writes), and repairs gaps like
// any feed. So the hub scales out with the nodes, resumes exactly on any
// node, and needs nothing of Mercure's own transports.

// mercureFeed is the hub's feed. "$" is not a topic character, so no topic
// of /events can fall into it.
const mercureFeed = "$mercure" + contract.FeedSuffix

// mercureCursorPrefix starts the ids the hub writes itself — a stream's
// checkpoint, a history-lost event — where no update id exists: the
// position in the hub's feed. A publisher may not choose such an id.
const mercureCursorPrefix = "urn:ssegateway:cursor:"

// MercureConfig turns the Mercure endpoint on.
type MercureConfig struct {
	// Publisher verifies publishers' tokens (their mercure.publish claim).
	Publisher *auth.KeyVerifier
	// Subscriber verifies subscribers' tokens (mercure.subscribe unlocks
	// private updates). Nil with Anonymous: subscribers are not asked for
	// tokens; nil without: every subscription is refused.
	Subscriber *auth.KeyVerifier
	// Anonymous lets subscribers without a token receive public updates.
	Anonymous bool
	// Subscriptions publishes subscription events and serves the
	// subscriptions API; Registry lists every node's subscribers for it.
	Subscriptions bool
	Registry      *mercure.Registry
	// CORSOrigins may subscribe and publish from a browser (cookies
	// included, as Mercure); PublishOrigins may publish with the cookie.
	CORSOrigins, PublishOrigins []string
	// CookieName is the cookie a token may come in; mercureAuthorization.
	CookieName string
	// MaxDataBytes bounds an update's data; the engine's limit by default.
	MaxDataBytes int
}

// FeedPublisher appends to a feed with no topic streams of its own;
// *pubsub.Publisher implements it.
type FeedPublisher interface {
	PublishFeed(ctx context.Context, m pubsub.FeedMessage) (string, error)
}

// mercureHub is the endpoint's state on a node.
type mercureHub struct {
	cfg            MercureConfig
	pub            FeedPublisher
	cache          *mercure.SelectorCache
	cors, origins  mercure.Origins
	maxBodyBytes   int64
	publishTimeout time.Duration
}

func newMercureHub(cfg MercureConfig, pub Publisher, maxBody int64) (*mercureHub, error) {
	fp, ok := pub.(FeedPublisher)
	if !ok {
		return nil, errors.New("the Mercure endpoint needs a publisher that can publish to a feed")
	}
	if cfg.Publisher == nil {
		return nil, errors.New("the Mercure endpoint needs a publisher key")
	}
	if cfg.Subscriptions && cfg.Registry == nil {
		return nil, errors.New("Mercure subscriptions need a registry")
	}
	if cfg.CookieName == "" {
		cfg.CookieName = mercure.DefaultCookieName
	}
	h := &mercureHub{cfg: cfg, pub: fp, cache: mercure.NewSelectorCache(0), maxBodyBytes: maxBody, publishTimeout: 10 * time.Second}
	var err error
	if h.cors, err = mercure.ParseOrigins(cfg.CORSOrigins); err != nil {
		return nil, fmt.Errorf("Mercure CORS origins: %w", err)
	}
	if h.origins, err = mercure.ParseOrigins(cfg.PublishOrigins); err != nil {
		return nil, fmt.Errorf("Mercure publish origins: %w", err)
	}
	return h, nil
}

// mercureUpdate returns the update a Mercure feed event carries, decoded
// once per event (kept in ev.Meta); nil if it is not one.
func mercureUpdate(ev *fanout.Event) *mercure.Update {
	if u, ok := ev.Meta.(*mercure.Update); ok {
		return u
	}
	u, err := mercure.DecodeUpdate(ev.Data)
	if err != nil {
		return nil
	}
	ev.Meta = u
	return u
}

// mercureForm writes events as Mercure does, with the update's own id.
type mercureForm struct{}

// AppendEvent implements fanout.Form.
func (mercureForm) AppendEvent(b []byte, ev *fanout.Event) []byte {
	if u := mercureUpdate(ev); u != nil {
		return u.AppendEvent(b)
	}
	return b
}

// mercureIndex picks a hub feed's subscribers through a mercure.Matcher:
// each distinct filter once per update, each distinct selector once.
type mercureIndex struct {
	m       *mercure.Matcher
	members map[*mercure.Interest]map[*fanout.Member]struct{}
	of      map[*fanout.Member]*mercure.Interest
	buf     []*mercure.Interest
}

func newMercureIndex(cache *mercure.SelectorCache) *mercureIndex {
	return &mercureIndex{m: mercure.NewMatcher(cache),
		members: map[*mercure.Interest]map[*fanout.Member]struct{}{}, of: map[*fanout.Member]*mercure.Interest{}}
}

// Add implements fanout.Index.
func (x *mercureIndex) Add(m *fanout.Member) {
	f, _ := m.Want().Filter.(mercure.Filter)
	in, err := x.m.Add(f)
	if err != nil {
		return // the filter was checked at subscribe; an invalid one matches nothing
	}
	if x.members[in] == nil {
		x.members[in] = map[*fanout.Member]struct{}{}
	}
	x.members[in][m] = struct{}{}
	x.of[m] = in
}

// Remove implements fanout.Index.
func (x *mercureIndex) Remove(m *fanout.Member) {
	in := x.of[m]
	if in == nil {
		return
	}
	delete(x.of, m)
	delete(x.members[in], m)
	if len(x.members[in]) == 0 {
		delete(x.members, in)
	}
	x.m.Remove(in)
}

// Match implements fanout.Index.
func (x *mercureIndex) Match(ev *fanout.Event, visit func(*fanout.Member)) {
	u := mercureUpdate(ev)
	if u == nil {
		return
	}
	x.buf = x.m.Match(x.buf[:0], u.Topics, u.Private)
	for _, in := range x.buf {
		for m := range x.members[in] {
			visit(m)
		}
	}
	clear(x.buf)
}

// lookupKey is the key of an update id's lookup record: a hash, since ids
// are any text.
func lookupKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// appendMercureCursor appends the id the hub writes for a position in its
// feed.
func appendMercureCursor(b []byte, pos contract.ID) []byte {
	return pos.AppendTo(append(b, mercureCursorPrefix...))
}

// mercureStream is what a Mercure stream keeps beyond a stream's own.
type mercureStream struct {
	cache      *mercure.SelectorCache
	subscriber *mercure.Subscriber // for subscription events; nil without them
	// announced is the feed id of the subscriber's last subscription event,
	// zero if none: a stream that starts live starts after it.
	announced contract.ID
	// placed is where the cursor places the stream, when the handler
	// already knew it (for the Last-Event-ID response header).
	placed []start
}

// starts places a Mercure subscriber from the id it resumes from:
// "earliest" is everything the hub still has; an update id is found
// through its lookup record (the newest update with that id: publishers
// may reuse ids); one of the hub's own cursors is its position; an id the
// hub does not know gets a history-lost event (Mercure sends nothing and
// goes on live; so do we, after saying so).
func (ms *mercureStream) starts(ctx context.Context, reads *readGroup, cursor string) ([]start, error) {
	switch {
	case ms.placed != nil:
		return ms.placed, nil
	case cursor == "":
		// Live, but past the subscriber's own subscription events: they
		// were published before it joined, yet the node may not have
		// delivered them yet when it did.
		return []start{{kind: startLive, id: ms.announced}}, nil
	case cursor == mercure.EarliestID:
		return []start{{kind: startEarliest}}, nil
	case strings.HasPrefix(cursor, mercureCursorPrefix):
		id, err := contract.ParseID(strings.TrimPrefix(cursor, mercureCursorPrefix))
		if err != nil {
			return []start{{kind: startInvalid}}, nil
		}
		return []start{{kind: startAt, id: id}}, nil
	}
	id, ok, err := reads.lookup(ctx, mercureFeed, lookupKey(cursor))
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return []start{{kind: startInvalid}}, nil
	}
	return []start{{kind: startAt, id: id}}, nil
}

// mercureError answers as Mercure does: the status and a text/plain body.
func mercureError(c echo.Context, status int, msg string) error {
	return c.String(status, msg+"\n")
}

// refuseMercure answers a request error with its protocol status.
func (s *Server) refuseMercure(c echo.Context, err error) error {
	var re *mercure.RequestError
	if errors.As(err, &re) {
		if re.Status == http.StatusUnauthorized {
			s.m.authRefused.WithLabelValues("401").Inc()
		}
		return mercureError(c, re.Status, re.Message)
	}
	return mercureError(c, http.StatusBadRequest, err.Error())
}

// mercureToken finds and verifies a request's token with v into claims.
// It returns the claim (nil: anonymous) and the token (its subject and
// expiry).
func (s *Server) mercureToken(c echo.Context, v *auth.KeyVerifier, post bool) (*mercure.Claim, auth.Token, error) {
	h := s.mercure
	req := c.Request()
	tr := mercure.TokenRequest{Header: req.Header.Values("Authorization"), Post: post,
		Origin: req.Header.Get("Origin"), Referer: req.Header.Get("Referer")}
	if q, ok := req.URL.Query()["authorization"]; ok {
		tr.Query = q
	}
	if ck, err := req.Cookie(h.cfg.CookieName); err == nil {
		tr.Cookie, tr.HasCookie = ck.Value, true
	}
	tok, src, err := tr.Token(h.origins)
	if err != nil {
		return nil, auth.Token{}, err
	}
	if src == mercure.SourceNone {
		return nil, auth.Token{}, nil
	}
	if v == nil {
		return nil, auth.Token{}, &mercure.RequestError{Status: http.StatusUnauthorized, Message: "Unauthorized"}
	}
	var claims mercure.Claims
	t, err := v.VerifyClaims(tok, &claims)
	if err != nil {
		return nil, auth.Token{}, &mercure.RequestError{Status: http.StatusUnauthorized, Message: "Unauthorized"}
	}
	cl, err := claims.Claim()
	if err != nil {
		return nil, auth.Token{}, err
	}
	return cl, t, nil
}

// mercureHeaders are on every answer of the hub, as Mercure sends them.
func mercureHeaders(c echo.Context) {
	h := c.Response().Header()
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Xss-Protection", "1; mode=block")
	h.Set("Content-Security-Policy", "default-src 'self'")
}

// handleMercureSubscribe serves GET /.well-known/mercure: a stream of the
// updates that match the "topic" selectors (and, if private, the token's
// mercure.subscribe), resumed from Last-Event-ID (or lastEventID).
func (s *Server) handleMercureSubscribe(c echo.Context) error {
	h := s.mercure
	mercureHeaders(c)
	var claim *mercure.Claim
	var tok auth.Token
	if h.cfg.Subscriber != nil || !h.cfg.Anonymous {
		var err error
		if claim, tok, err = s.mercureToken(c, h.cfg.Subscriber, false); err != nil {
			return s.refuseMercure(c, err)
		}
		if claim == nil && !h.cfg.Anonymous {
			s.m.authRefused.WithLabelValues("401").Inc()
			return mercureError(c, http.StatusUnauthorized, "Unauthorized")
		}
	}
	req := c.Request()
	query := req.URL.Query()
	topics := query["topic"]
	switch {
	case len(topics) == 0:
		return mercureError(c, http.StatusBadRequest, `Missing "topic" parameter.`)
	case len(topics) > mercure.MaxSubscribeTopics:
		return mercureError(c, http.StatusBadRequest, `Too many "topic" parameters.`)
	}
	for _, t := range topics {
		if _, err := h.cache.Get(t); err != nil {
			return mercureError(c, http.StatusBadRequest, err.Error())
		}
	}
	filter := mercure.Filter{Topics: topics}
	if claim != nil {
		filter.Private = claim.Subscribe
	}
	cursor := mercure.LastEventID(req.Header.Get("Last-Event-ID"), query)
	sub := &subscription{
		items: topics,
		wants: []fanout.Want{{Source: mercureFeed, Filter: filter}},
		mercure: &mercureStream{
			cache: h.cache,
		},
	}
	w := c.Response()
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "private, no-cache, no-store, must-revalidate, max-age=0")
	hd.Set("Pragma", "no-cache")
	hd.Set("Expire", "0")
	hd.Set("X-Accel-Buffering", "no")
	if cursor != "" {
		// The id of the event preceding the first one sent: the one the
		// subscriber names, or "earliest" when the hub does not know it
		// (the protocol's rule; the stream then starts with a
		// history-lost event). If Redis cannot tell now, the stream will
		// say so in-band.
		hd.Set("Last-Event-ID", cursor)
		if placed, err := sub.mercure.starts(req.Context(), s.reads, cursor); err == nil {
			sub.mercure.placed = placed
			if placed[0].kind == startInvalid {
				hd.Set("Last-Event-ID", mercure.EarliestID)
			}
		}
	}
	if req.Method == http.MethodHead {
		return c.NoContent(http.StatusOK)
	}
	if h.cfg.Subscriptions {
		var payload []byte
		if claim != nil {
			payload = claim.Payload
		}
		sub.mercure.subscriber = &mercure.Subscriber{ID: mercure.NewID(), Topics: topics, Payload: payload}
		// Announced before the subscriber joins, as Mercure does, so it
		// never receives its own (unless it resumes from before them).
		sub.mercure.announced = s.announce(req.Context(), sub.mercure.subscriber, true)
	}
	return s.serveStream(c, sub, cursor, tok.Expires, tok.Subject)
}

// announce publishes a subscriber's subscription events and records it in
// the registry (active), or removes it and publishes their end. It returns
// the feed id of the last event published (zero if none was).
func (s *Server) announce(ctx context.Context, sub *mercure.Subscriber, active bool) (last contract.ID) {
	h := s.mercure
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.publishTimeout)
	defer cancel()
	if active {
		if err := h.cfg.Registry.Register(ctx, *sub); err != nil {
			s.log.Warn().Err(err).Msg("mercure: registering a subscriber failed")
		}
	} else if err := h.cfg.Registry.Unregister(ctx, sub.ID); err != nil {
		s.log.Warn().Err(err).Msg("mercure: unregistering a subscriber failed")
	}
	for _, u := range sub.SubscriptionUpdates(active) {
		id, err := s.publishMercure(ctx, u)
		if err != nil {
			s.log.Warn().Err(err).Msg("mercure: publishing a subscription event failed")
			return last
		}
		last = id
	}
	return last
}

// publishMercure appends an update to the hub's feed.
func (s *Server) publishMercure(ctx context.Context, u *mercure.Update) (contract.ID, error) {
	id, err := s.mercure.pub.PublishFeed(ctx, pubsub.FeedMessage{Feed: mercureFeed, Name: u.ID, Data: u.Encode(),
		Lookup: lookupKey(u.ID)})
	if err != nil {
		return contract.ID{}, err
	}
	return contract.ParseID(id)
}

// handleMercurePublish serves POST /.well-known/mercure: an update from a
// form, authorized by the publisher's mercure.publish claim, answered with
// its id.
func (s *Server) handleMercurePublish(c echo.Context) error {
	h := s.mercure
	mercureHeaders(c)
	claim, _, err := s.mercureToken(c, h.cfg.Publisher, true)
	if err != nil {
		s.m.mercurePublished.WithLabelValues("unauthorized").Inc()
		return s.refuseMercure(c, err)
	}
	if claim == nil || claim.Publish == nil {
		s.m.authRefused.WithLabelValues("401").Inc()
		s.m.mercurePublished.WithLabelValues("unauthorized").Inc()
		return mercureError(c, http.StatusUnauthorized, "Unauthorized")
	}
	req := c.Request()
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, h.maxBodyBytes))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			s.m.limited.WithLabelValues(limitPublishBody).Inc()
			s.m.mercurePublished.WithLabelValues("invalid").Inc()
			return mercureError(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is larger than %d bytes", h.maxBodyBytes))
		}
		s.m.mercurePublished.WithLabelValues("invalid").Inc()
		return mercureError(c, http.StatusBadRequest, "the body could not be read")
	}
	u, err := mercure.ParsePublishForm(req.Header.Get("Content-Type"), body, mercure.PublishConfig{MaxDataBytes: h.cfg.MaxDataBytes})
	if err != nil {
		s.m.mercurePublished.WithLabelValues("invalid").Inc()
		return s.refuseMercure(c, err)
	}
	if !claim.CanPublish(h.cache, u.Topics) {
		// Mercure answers 401 here; the protocol's spec (and a client that
		// must tell "who are you" from "not this topic") wants 403.
		s.m.authRefused.WithLabelValues("403").Inc()
		s.m.mercurePublished.WithLabelValues("forbidden").Inc()
		return mercureError(c, http.StatusForbidden, "the token does not allow publishing to these topics")
	}
	if err := u.Validate(); err != nil {
		s.m.mercurePublished.WithLabelValues("invalid").Inc()
		return s.refuseMercure(c, err)
	}
	if strings.HasPrefix(u.ID, mercureCursorPrefix) {
		s.m.mercurePublished.WithLabelValues("invalid").Inc()
		return mercureError(c, http.StatusBadRequest, fmt.Sprintf(`"id" must not start with %q: the hub uses such ids itself`, mercureCursorPrefix))
	}
	if u.ID == "" {
		u.ID = mercure.NewID()
	}
	start := time.Now()
	_, err = s.publishMercure(req.Context(), u)
	switch {
	case errors.Is(err, contract.ErrTooLarge):
		// The engine's limit on an event (--max-event-bytes) bounds the
		// update as stored: its data, topics, id and type.
		s.m.limited.WithLabelValues(limitEventSize).Inc()
		s.m.mercurePublished.WithLabelValues("invalid").Inc()
		msg := fmt.Sprintf("the update is %d bytes with its topics, id and type, over the largest event accepted", len(u.Encode()))
		if h.cfg.MaxDataBytes > 0 {
			msg += fmt.Sprintf(" (%d bytes)", h.cfg.MaxDataBytes)
		}
		return mercureError(c, http.StatusRequestEntityTooLarge, msg)
	case errors.Is(err, contract.ErrInvalid):
		s.m.mercurePublished.WithLabelValues("invalid").Inc()
		return mercureError(c, http.StatusBadRequest, err.Error())
	case err != nil:
		s.log.Warn().Err(err).Msg("mercure publish failed")
		s.m.mercurePublished.WithLabelValues("error").Inc()
		return mercureError(c, http.StatusServiceUnavailable, "publish failed: Redis is unavailable")
	}
	s.m.mercurePublished.WithLabelValues("ok").Inc()
	s.m.publishDuration.Observe(time.Since(start).Seconds())
	return c.Blob(http.StatusOK, "text/plain; charset=utf-8", []byte(u.ID))
}

// handleMercureSubscriptions serves the subscriptions API: every node's
// active subscriptions, from the registry.
func (s *Server) handleMercureSubscriptions(c echo.Context) error {
	h := s.mercure
	mercureHeaders(c)
	req := c.Request()
	if h.cfg.Subscriber != nil {
		claim, _, err := s.mercureToken(c, h.cfg.Subscriber, false)
		if err != nil {
			return s.refuseMercure(c, err)
		}
		if claim == nil || claim.Subscribe == nil || !claim.CanReceive(h.cache, []string{req.URL.RequestURI()}) {
			s.m.authRefused.WithLabelValues("401").Inc()
			return mercureError(c, http.StatusUnauthorized, "Unauthorized")
		}
	}
	path, ok := mercure.ParseSubscriptionsPath(req.URL.EscapedPath())
	if !ok {
		return mercureError(c, http.StatusNotFound, "404 page not found")
	}
	ctx, cancel := context.WithTimeout(req.Context(), 5*time.Second)
	defer cancel()
	regs, err := h.cfg.Registry.List(ctx)
	if err != nil {
		return mercureError(c, http.StatusServiceUnavailable, "the subscriptions could not be read: Redis is unavailable")
	}
	subs := make([]mercure.Subscriber, len(regs))
	for i, r := range regs {
		subs[i] = r.Subscriber
	}
	last := s.mercureLastID(ctx)
	var doc any
	if path.Subscriber != "" {
		one, found := mercure.FindSubscription(last, path.Topic, path.Subscriber, subs)
		if !found {
			return mercureError(c, http.StatusNotFound, "404 page not found")
		}
		doc = one
	} else {
		doc = mercure.NewCollection(req.URL.RequestURI(), last, path.Topic, subs)
	}
	c.Response().Header().Set("ETag", last)
	if req.Header.Get("If-None-Match") == last {
		return c.NoContent(http.StatusNotModified)
	}
	b, err := mercure.MarshalDocument(doc)
	if err != nil {
		return mercureError(c, http.StatusInternalServerError, "internal error")
	}
	return c.Blob(http.StatusOK, "application/ld+json", b)
}

// mercureLastID is the id of the hub's newest update, "earliest" when it
// has none (the lastEventID of the subscriptions API).
func (s *Server) mercureLastID(ctx context.Context) string {
	e, ok, err := s.hist.Newest(ctx, mercureFeed)
	if err != nil || !ok {
		return mercure.EarliestID
	}
	return e.Topic
}

// ExpireMercureSubscribers publishes the end of the subscriptions of a
// dead node's subscribers, which the registry reaped for this node: give it
// to the registry as its OnExpired.
func (s *Server) ExpireMercureSubscribers(regs []mercure.RegisteredSubscriber) {
	if s == nil || s.mercure == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.mercure.publishTimeout)
	defer cancel()
	for _, r := range regs {
		for _, u := range r.SubscriptionUpdates(false) {
			if _, err := s.publishMercure(ctx, u); err != nil {
				s.log.Warn().Err(err).Msg("mercure: publishing the end of a dead node's subscription failed")
				return
			}
		}
	}
}
