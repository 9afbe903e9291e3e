package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/ssegateway/ssegateway/auth"
	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/gateway/fanout"
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
	w := c.Response()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	st := &stream{
		d:       s.streamDeps,
		box:     fanout.NewOutbox(sub.wants, sub.form(), s.cfg.MaxQueueBytes),
		sub:     sub,
		tags:    cursorTags(sub.sources()),
		stop:    make(chan closeReason, 1),
		done:    make(chan struct{}),
		expires: expires,
		client:  clientAddr(c),
	}
	key := clientKey(subject, st.client)
	// An HTTP/1.x stream is taken over from net/http. Its setup (replay
	// included) runs on the handler's goroutine; then the live part runs on
	// a goroutine of its own, with a small stack, and the handler returns,
	// so net/http lets go of the connection's buffers and its goroutine: an
	// idle stream costs that goroutine, a small reader goroutine and its
	// state. Counted before the takeover, while Shutdown still waits for
	// this request, so Serve's wait for detached streams cannot miss it.
	s.detached.Add(1)
	if out, ctx, stop, ok := takeOver(req.Context(), w, req, s.cfg.SendBuffer); ok {
		st.sink, st.abort = out, stop
		st.begin(cursor, req.Proto)
		if r, ok := s.start(ctx, st, key, cursor); !ok {
			st.end(r)
			stop()
			s.detached.Done()
			return nil
		}
		go func() {
			defer s.detached.Done()
			defer stop()
			st.end(st.live(ctx))
		}()
		return nil
	}
	s.detached.Done()
	w.WriteHeader(http.StatusOK)
	st.sink = responseSink{w: w, rc: http.NewResponseController(w)}
	st.begin(cursor, req.Proto)
	r, ok := s.start(req.Context(), st, key, cursor)
	if ok {
		r = st.live(req.Context())
	}
	st.end(r)
	return nil
}

// start registers the stream, of the client named key, with the node and
// sets it up. It reports false, with the reason, if the stream must end:
// the node is draining, or full, or the client holds its share of it (a
// 200 that ends at once with a retry hint sends the client to another node,
// or back later; an error status would stop it for good), or setup failed.
func (s *Server) start(ctx context.Context, st *stream, key, cursor string) (closeReason, bool) {
	if ok, why := s.register(st, key); !ok {
		return st.bye(why), false
	}
	st.unregister = func() { s.unregister(st, key) }
	return st.setup(ctx, cursor)
}

// subscription is what a stream asked for, checked and arranged for the
// fan-out: topics are followed as themselves; patterns follow their feed
// (one want per feed, with all the stream's patterns of that feed); and a
// topic that one of the stream's patterns matches is left to the feed, so
// that each of its events reaches the stream once.
type subscription struct {
	items []string      // as asked: topics and patterns, sorted, unique
	wants []fanout.Want // one per source, sorted by source
	names [][]string    // per want, the items it serves: for history-lost
	named bool          // some item is a pattern: events carry their topic
}

// sources returns the wants' sources.
func (sub *subscription) sources() []string {
	out := make([]string, len(sub.wants))
	for i, w := range sub.wants {
		out[i] = w.Source
	}
	return out
}

// form is how the stream writes events: with their topic when it has a
// pattern.
func (sub *subscription) form() fanout.Form {
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
	feeds := map[string][]auth.Pattern{}
	var topics []string
	for _, t := range items {
		if len(t) > s.cfg.MaxTopicLen {
			s.m.limited.WithLabelValues(limitTopicLength).Inc()
		}
		if !isPattern(t) {
			if err := contract.ValidateTopic(t, s.cfg.MaxTopicLen); err != nil {
				return nil, err
			}
			topics = append(topics, t)
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
		feeds[feed] = append(feeds[feed], p)
		sub.named = true
	}
	for feed, ps := range feeds {
		names := make([]string, len(ps))
		for i, p := range ps {
			names[i] = p.String()
		}
		sub.wants = append(sub.wants, fanout.Want{Source: feed, Filter: ps})
		sub.names = append(sub.names, names)
	}
	for _, t := range topics {
		if feed, ok := contract.FeedOf(t); ok && auth.Patterns(feeds[feed]).Allows(t) {
			continue // the feed delivers it
		}
		sub.wants = append(sub.wants, fanout.Want{Source: t})
		sub.names = append(sub.names, []string{t})
	}
	// Sorted by source, so that the cursor's order does not depend on map
	// iteration.
	idx := make([]int, len(sub.wants))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return strings.Compare(sub.wants[a].Source, sub.wants[b].Source) })
	wants, names := make([]fanout.Want, len(idx)), make([][]string, len(idx))
	for k, i := range idx {
		wants[k], names[k] = sub.wants[i], sub.names[i]
	}
	sub.wants, sub.names = wants, names
	return sub, nil
}
