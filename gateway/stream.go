package gateway

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/gateway/fanout"
)

// A stream is one open SSE response: it resumes the client from its cursor,
// then writes what the fan-out queues in its outbox, batched, under write
// deadlines, with heartbeats while idle, until the client leaves or the
// node ends it with a retry hint.

// closeReason says why a stream ended; it is a metric label and a log field.
type closeReason uint8

const (
	closeClient       closeReason = iota // the client went away
	closeSlow                            // its queue overflowed: evicted
	closeShutdown                        // the node is shutting down
	closeWrite                           // a write failed or timed out
	closeRedis                           // Redis failed during the stream's replay
	closeMaxAge                          // the stream reached the maximum connection age
	closeTokenExpired                    // the stream's token expired
	closeLimit                           // the node was at its connection limit
)

func (r closeReason) String() string {
	switch r {
	case closeClient:
		return "client"
	case closeSlow:
		return "slow"
	case closeShutdown:
		return "shutdown"
	case closeWrite:
		return "write_error"
	case closeRedis:
		return "redis_error"
	case closeMaxAge:
		return "max_age"
	case closeTokenExpired:
		return "token_expired"
	case closeLimit:
		return "limit"
	}
	return "unknown"
}

// streamDeps is what a stream may use of its node, and nothing more: its
// settings, the fan-out, the history reads, the metrics and the logger.
// One is shared by all the node's streams; it is read-only.
type streamDeps struct {
	heartbeat, retry, writeTimeout time.Duration
	maxAge                         time.Duration // 0: streams have no maximum age
	batch                          int64         // entries per history read
	log                            zerolog.Logger
	m                              *metrics
	hub                            *fanout.Hub
	reads                          *readGroup
	bufs                           *bufPool
}

// jitteredRetry is the reconnect delay for streams the node ends itself:
// between 1x and 2x the configured retry.
func (d *streamDeps) jitteredRetry() time.Duration {
	return d.retry + rand.N(d.retry+1)
}

// stream is one open SSE response and its writer. One goroutine at a time
// runs it, and is its only writer: the request's for setup and replay,
// then, for a taken-over HTTP/1.1 connection, a goroutine of its own for
// the live part.
type stream struct {
	d      *streamDeps // what the stream may use of its node
	sink   sink
	abort  func()         // closes a taken-over connection; nil otherwise
	box    *fanout.Outbox // what the hub queues for the stream
	sub    *subscription  // what the client asked for
	tags   []string       // cursor tags, parallel to sub.wants
	client string         // the client's address, for the log

	pos []contract.ID // per want: the newest event this client has been sent
	// liveKnown: until the stream's setup, pos holds its sources'
	// positions just before the response headers went out, where a stream
	// without a cursor starts: it gets every event published after its
	// client saw it open (those the node delivers before the setup reads
	// the positions again are in its outbox).
	liveKnown bool
	buf       []byte  // bytes waiting for the next write; nil between writes
	bufp      *[]byte // buf's holder in the node's pool, while it is lent
	events    int     // events in buf, counted into the metrics at the flush
	liveMs    uint64  // id time of the oldest live event in buf; 0 if none
	lastWrite time.Time
	rearmAt   time.Time // when the write deadline must be set again

	started               time.Time
	ts                    []*fanout.Source // the topics joined, once joined
	hb                    *time.Ticker
	timers                []*time.Timer
	unregister            func() // takes the stream off the node's list; nil until registered
	ended                 func() // run once the stream has ended; nil for none
	sentEvents, sentBytes int64  // over the stream's life, for its close log line

	stop chan closeReason // the node asks the stream to end (drain)
	// waker, once the stream runs liveOn, wakes its goroutine (kick sends
	// on stop, then wakes it to look).
	waker   atomic.Pointer[func()]
	done    chan struct{} // closed when the stream has ended
	expires time.Time     // the token's expiry: the stream ends then
}

// kick asks the stream to end with reason; it never blocks.
func (st *stream) kick(r closeReason) {
	select {
	case st.stop <- r:
	default:
	}
	if w := st.waker.Load(); w != nil {
		(*w)()
	}
}

// begin counts the stream and logs it: one line when a stream opens and
// one when it closes (end), at info; never the token or the cursor.
func (st *stream) begin(cursor, proto string) {
	st.started = time.Now()
	st.logger().Info().Bool("resume", cursor != "").Str("proto", proto).Msg("stream opened")
	st.d.m.open.Inc()
	st.d.m.opened.Inc()
}

// end releases what the stream holds, counts and logs its end.
func (st *stream) end(reason closeReason) {
	st.release()
	st.d.m.open.Dec()
	st.d.m.closed.WithLabelValues(reason.String()).Inc()
	st.logger().Info().Stringer("reason", reason).Dur("duration", time.Since(st.started)).
		Int64("events", st.sentEvents).Int64("bytes", st.sentBytes).Msg("stream closed")
	if st.ended != nil {
		st.ended()
	}
	close(st.done)
}

// logger is the stream's logger, built when needed rather than kept.
func (st *stream) logger() *zerolog.Logger {
	l := st.d.log.With().Str("component", "stream").Strs("topics", st.sub.items).Str("client", st.client).Logger()
	return &l
}

// flushAt is the buffer size at which a replay flushes before going on.
const flushAt = 64 << 10

// setup writes the stream's retry hint, joins its topics, waits for their
// positions (with heartbeats: Redis may be down), and resumes from the
// cursor. It reports false, with the reason, if the
// stream must end; release undoes what it did either way.
func (st *stream) setup(ctx context.Context, cursor string) (closeReason, bool) {
	d := st.d
	// The stream's deadlines ask it to end like a drain does, through
	// st.stop, which keeps the loop's select small: it runs once per write.
	if d.maxAge > 0 {
		age := d.maxAge + rand.N(d.maxAge/5+1)
		st.timers = append(st.timers, time.AfterFunc(age, func() { st.kick(closeMaxAge) }))
	}
	if !st.expires.IsZero() {
		// Revocation by expiry: the client reconnects with a fresh token
		// (a refreshed cookie) or is refused.
		st.timers = append(st.timers, time.AfterFunc(time.Until(st.expires), func() { st.kick(closeTokenExpired) }))
	}
	st.grab()
	st.buf = fanout.AppendRetry(st.buf, d.retry.Milliseconds())
	if st.flush() != nil {
		return closeWrite, false
	}

	// Order matters: join first (serveStream did), so every event
	// delivered from now on is queued for this stream; then learn each
	// topic's position, replay up to it, and only then write what was
	// queued, skipping what the replay already sent.
	if st.ts == nil {
		st.join()
	}
	st.hb = time.NewTicker(d.heartbeat)
	for _, t := range st.ts {
	wait:
		for {
			select {
			case <-t.Ready():
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

// liveOn is live for a plain HTTP/1.1 connection the stream owns: one
// goroutine both watches the client — blocked in a read, which returns when
// the client closes or resets the connection — and writes. The hub wakes it
// by moving the read deadline into the past, and the deadline otherwise
// doubles as the heartbeat timer: no second goroutine, no ticker, no
// channel per stream. A client that sends bytes (it should not) has them
// read and dropped.
func (st *stream) liveOn(c net.Conn) closeReason {
	wake := func() { _ = c.SetReadDeadline(time.Unix(1, 0)) } // a deadline past wakes the read
	st.waker.Store(&wake)
	st.box.OnWake(wake)
	if st.hb != nil {
		st.hb.Stop()
		st.hb = nil
	}
	var b [64]byte
	for {
		select {
		case r := <-st.stop:
			return st.bye(r)
		default:
		}
		if st.box.Pending() {
			// Let other runnable goroutines go first: on an idle node this
			// returns at once, on a busy one the hub queues more meanwhile
			// and this write carries it, so writes grow with load.
			runtime.Gosched()
			if r, ok := st.writeQueued(); !ok {
				return r
			}
		}
		next := st.lastWrite.Add(st.d.heartbeat)
		if !time.Now().Before(next) {
			if st.heartbeat() != nil {
				return st.writeFailed()
			}
			next = time.Now().Add(st.d.heartbeat)
		}
		_ = c.SetReadDeadline(next)
		// A wake between the checks above and the new deadline would be
		// lost: look again now that the deadline is set.
		if st.box.Pending() || len(st.stop) > 0 {
			continue
		}
		if _, err := c.Read(b[:]); err != nil && !isTimeout(err) {
			return closeClient
		}
	}
}

// isTimeout reports whether err is a deadline passing. errors.Is, not
// errors.As with net.Error: As goes through reflection, which cost 5% of a
// node's CPU here at 200,000 wakes a second.
func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// join adds the stream to its sources.
func (st *stream) join() { st.ts = st.d.hub.Join(st.box) }

// awaitReady waits until the positions of the stream's sources are known,
// for at most d, or until ctx ends. If they all are, it records them as
// where the stream starts live (pos, liveKnown).
func (st *stream) awaitReady(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	for _, src := range st.ts {
		select {
		case <-src.Ready():
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
	st.pos = make([]contract.ID, len(st.ts))
	for i, src := range st.ts {
		st.pos[i] = src.Position()
	}
	st.liveKnown = true
}

// live writes what the hub queues, and heartbeats, until the stream ends.
func (st *stream) live(ctx context.Context) closeReason {
	for {
		select {
		case <-st.box.Notify():
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
		st.d.hub.Leave(st.box, st.ts)
	}
	if st.unregister != nil {
		st.unregister()
	}
	st.giveBack()
}

// writeQueued writes everything queued for the stream. It reports why the
// stream must end, if it must: evicted, or a failed write.
func (st *stream) writeQueued() (closeReason, bool) {
	items, evicted := st.box.Take()
	if evicted {
		st.box.Recycle(items)
		return st.bye(closeSlow), false
	}
	st.grab()
	for _, q := range items {
		st.appendFrame(q.Frame, q.Want)
	}
	st.box.Recycle(items)
	if st.flush() != nil {
		return st.writeFailed(), false
	}
	return 0, true
}

// heartbeat writes a comment line unless the stream wrote recently.
func (st *stream) heartbeat() error {
	if time.Since(st.lastWrite) < st.d.heartbeat/2 {
		return nil
	}
	st.grab()
	st.buf = append(st.buf, fanout.Heartbeat...)
	st.d.m.heartbeats.Inc()
	return st.flush()
}

// writeFailed names why a write failed: a client too slow to take what it
// was sent overflows its queue while the write is blocked, and is reported
// as evicted; otherwise the connection broke or missed its deadline.
func (st *stream) writeFailed() closeReason {
	if st.box.Evicted() {
		return closeSlow
	}
	return closeWrite
}

// appendID appends "id: <cursor>\n" for the current positions.
func (st *stream) appendID(b []byte) []byte {
	b = append(b, "id: "...)
	if st.sub.mercure != nil {
		b = appendMercureCursor(b, st.pos[0])
	} else {
		b = appendCursor(b, st.tags, st.pos)
	}
	return append(b, '\n')
}

// starts places each want of the stream from the cursor the client sent.
func (st *stream) starts(ctx context.Context, cursor string) ([]start, error) {
	if st.sub.mercure != nil {
		return st.sub.mercure.starts(ctx, st.d.reads, cursor)
	}
	return decodeCursor(cursor, st.tags), nil
}

// appendFrame appends a live frame of want i unless the client already has
// it.
func (st *stream) appendFrame(f *fanout.Frame, i int) {
	p := st.pos[i]
	if f.Lost {
		// History the node was following is gone: the source goes on after
		// f.ID. A client short of it missed something; so did every client
		// when ids started over (f.ID before f.Prev: Redis lost its data). A
		// client already at or past f.ID in the same history missed nothing.
		if p.Less(f.ID) || f.ID.Less(f.Prev) {
			st.pos[i] = f.ID
			st.appendLost([]int{i}, "trimmed")
		}
		return
	}
	if !p.Less(f.ID) {
		return
	}
	if st.sub.wants[i].Filter == nil && f.Prev != p {
		// The hub delivers each topic gap-free, so this is a bug; say so
		// in-band rather than skip events silently. (A feed's stream gets
		// only the events its patterns match: its gaps are expected.)
		st.logger().Error().Str("topic", f.Topic).Stringer("have", p).Stringer("prev", f.Prev).
			Stringer("id", f.ID).Msg("event does not follow the stream's position")
		st.pos[i] = f.Prev
		st.appendLost([]int{i}, "gap")
	}
	st.pos[i] = f.ID
	if st.liveMs == 0 {
		st.liveMs = f.ID.Ms
	}
	if len(st.pos) == 1 {
		st.buf = append(st.buf, f.Bytes(st.box.Form())...)
	} else {
		st.buf = st.appendID(st.buf)
		st.buf = append(st.buf, f.Body(st.box.Form())...)
	}
	st.events++
}

// bye ends the stream with a retry hint, jittered so that clients of a
// closing node do not all come back at the same moment.
func (st *stream) bye(r closeReason) closeReason {
	st.grab()
	st.buf = fanout.AppendRetry(st.buf, st.d.jitteredRetry().Milliseconds())
	_ = st.flushWithin(min(st.d.writeTimeout, 2*time.Second))
	return r
}

func (st *stream) flush() error { return st.flushWithin(st.d.writeTimeout) }

// flushWithin writes the buffer and flushes it under a write deadline.
func (st *stream) flushWithin(d time.Duration) error {
	if len(st.buf) == 0 {
		st.giveBack()
		return nil
	}
	now := time.Now()
	// Setting a deadline costs a timer update; re-arm it only once half of
	// it has passed, so each write still gets at least d/2.
	if d != st.d.writeTimeout || !now.Before(st.rearmAt) {
		_ = st.sink.setWriteDeadline(now.Add(d))
		st.rearmAt = now.Add(d / 2)
	}
	n, err := st.sink.write(st.buf)
	// Shared counters are touched once per flush, not once per event: with
	// many streams a per-event increment would be contended on every delivery.
	// Events of a failed write count as not delivered, though some of them
	// may have reached the client.
	st.d.m.bytes.Add(float64(n))
	st.d.m.writes.Inc()
	st.sentBytes += int64(n)
	if err == nil {
		st.d.m.delivered.Add(float64(st.events))
		st.sentEvents += int64(st.events)
	}
	st.events = 0
	if st.liveMs != 0 && err == nil {
		st.d.m.deliveryLatency.Observe(max(float64(now.UnixMilli())-float64(st.liveMs), 0) / 1000)
	}
	st.liveMs = 0
	st.lastWrite = now
	st.giveBack()
	return err
}

// grab borrows a write buffer from the node's pool unless the stream holds
// one. Appending to a nil buffer works too; it only allocates.
func (st *stream) grab() {
	if st.buf == nil {
		st.bufp = st.d.bufs.get()
		st.buf = *st.bufp
	}
}

// giveBack returns the stream's write buffer to the node's pool.
func (st *stream) giveBack() {
	if st.buf == nil {
		return
	}
	if st.bufp == nil {
		st.bufp = new([]byte)
	}
	*st.bufp = st.buf
	st.d.bufs.put(st.bufp)
	st.buf, st.bufp = nil, nil
}
