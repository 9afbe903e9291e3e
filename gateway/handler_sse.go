package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/rs/zerolog"

	"github.com/ssegateway/ssegateway/pubsub"
	"github.com/ssegateway/ssegateway/replay"
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
	expires, subject, herr := s.authorizeSubscribe(c, topics)
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
		s:       s,
		conn:    newConn(topics, s.cfg.MaxQueueBytes),
		stop:    make(chan closeReason, 1),
		done:    make(chan struct{}),
		expires: expires,
		client:  clientAddr(c),
	}
	st.key = clientKey(subject, st.client)
	// An HTTP/1.x stream is taken over from net/http. Its setup (replay
	// included) runs on the handler's goroutine; then the live part runs on
	// a goroutine of its own, with a small stack, and the handler returns,
	// so net/http lets go of the connection's buffers and its goroutine: an
	// idle stream costs that goroutine, a small reader goroutine and its
	// state. Counted before the takeover, while Shutdown still waits for
	// this request, so Serve's wait for detached streams cannot miss it.
	s.detached.Add(1)
	if out, ctx, stop, ok := takeOver(req.Context(), w, req, s.cfg.SendBuffer); ok {
		st.out, st.abort = out, stop
		st.begin(cursor, req.Proto)
		if r, ok := st.setup(ctx, cursor); !ok {
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
	st.out = responseSink{w: w, rc: http.NewResponseController(w)}
	st.begin(cursor, req.Proto)
	r, ok := st.setup(req.Context(), cursor)
	if ok {
		r = st.live(req.Context())
	}
	st.end(r)
	return nil
}

// begin counts the stream and logs it: one line when a stream opens and
// one when it closes (end), at info; never the token or the cursor.
func (st *stream) begin(cursor, proto string) {
	st.started = time.Now()
	st.logger().Info().Bool("resume", cursor != "").Str("proto", proto).Msg("stream opened")
	st.s.m.open.Inc()
	st.s.m.opened.Inc()
}

// end releases what the stream holds, counts and logs its end.
func (st *stream) end(reason closeReason) {
	s := st.s
	st.release()
	s.m.open.Dec()
	s.m.closed.WithLabelValues(reason.String()).Inc()
	st.logger().Info().Stringer("reason", reason).Dur("duration", time.Since(st.started)).
		Int64("events", st.sentEvents).Int64("bytes", st.sentBytes).Msg("stream closed")
	close(st.done)
}

// logger is the stream's logger, built when needed rather than kept.
func (st *stream) logger() *zerolog.Logger {
	l := st.s.log.With().Str("component", "stream").Strs("topics", st.conn.topics).Str("client", st.client).Logger()
	return &l
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
		if err := pubsub.ValidateTopic(t, s.cfg.MaxTopicLen); err != nil {
			if len(t) > s.cfg.MaxTopicLen {
				s.m.limited.WithLabelValues(limitTopicLength).Inc()
			}
			return nil, err
		}
	}
	return topics, nil
}

// stream is one open SSE response and its writer. One goroutine at a time
// runs it, and is its only writer: the request's for setup and replay,
// then, for a taken-over HTTP/1.1 connection, a goroutine of its own for
// the live part.
type stream struct {
	s      *Server
	out    sink
	abort  func() // closes a taken-over connection; nil otherwise
	conn   *conn
	client string // the client's address, for the log
	key    string // the client, for per-client limits: clientKey

	pos       []replay.ID // per topic: the newest event this client has been sent
	buf       []byte      // bytes waiting for the next write
	events    int         // events in buf, counted into the metrics at the flush
	liveMs    uint64      // id time of the oldest live event in buf; 0 if none
	lastWrite time.Time
	rearmAt   time.Time // when the write deadline must be set again

	started               time.Time
	ts                    []*topicState // the topics joined, once joined
	hb                    *time.Ticker
	timers                []*time.Timer
	registered            bool
	sentEvents, sentBytes int64 // over the stream's life, for its close log line

	stop    chan closeReason // the node asks the stream to end (drain)
	done    chan struct{}    // closed when the stream has ended
	expires time.Time        // the token's expiry: the stream ends then
}

// kick asks the stream to end with reason; it never blocks.
func (st *stream) kick(r closeReason) {
	select {
	case st.stop <- r:
	default:
	}
}

// flushAt is the buffer size at which a replay flushes before going on.
const flushAt = 64 << 10

// setup registers the stream, writes its retry hint, joins its topics,
// waits for their positions (with heartbeats: Redis may be down), and
// resumes from the cursor. It reports false, with the reason, if the
// stream must end; release undoes what it did either way.
func (st *stream) setup(ctx context.Context, cursor string) (closeReason, bool) {
	s := st.s
	if ok, why := s.register(st); !ok {
		// Draining or full: a 200 that ends at once with a retry hint sends
		// the client to another node; an error status would stop it for good.
		return st.bye(why), false
	}
	st.registered = true
	// The stream's deadlines ask it to end like a drain does, through
	// st.stop, which keeps the loop's select small: it runs once per write.
	if s.cfg.MaxConnectionAge > 0 {
		age := s.cfg.MaxConnectionAge + rand.N(s.cfg.MaxConnectionAge/5+1)
		st.timers = append(st.timers, time.AfterFunc(age, func() { st.kick(closeMaxAge) }))
	}
	if !st.expires.IsZero() {
		// Revocation by expiry: the client reconnects with a fresh token
		// (a refreshed cookie) or is refused.
		st.timers = append(st.timers, time.AfterFunc(time.Until(st.expires), func() { st.kick(closeTokenExpired) }))
	}
	st.buf = appendRetry(st.buf, s.cfg.Retry.Milliseconds())
	if st.flush() != nil {
		return closeWrite, false
	}

	// Order matters: join first, so every event delivered from now on is
	// queued for this stream; then learn each topic's position, replay up to
	// it, and only then write what was queued, skipping what the replay
	// already sent.
	st.ts = s.hub.join(st.conn)
	st.hb = time.NewTicker(s.cfg.Heartbeat)
	for _, t := range st.ts {
	wait:
		for {
			select {
			case <-t.ready:
				break wait
			case <-ctx.Done():
				return closeClient, false
			case r := <-st.stop:
				return st.bye(r), false
			case <-st.hb.C:
				if st.heartbeat() != nil {
					return st.writeFailed(), false
				}
			}
		}
	}
	return st.resume(ctx, cursor, st.ts)
}

// live writes what the hub queues, and heartbeats, until the stream ends.
func (st *stream) live(ctx context.Context) closeReason {
	for {
		select {
		case <-st.conn.notify:
			if r, ok := st.writeQueued(); !ok {
				return r
			}
		case <-st.hb.C:
			if st.heartbeat() != nil {
				return st.writeFailed()
			}
		case r := <-st.stop:
			return st.bye(r)
		case <-ctx.Done():
			return closeClient
		}
	}
}

// release undoes setup: timers, topics, registration.
func (st *stream) release() {
	for _, t := range st.timers {
		t.Stop()
	}
	if st.hb != nil {
		st.hb.Stop()
	}
	if st.ts != nil {
		st.s.hub.leave(st.conn, st.ts)
	}
	if st.registered {
		st.s.unregister(st)
	}
}

// writeQueued writes everything queued for the stream. It reports why the
// stream must end, if it must: evicted, or a failed write.
func (st *stream) writeQueued() (closeReason, bool) {
	items, evicted := st.conn.take()
	if evicted {
		st.conn.recycle(items)
		return st.bye(closeSlow), false
	}
	for _, q := range items {
		st.appendFrame(q.f, q.idx)
	}
	st.conn.recycle(items)
	if st.flush() != nil {
		return st.writeFailed(), false
	}
	return 0, true
}

// heartbeat writes a comment line unless the stream wrote recently.
func (st *stream) heartbeat() error {
	if time.Since(st.lastWrite) < st.s.cfg.Heartbeat/2 {
		return nil
	}
	st.buf = append(st.buf, heartbeat...)
	st.s.m.heartbeats.Inc()
	return st.flush()
}

// writeFailed names why a write failed: a client too slow to take what it
// was sent overflows its queue while the write is blocked, and is reported
// as evicted; otherwise the connection broke or missed its deadline.
func (st *stream) writeFailed() closeReason {
	if st.conn.isEvicted() {
		return closeSlow
	}
	return closeWrite
}

// resume places every topic from the cursor, replays what the client missed
// up to the position the hub had when the stream joined, and ends with a
// checkpoint id. It reports false, with the reason, if the stream must end.
func (st *stream) resume(ctx context.Context, cursor string, ts []*topicState) (closeReason, bool) {
	start := time.Now()
	r, ok, result := st.place(ctx, cursor, ts)
	if !ok && r == closeRedis {
		result = replayError
	}
	if cursor != "" && result != "" {
		st.s.m.replays.WithLabelValues(result).Inc()
		st.s.m.replayDuration.Observe(time.Since(start).Seconds())
	}
	return r, ok
}

// place does resume's work, and says how it went for replays_total.
func (st *stream) place(ctx context.Context, cursor string, ts []*topicState) (r closeReason, ok bool, result string) {
	s := st.s
	starts := decodeCursor(cursor, st.conn.tags)
	upTo := make([]replay.ID, len(ts))
	st.pos = make([]replay.ID, len(ts))
	for i, t := range ts {
		upTo[i] = t.position()
		st.pos[i] = upTo[i]
	}
	lost := map[string][]int{}
	var pages [][]replay.Entry
	var replaying []int
	for i, sp := range starts {
		topic := st.conn.topics[i]
		switch {
		case sp.kind == startLive:
		case sp.kind == startInvalid:
			lost["invalid-cursor"] = append(lost["invalid-cursor"], i)
		case sp.id == upTo[i]:
		case upTo[i].Less(sp.id):
			// The client saw more than this node has delivered yet (it came
			// from a node further along). Live events up to its position
			// are skipped, if the position is real.
			ok, err := s.hist.Contains(ctx, topic, sp.id)
			if err != nil {
				st.logger().Warn().Err(err).Msg("resume: checking a cursor failed")
				return st.bye(closeRedis), false, result
			}
			if ok {
				st.pos[i] = sp.id
			} else {
				lost["trimmed"] = append(lost["trimmed"], i)
			}
		default:
			entries, err := s.reads.after(ctx, topic, sp.id, upTo[i], s.cfg.ReplayBatch)
			switch {
			case errors.Is(err, replay.ErrHistoryLost):
				lost["trimmed"] = append(lost["trimmed"], i)
			case err != nil:
				st.logger().Warn().Err(err).Msg("resume: reading history failed")
				return st.bye(closeRedis), false, result
			default:
				st.pos[i] = sp.id
				replaying = append(replaying, i)
				pages = append(pages, entries)
			}
		}
	}
	switch {
	case len(lost) > 0:
		result = replayLost
	case len(replaying) > 0:
		result = replayReplayed
	case cursor != "":
		result = replayUpToDate
	}
	for _, reason := range []string{"invalid-cursor", "trimmed"} {
		if idx := lost[reason]; len(idx) > 0 {
			st.appendLost(idx, reason)
		}
	}
	for k, i := range replaying {
		page := pages[k]
		for {
			for _, e := range page {
				st.appendEvent(i, e)
				if len(st.buf) >= flushAt && st.flush() != nil {
					return closeWrite, false, result
				}
			}
			s.m.replayed.Add(float64(len(page)))
			if !st.pos[i].Less(upTo[i]) {
				break
			}
			var err error
			page, err = s.reads.after(ctx, st.conn.topics[i], st.pos[i], upTo[i], s.cfg.ReplayBatch)
			if errors.Is(err, replay.ErrHistoryLost) {
				// Trimmed while we were reading it.
				st.pos[i] = upTo[i]
				st.appendLost([]int{i}, "trimmed")
				break
			}
			if err != nil {
				st.logger().Warn().Err(err).Msg("resume: reading history failed")
				return st.bye(closeRedis), false, result
			}
		}
	}
	// The checkpoint: an id with no data sets the client's lastEventId
	// without dispatching an event, so a reconnect resumes from here even if
	// nothing else arrives first. After a replay or a history-lost event the
	// last event written already carries the current cursor.
	if len(lost) == 0 && len(replaying) == 0 {
		st.buf = st.appendID(st.buf)
		st.buf = append(st.buf, '\n')
	}
	if st.flush() != nil {
		return closeWrite, false, result
	}
	return 0, true, result
}

// appendID appends "id: <cursor>\n" for the current positions.
func (st *stream) appendID(b []byte) []byte {
	b = append(b, "id: "...)
	b = appendCursor(b, st.conn.tags, st.pos)
	return append(b, '\n')
}

// appendEvent appends a history entry of topic i.
func (st *stream) appendEvent(i int, e replay.Entry) {
	st.pos[i] = e.ID
	st.buf = st.appendID(st.buf)
	st.buf = appendBody(st.buf, e.Type, e.Data)
	st.events++
}

// appendFrame appends a live frame of topic i unless the client already has
// it.
func (st *stream) appendFrame(f *frame, i int) {
	p := st.pos[i]
	if !p.Less(f.id) {
		return
	}
	if f.lost {
		st.pos[i] = f.id
		st.appendLost([]int{i}, "trimmed")
		return
	}
	if f.prev != p {
		// The hub delivers each topic gap-free, so this is a bug; say so
		// in-band rather than skip events silently.
		st.logger().Error().Str("topic", st.conn.topics[i]).Stringer("have", p).Stringer("prev", f.prev).
			Stringer("id", f.id).Msg("event does not follow the stream's position")
		st.pos[i] = f.prev
		st.appendLost([]int{i}, "gap")
	}
	st.pos[i] = f.id
	if st.liveMs == 0 {
		st.liveMs = f.id.Ms
	}
	if len(st.pos) == 1 {
		st.buf = append(st.buf, f.buf...)
	} else {
		st.buf = st.appendID(st.buf)
		st.buf = append(st.buf, f.buf[f.body:]...)
	}
	st.events++
}

// historyLost is the data of a history-lost event.
type historyLost struct {
	Topics []string `json:"topics"`
	Reason string   `json:"reason"`
}

// appendLost appends a history-lost event for the topics at indexes idx,
// whose positions the caller has already moved to where the stream goes on.
func (st *stream) appendLost(idx []int, reason string) {
	hl := historyLost{Reason: reason}
	for _, i := range idx {
		hl.Topics = append(hl.Topics, st.conn.topics[i])
	}
	data, _ := json.Marshal(hl)
	st.buf = st.appendID(st.buf)
	st.buf = appendBody(append(st.buf, "event: "+pubsub.HistoryLostType+"\n"...), "", string(data))
	st.s.m.historyLost.Inc()
}

// bye ends the stream with a retry hint, jittered so that clients of a
// closing node do not all come back at the same moment.
func (st *stream) bye(r closeReason) closeReason {
	st.buf = appendRetry(st.buf, st.s.jitteredRetry().Milliseconds())
	_ = st.flushWithin(min(st.s.cfg.WriteTimeout, 2*time.Second))
	return r
}

func (st *stream) flush() error { return st.flushWithin(st.s.cfg.WriteTimeout) }

// flushWithin writes the buffer and flushes it under a write deadline.
func (st *stream) flushWithin(d time.Duration) error {
	if len(st.buf) == 0 {
		return nil
	}
	now := time.Now()
	// Setting a deadline costs a timer update; re-arm it only once half of
	// it has passed, so each write still gets at least d/2.
	if d != st.s.cfg.WriteTimeout || !now.Before(st.rearmAt) {
		_ = st.out.setWriteDeadline(now.Add(d))
		st.rearmAt = now.Add(d / 2)
	}
	n, err := st.out.write(st.buf)
	// Shared counters are touched once per flush, not once per event: with
	// many streams a per-event increment would be contended on every delivery.
	// Events of a failed write count as not delivered, though some of them
	// may have reached the client.
	st.s.m.bytes.Add(float64(n))
	st.s.m.writes.Inc()
	st.sentBytes += int64(n)
	if err == nil {
		st.s.m.delivered.Add(float64(st.events))
		st.sentEvents += int64(st.events)
	}
	st.events = 0
	if st.liveMs != 0 && err == nil {
		st.s.m.deliveryLatency.Observe(max(float64(now.UnixMilli())-float64(st.liveMs), 0) / 1000)
	}
	st.liveMs = 0
	st.lastWrite = now
	if cap(st.buf) > 4*flushAt {
		st.buf = nil
	} else {
		st.buf = st.buf[:0]
	}
	return err
}
