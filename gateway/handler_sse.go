package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/gateway/fanout"
)

// handleEvents serves GET /events?topic=A&topic=B: one SSE stream of the
// topics, resumed from Last-Event-ID (or ?lastEventId= on a first connect).
//
// Only a request that can never succeed gets an error status (bad topic
// names, too many topics), because EventSource stops for good on any
// non-200. Everything recoverable — an unreadable or stale cursor, Redis
// trouble, a node shutting down — is answered in-band with 200.
func (s *Server) handleEvents(c echo.Context) error {
	req := c.Request()
	query := req.URL.Query()
	topics, err := s.parseTopics(query["topic"])
	if err != nil {
		return jsonError(c, http.StatusBadRequest, err.Error())
	}
	expires, herr := s.authorizeSubscribe(c, topics)
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
		box:     fanout.NewOutbox(topics, s.cfg.MaxQueueBytes),
		topics:  topics,
		tags:    cursorTags(topics),
		stop:    make(chan closeReason, 1),
		done:    make(chan struct{}),
		expires: expires,
		client:  c.RealIP(),
	}
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
		if r, ok := s.start(ctx, st, cursor); !ok {
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
	r, ok := s.start(req.Context(), st, cursor)
	if ok {
		r = st.live(req.Context())
	}
	st.end(r)
	return nil
}

// start registers the stream with the node and sets it up. It reports
// false, with the reason, if the stream must end: the node is draining or
// full (a 200 that ends at once with a retry hint sends the client to
// another node; an error status would stop it for good), or setup failed.
func (s *Server) start(ctx context.Context, st *stream, cursor string) (closeReason, bool) {
	if ok, why := s.register(st); !ok {
		if why == closeLimit {
			s.m.limited.WithLabelValues(limitConnections).Inc()
		}
		return st.bye(why), false
	}
	st.unregister = func() { s.unregister(st) }
	return st.setup(ctx, cursor)
}

// parseTopics validates the topic parameters and returns them sorted and
// without duplicates.
func (s *Server) parseTopics(raw []string) ([]string, error) {
	if len(raw) == 0 {
		return nil, errors.New("at least one topic is required, e.g. /events?topic=news")
	}
	topics := slices.Clone(raw)
	slices.Sort(topics)
	topics = slices.Compact(topics)
	if len(topics) > s.cfg.MaxTopics {
		s.m.limited.WithLabelValues(limitTopics).Inc()
		return nil, fmt.Errorf("%d topics requested, at most %d per stream allowed", len(topics), s.cfg.MaxTopics)
	}
	for _, t := range topics {
		if err := contract.ValidateTopic(t, s.cfg.MaxTopicLen); err != nil {
			if len(t) > s.cfg.MaxTopicLen {
				s.m.limited.WithLabelValues(limitTopicLength).Inc()
			}
			return nil, err
		}
	}
	return topics, nil
}
