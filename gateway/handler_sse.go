package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ssegateway/ssegateway/auth"
	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/gateway/fanout"
	"github.com/ssegateway/ssegateway/mercure"
)

// handleEvents serves GET /events?topic=A&topic=B&topic=C/*: one SSE stream
// of the topics and patterns, resumed from Last-Event-ID (or ?lastEventId=
// on a first connect).
//
// Only a request that can never succeed gets an error status (bad topic
// names, too many topics), because EventSource stops for good on any
// non-200. Everything recoverable — an unreadable or stale cursor, Redis
// trouble, a node shutting down — is answered in-band with 200.
func (s *Server) handleEvents(c echo.Context) error {
	req := c.Request()
	query := req.URL.Query()
	sub, err := s.parseSubscription(query["topic"])
	if err != nil {
		return jsonError(c, http.StatusBadRequest, err.Error())
	}
	expires, subject, herr := s.authorizeSubscribe(c, sub.items)
	if herr != nil {
		return s.refuse(c, herr)
	}
	cursor := req.Header.Get("Last-Event-ID")
	if cursor == "" {
		cursor = query.Get("lastEventId")
	}
	h := c.Response().Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	return s.serveStream(c, sub, cursor, expires, subject)
}

// serveStream runs a stream of sub, resumed from cursor, until its client
// leaves or the node ends it; expires, if set, ends it then. subject, the
// token's, if any, names the client for the per-client limit (else its
// address does). The response headers are set.
func (s *Server) serveStream(c echo.Context, sub *subscription, cursor string, expires time.Time, subject string) error {
	req := c.Request()
	w := c.Response()
	st := &stream{
		d:       s.streamDeps,
		box:     fanout.NewOutbox(sub.wants, sub.form(), s.cfg.MaxQueueBytes),
		sub:     sub,
		tags:    sub.tags(),
		stop:    make(chan closeReason, 1),
		done:    make(chan struct{}),
		expires: expires,
		client:  clientAddr(c),
	}
	if sub.mercure != nil && sub.mercure.subscriber != nil {
		ms := sub.mercure.subscriber
		st.ended = func() { s.announce(req.Context(), ms, false) }
	}
	key := clientKey(subject, st.client)
	// An HTTP/1.x stream is taken over from net/http. Its setup (replay
	// included) runs on the handler's goroutine; then the live part runs on
	// a goroutine of its own, with a small stack, and the handler returns,
	// so net/http lets go of the connection's buffers and its goroutine: an
	// idle stream costs that goroutine, a small reader goroutine and its
	// state. Counted before the takeover, while Shutdown still waits for
	// this request, so Serve's wait for detached streams cannot miss it.
	//
	// Before any of that, the stream registers with the node and joins its
	// sources, and the response headers wait (briefly) for the sources'
	// positions: a client told the stream is open (EventSource's open
	// event fires on the headers) must get every event published after
	// that, even with no cursor to resume from.
	ok, why := s.register(st, key)
	if ok {
		st.unregister = func() { s.unregister(st, key) }
		st.join()
		st.awaitReady(req.Context(), readyBeforeHeaders)
	}
	start := func(ctx context.Context) (closeReason, bool) {
		if !ok {
			// Draining, or full, or the client holds its share of the
			// node: a 200 that ends at once with a retry hint sends the
			// client to another node, or back later; an error status would
			// stop it for good.
			return st.bye(why), false
		}
		return st.setup(ctx, cursor)
	}
	s.detached.Add(1)
	if t, ok := takeOver(req.Context(), w, req, s.cfg.SendBuffer); ok {
		st.sink, st.abort = t.sink, t.stop
		st.begin(cursor, req.Proto)
		if r, ok := start(t.ctx); !ok {
			st.end(r)
			t.stop()
			s.detached.Done()
			return nil
		}
		go func() {
			defer s.detached.Done()
			defer t.stop()
			if t.conn != nil {
				st.end(st.liveOn(t.conn))
			} else {
				st.end(st.live(t.ctx))
			}
		}()
		return nil
	}
	s.detached.Done()
	w.WriteHeader(http.StatusOK)
	st.sink = responseSink{w: w, rc: http.NewResponseController(w)}
	st.begin(cursor, req.Proto)
	r, ok := start(req.Context())
	if ok {
		r = st.live(req.Context())
	}
	st.end(r)
	return nil
}

// readyBeforeHeaders bounds how long a stream's response headers wait for
// its sources' positions; past it (Redis slow or down) they go out, and the
// stream waits on with heartbeats.
const readyBeforeHeaders = 2 * time.Second

// subscription is what a stream asked for, checked and arranged for the
// fan-out: topics are followed as themselves; patterns follow their feed
// (one want per feed, with all the stream's patterns of that feed); and a
// topic that one of the stream's patterns matches is left to the feed, so
// that each of its events reaches the stream once.
type subscription struct {
	items []string      // as asked: topics and patterns, sorted, unique
	wants []fanout.Want // one per source, sorted by source
	named bool          // some item is a pattern: events carry their topic
	// mercure is set on a stream of the Mercure endpoint: one want, the
	// hub's feed, and ids that are the publishers' (see mercure.go).
	mercure *mercureStream
}

// accepts reports whether want i takes ev, read from its history: every
// event of a topic, the events of a feed its filter picks.
func (sub *subscription) accepts(i int, ev *fanout.Event) bool {
	switch f := sub.wants[i].Filter.(type) {
	case []auth.Pattern:
		return auth.Patterns(f).Allows(ev.Topic)
	case mercure.Filter:
		u := mercureUpdate(ev)
		return u != nil && f.Matches(sub.mercure.cache, u.Topics, u.Private)
	}
	return true
}

// tags returns the cursor tags of the wants' sources.
func (sub *subscription) tags() []string {
	out := make([]string, len(sub.wants))
	for i, w := range sub.wants {
		out[i] = cursorTag(w.Source)
	}
	return out
}

// form is how the stream writes events: with their topic when it has a
// pattern; as Mercure does on the Mercure endpoint.
func (sub *subscription) form() fanout.Form {
	if sub.mercure != nil {
		return mercureForm{}
	}
	if sub.named {
		return fanout.NamedForm{}
	}
	return fanout.PlainForm{}
}

// isPattern reports whether a topic parameter is a pattern.
func isPattern(item string) bool { return strings.Contains(item, "*") }

// parseSubscription validates the topic parameters and arranges them.
func (s *Server) parseSubscription(raw []string) (*subscription, error) {
	if len(raw) == 0 {
		return nil, errors.New("at least one topic is required, e.g. /events?topic=news")
	}
	items := slices.Clone(raw)
	slices.Sort(items)
	items = slices.Compact(items)
	if len(items) > s.cfg.MaxTopics {
		s.m.limited.WithLabelValues(limitTopics).Inc()
		return nil, fmt.Errorf("%d topics requested, at most %d per stream allowed", len(items), s.cfg.MaxTopics)
	}
	sub := &subscription{items: items}
	var feeds map[string][]auth.Pattern // made only for a stream with patterns
	for _, t := range items {
		if len(t) > s.cfg.MaxTopicLen {
			s.m.limited.WithLabelValues(limitTopicLength).Inc()
		}
		if !isPattern(t) {
			if err := contract.ValidateTopic(t, s.cfg.MaxTopicLen); err != nil {
				return nil, err
			}
			continue
		}
		if len(t) > s.cfg.MaxTopicLen {
			return nil, fmt.Errorf("pattern is %d bytes, at most %d allowed", len(t), s.cfg.MaxTopicLen)
		}
		p, err := auth.ParsePattern(t)
		if err != nil {
			return nil, errors.New(strings.TrimPrefix(err.Error(), "auth: "))
		}
		feed, ok := contract.FeedOf(t)
		if !ok {
			return nil, fmt.Errorf("pattern %q must start with a path segment without wildcards and a \"/\", "+
				"e.g. orders/* or orders/**", t)
		}
		if feeds == nil {
			feeds = map[string][]auth.Pattern{}
		}
		feeds[feed] = append(feeds[feed], p)
		sub.named = true
	}
	sub.wants = make([]fanout.Want, 0, len(items))
	for feed, ps := range feeds {
		sub.wants = append(sub.wants, fanout.Want{Source: feed, Filter: ps})
	}
	for _, t := range items {
		if isPattern(t) {
			continue
		}
		if feed, ok := contract.FeedOf(t); ok && auth.Patterns(feeds[feed]).Allows(t) {
			continue // the feed delivers it
		}
		sub.wants = append(sub.wants, fanout.Want{Source: t})
	}
	// Sorted by source, so that the cursor's order does not depend on map
	// iteration.
	slices.SortFunc(sub.wants, func(a, b fanout.Want) int { return strings.Compare(a.Source, b.Source) })
	return sub, nil
}

// names returns the items want i serves, for a history-lost event: a
// topic, a feed's patterns, the Mercure stream's selectors.
func (sub *subscription) names(i int) []string {
	switch f := sub.wants[i].Filter.(type) {
	case []auth.Pattern:
		out := make([]string, len(f))
		for k, p := range f {
			out[k] = p.String()
		}
		return out
	case mercure.Filter:
		return f.Topics
	}
	return []string{sub.wants[i].Source}
}
