package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/pubsub"
	"github.com/ssegateway/ssegateway/replay"
)

// The hub keeps, per topic the node serves, the set of local streams and a
// sequencer that turns the at-most-once pub/sub feed into an exact one: every
// envelope names its predecessor, and whenever an envelope does not follow
// the last event the node delivered (a drop, a reconnect, a resubscribe), the
// hub reads the missing range from the stream and delivers it first. Streams
// therefore see, per topic, every event after their join point exactly once
// and in order, or an explicit history-lost frame.
//
// Lock order: hub.mu, then topicState.mu, then conn.mu or hub.syncMu.

type phase uint8

const (
	phaseSubscribing phase = iota // waiting for Redis to confirm the subscription
	phaseSyncing                  // confirmed; position being read or a gap repaired
	phaseLive                     // envelopes that follow the last event are delivered as they come
)

// maxPending bounds the envelopes a syncing topic holds; past it they are
// dropped and read from the stream instead.
const maxPending = 4096

type topicState struct {
	name  string
	ready chan struct{} // closed once the topic's position is known

	mu        sync.Mutex
	subs      map[*conn]int // stream → index of this topic in its topic list
	phase     phase
	known     bool        // last is valid
	last      contract.ID // newest event delivered to subs
	pending   []event     // envelopes received while syncing, in arrival order
	overflow  bool        // pending dropped some: read the stream
	resync    bool        // the stream must be read after last
	queued    bool        // in the sync queue
	removed   bool        // no longer in hub.topics
	idleSince time.Time   // when subs became empty; zero while it has any
	behind    contract.ID // newest id on record at the last position check, if not yet delivered
}

// subscription is what the hub needs of pubsub.Subscriber.
type subscription interface {
	Subscribe(topics ...string)
	Unsubscribe(topics ...string)
}

type hub struct {
	sub   subscription
	hist  replay.Store
	log   zerolog.Logger
	m     *metrics
	grace time.Duration
	batch int64
	check time.Duration // position check interval; 0 disables it

	mu     sync.RWMutex
	topics map[string]*topicState

	syncMu   sync.Mutex
	syncQ    []*topicState
	syncKick chan struct{}
}

var _ pubsub.Handler = (*hub)(nil)

func newHub(sub subscription, hist replay.Store, log zerolog.Logger, m *metrics, grace, check time.Duration, batch int64) *hub {
	return &hub{
		sub: sub, hist: hist, log: log, m: m, grace: grace, check: check, batch: batch,
		topics:   make(map[string]*topicState),
		syncKick: make(chan struct{}, 1),
	}
}

// join adds c to its topics, subscribing the node to topics it did not have.
func (h *hub) join(c *conn) []*topicState {
	ts := make([]*topicState, len(c.topics))
	var fresh []string
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, name := range c.topics {
		t := h.topics[name]
		if t == nil {
			t = &topicState{name: name, ready: make(chan struct{}), subs: make(map[*conn]int)}
			h.topics[name] = t
			fresh = append(fresh, name)
		}
		t.mu.Lock()
		t.subs[c] = i
		t.idleSince = time.Time{}
		t.mu.Unlock()
		ts[i] = t
	}
	if len(fresh) > 0 {
		h.m.topics.Add(float64(len(fresh)))
		h.sub.Subscribe(fresh...)
	}
	return ts
}

// leave removes c. Topics left without streams are unsubscribed by the
// janitor after the grace period, so a quick reconnect keeps the subscription.
func (h *hub) leave(c *conn, ts []*topicState) {
	now := time.Now()
	for _, t := range ts {
		t.mu.Lock()
		delete(t.subs, c)
		if len(t.subs) == 0 {
			t.idleSince = now
		}
		t.mu.Unlock()
	}
}

// position returns the newest event delivered on t. Call after t.ready.
func (t *topicState) position() contract.ID {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

func (h *hub) lookup(topic string) *topicState {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.topics[topic]
}

// HandleEvent implements pubsub.Handler.
func (h *hub) HandleEvent(topic string, env contract.Envelope) {
	h.m.received.Inc()
	t := h.lookup(topic)
	if t == nil {
		return
	}
	id, err1 := contract.ParseID(env.ID)
	prev, err2 := contract.ParseID(env.Prev)
	if err1 != nil || err2 != nil {
		h.log.Error().Str("topic", topic).Str("id", env.ID).Str("prev", env.Prev).Msg("dropping an envelope with malformed ids")
		return
	}
	ev := event{id: id, prev: prev, typ: env.Type, data: env.Data}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch t.phase {
	case phaseSubscribing:
		// Not confirmed yet; the position read after confirmation covers it.
	case phaseSyncing:
		t.addPending(ev)
	case phaseLive:
		switch {
		case !t.last.Less(id):
			// Already delivered (read from the stream during a repair).
		case prev == t.last:
			h.deliver(t, ev)
		default:
			// Something between t.last and this event did not arrive.
			t.phase = phaseSyncing
			t.addPending(ev)
			h.queueSync(t)
		}
	}
}

// HandleSubscribed implements pubsub.Handler.
func (h *hub) HandleSubscribed(topic string) {
	t := h.lookup(topic)
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch t.phase {
	case phaseSubscribing:
		t.phase = phaseSyncing
	case phaseSyncing:
		if t.known {
			t.resync = true
		}
	case phaseLive:
		// A resubscription: events published while unsubscribed are only in
		// the stream.
		t.phase = phaseSyncing
		t.resync = true
	}
	h.queueSync(t)
}

// HandleDisconnected implements pubsub.Handler. Nothing to do per topic: each
// topic's next HandleSubscribed triggers its repair.
func (h *hub) HandleDisconnected(error) { h.m.pubsubReconnects.Inc() }

func (t *topicState) addPending(ev event) {
	if len(t.pending) >= maxPending {
		clear(t.pending)
		t.pending = t.pending[:0]
		t.overflow = true
		return
	}
	t.pending = append(t.pending, ev)
}

// deliver encodes ev once and hands it to every stream. t.mu must be held.
func (h *hub) deliver(t *topicState, ev event) {
	f := newFrame(ev)
	for c, idx := range t.subs {
		c.enqueue(f, idx)
	}
	t.last = ev.id
}

// deliverLost tells every stream that the events after t.last up to newest
// are gone. t.mu must be held.
func (h *hub) deliverLost(t *topicState, newest contract.ID) {
	f := &frame{id: newest, prev: t.last, lost: true}
	for c, idx := range t.subs {
		c.enqueue(f, idx)
	}
	t.last = newest
	h.m.historyLost.Inc()
}

// queueSync puts t on the sync queue. t.mu must be held.
func (h *hub) queueSync(t *topicState) {
	if t.queued {
		return
	}
	t.queued = true
	h.syncMu.Lock()
	h.syncQ = append(h.syncQ, t)
	h.syncMu.Unlock()
	select {
	case h.syncKick <- struct{}{}:
	default:
	}
}

// run owns the hub's goroutines — the sync worker, the janitor and the
// position checker — and returns once all have stopped.
func (h *hub) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { h.syncLoop(ctx) })
	wg.Go(func() { h.janitor(ctx) })
	if h.check > 0 {
		wg.Go(func() { h.checker(ctx) })
	}
	wg.Wait()
}

// checker runs the position check every h.check.
func (h *hub) checker(ctx context.Context) {
	tick := time.NewTicker(h.check)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := h.checkPositions(ctx); err != nil && ctx.Err() == nil {
				h.log.Debug().Err(err).Msg("position check failed")
			}
		}
	}
}

// checkPositions catches a pub/sub feed that stalled without the
// connection failing: it reads every live topic's newest id in one
// pipelined round trip, and a topic that has still not delivered, a whole
// interval later, what the previous check saw on record is repaired from
// the stream. Events merely in flight at one check are delivered by the
// next, so they never cause a read.
func (h *hub) checkPositions(ctx context.Context) error {
	h.mu.RLock()
	ts := make([]*topicState, 0, len(h.topics))
	names := make([]string, 0, len(h.topics))
	for name, t := range h.topics {
		ts = append(ts, t)
		names = append(names, name)
	}
	h.mu.RUnlock()
	if len(ts) == 0 {
		return nil
	}
	newest, err := h.hist.Lasts(ctx, names)
	if err != nil {
		return err
	}
	for i, t := range ts {
		t.mu.Lock()
		if t.phase == phaseLive {
			if t.last.Less(t.behind) {
				h.log.Warn().Str("topic", t.name).Stringer("delivered", t.last).Stringer("on_record", t.behind).
					Msg("pub/sub fell silent on this topic; repairing from the stream")
				h.m.stalls.Inc()
				t.phase = phaseSyncing
				t.resync = true
				h.queueSync(t)
			}
			t.behind = contract.ID{}
			if t.last.Less(newest[i]) {
				t.behind = newest[i]
			}
		}
		t.mu.Unlock()
	}
	return nil
}

func (h *hub) syncLoop(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for {
		h.syncMu.Lock()
		var t *topicState
		if len(h.syncQ) > 0 {
			t = h.syncQ[0]
			h.syncQ[0] = nil
			h.syncQ = h.syncQ[1:]
		}
		h.syncMu.Unlock()
		if t == nil {
			select {
			case <-ctx.Done():
				return
			case <-h.syncKick:
			}
			continue
		}
		err := h.sync(ctx, t)
		if err == nil {
			backoff = 50 * time.Millisecond
			continue
		}
		if ctx.Err() != nil {
			return
		}
		h.log.Warn().Err(err).Str("topic", t.name).Dur("retry_in", backoff).Msg("topic sync failed")
		h.syncMu.Lock()
		h.syncQ = append(h.syncQ, t) // t.queued is still true
		h.syncMu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// sync brings t to live: it reads the topic's position if unknown, delivers
// pending envelopes that follow on, and reads the stream wherever they do
// not. On error t stays queued and syncing.
func (h *hub) sync(ctx context.Context, t *topicState) error {
	t.mu.Lock()
	known := t.known
	t.mu.Unlock()
	if !known {
		last, err := h.hist.Last(ctx, t.name)
		if err != nil {
			return err
		}
		t.mu.Lock()
		t.last, t.known = last, true
		close(t.ready)
		t.mu.Unlock()
	}
	for {
		t.mu.Lock()
		if t.removed {
			t.queued = false
			t.mu.Unlock()
			return nil
		}
		h.drainPending(t)
		if !t.resync && !t.overflow && len(t.pending) == 0 {
			t.phase = phaseLive
			t.queued = false
			t.mu.Unlock()
			return nil
		}
		t.resync, t.overflow = false, false
		from := t.last
		t.mu.Unlock()

		entries, err := h.hist.After(ctx, t.name, from, contract.ID{}, h.batch)
		if errors.Is(err, replay.ErrHistoryLost) {
			newest, lerr := h.hist.Last(ctx, t.name)
			switch {
			case lerr != nil:
				err = lerr
			case !from.Less(newest):
				err = fmt.Errorf("gateway: %q lost history after %s but its newest id is %s (written outside the publish script?)", t.name, from, newest)
			default:
				t.mu.Lock()
				if t.last == from && from.Less(newest) {
					h.log.Warn().Str("topic", t.name).Stringer("from", from).Stringer("to", newest).
						Msg("events missed by this node are no longer in the stream; streams get history-lost")
					h.deliverLost(t, newest)
				}
				t.mu.Unlock()
				continue
			}
		}
		if err != nil {
			t.mu.Lock()
			t.resync = true
			t.mu.Unlock()
			return err
		}
		t.mu.Lock()
		for _, e := range entries {
			if !t.last.Less(e.ID) {
				continue
			}
			if e.Prev != t.last {
				t.resync = true // not contiguous with what was delivered: read again
				break
			}
			h.deliver(t, event{id: e.ID, prev: e.Prev, typ: e.Type, data: e.Data})
			h.m.repaired.Inc()
		}
		if int64(len(entries)) == h.batch {
			t.resync = true // more to read
		}
		t.mu.Unlock()
	}
}

// drainPending delivers pending envelopes that follow t.last, up to the
// first gap. t.mu must be held.
func (h *hub) drainPending(t *topicState) {
	i := 0
	for ; i < len(t.pending); i++ {
		ev := t.pending[i]
		if !t.last.Less(ev.id) {
			continue
		}
		if ev.prev != t.last {
			t.resync = true
			break
		}
		h.deliver(t, ev)
	}
	rest := copy(t.pending, t.pending[i:])
	clear(t.pending[rest:])
	t.pending = t.pending[:rest]
}

// janitor unsubscribes topics that have had no streams for the grace period.
func (h *hub) janitor(ctx context.Context) {
	tick := time.NewTicker(max(h.grace/2, 50*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			h.sweep(now)
		}
	}
}

func (h *hub) sweep(now time.Time) {
	var idle []string
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, t := range h.topics {
		t.mu.Lock()
		if len(t.subs) == 0 && !t.idleSince.IsZero() && now.Sub(t.idleSince) >= h.grace {
			t.removed = true
			delete(h.topics, name)
			idle = append(idle, name)
		}
		t.mu.Unlock()
	}
	if len(idle) > 0 {
		h.m.topics.Sub(float64(len(idle)))
		// Under h.mu, so a topic re-created right after is subscribed after
		// this unsubscription, never before it.
		h.sub.Unsubscribe(idle...)
	}
}
