package fanout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/replay"
)

// The sequencer: one worker brings sources to live, in the order they were
// queued. A source is queued when its subscription is confirmed (its
// position must be read and what pub/sub missed while it was not subscribed
// repaired), when an envelope does not follow the last event delivered, and
// when the position check finds it silent.

// queueSync puts s on the sync queue. s.mu must be held.
func (h *Hub) queueSync(s *Source) {
	if s.queued {
		return
	}
	s.queued = true
	h.syncMu.Lock()
	h.syncQ = append(h.syncQ, s)
	h.syncMu.Unlock()
	select {
	case h.syncKick <- struct{}{}:
	default:
	}
}

func (h *Hub) syncLoop(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for {
		h.syncMu.Lock()
		var s *Source
		if len(h.syncQ) > 0 {
			s = h.syncQ[0]
			h.syncQ[0] = nil
			h.syncQ = h.syncQ[1:]
		}
		h.syncMu.Unlock()
		if s == nil {
			select {
			case <-ctx.Done():
				return
			case <-h.syncKick:
			}
			continue
		}
		err := h.sync(ctx, s)
		if err == nil {
			backoff = 50 * time.Millisecond
			continue
		}
		if ctx.Err() != nil {
			return
		}
		h.log.Warn().Err(err).Str("source", s.name).Dur("retry_in", backoff).Msg("source sync failed")
		h.syncMu.Lock()
		h.syncQ = append(h.syncQ, s) // s.queued is still true
		h.syncMu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// sync brings s to live: it reads the source's position if unknown,
// delivers pending envelopes that follow on, and reads the history wherever
// they do not. On error s stays queued and syncing.
func (h *Hub) sync(ctx context.Context, s *Source) error {
	s.mu.Lock()
	known := s.known
	s.mu.Unlock()
	if !known {
		last, err := h.hist.Last(ctx, s.name)
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.last, s.known = last, true
		close(s.ready)
		s.mu.Unlock()
	}
	for {
		s.mu.Lock()
		if s.removed {
			s.queued = false
			s.mu.Unlock()
			return nil
		}
		h.drainPending(s)
		if !s.resync && !s.overflow && len(s.pending) == 0 {
			s.phase = phaseLive
			s.queued = false
			s.mu.Unlock()
			return nil
		}
		s.resync, s.overflow = false, false
		at := s.last
		from := at
		restart := s.restart
		if restart {
			// Ids started over below what the node delivered (Redis lost
			// its data): read the new history from its beginning.
			from = contract.ID{}
		}
		s.mu.Unlock()

		entries, err := h.hist.After(ctx, s.name, from, contract.ID{}, h.cfg.Batch)
		var lostAt contract.ID
		lost := false
		switch {
		case errors.Is(err, replay.ErrHistoryLost) && len(entries) > 0, err == nil && restart && len(entries) > 0:
			// Events the node missed are gone, but history goes on after a
			// gap: streams are told of the loss there, then get every
			// retained event.
			lostAt, lost, err = entries[0].Prev, true, nil
		case errors.Is(err, replay.ErrHistoryLost), err == nil && restart:
			// Nothing retained after the loss: streams go on from the
			// newest id on record.
			newest, lerr := h.hist.Last(ctx, s.name)
			switch {
			case lerr != nil:
				err = lerr
			case !restart && !from.Less(newest):
				err = fmt.Errorf("fanout: %q lost history after %s but its newest id is %s (written outside the publish script?)", s.name, from, newest)
			default:
				lostAt, lost, err = newest, newest != at, nil
			}
		}
		if lost {
			s.mu.Lock()
			if s.last == at {
				h.log.Warn().Str("source", s.name).Stringer("from", at).Stringer("to", lostAt).Bool("restarted", restart).
					Msg("events missed by this node are no longer in the history; streams get history-lost, then what was retained")
				h.deliverLost(s, lostAt)
			}
			s.mu.Unlock()
		}
		if restart {
			s.mu.Lock()
			s.restart = false
			s.mu.Unlock()
		}
		if err != nil {
			s.mu.Lock()
			s.resync = true
			s.mu.Unlock()
			return err
		}
		s.mu.Lock()
		for _, e := range entries {
			if !s.last.Less(e.ID) {
				continue
			}
			if e.Prev != s.last {
				s.resync = true // not contiguous with what was delivered: read again
				break
			}
			topic := e.Topic
			if topic == "" {
				topic = s.name
			}
			h.deliver(s, &Event{ID: e.ID, Prev: e.Prev, Topic: topic, Type: e.Type, Data: e.Data})
			h.c.Repaired.Inc()
		}
		if int64(len(entries)) == h.cfg.Batch {
			s.resync = true // more to read
		}
		s.mu.Unlock()
	}
}

// drainPending delivers pending envelopes that follow s.last, up to the
// first gap. s.mu must be held.
func (h *Hub) drainPending(s *Source) {
	i := 0
	for ; i < len(s.pending); i++ {
		ev := s.pending[i]
		if !s.last.Less(ev.ID) {
			continue
		}
		if ev.Prev != s.last {
			s.resync = true
			break
		}
		h.deliver(s, ev)
	}
	rest := copy(s.pending, s.pending[i:])
	clear(s.pending[rest:])
	s.pending = s.pending[:rest]
}

// checker runs the position check every Config.Check.
func (h *Hub) checker(ctx context.Context) {
	tick := time.NewTicker(h.cfg.Check)
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
// connection failing: it reads every source's newest id in one pipelined
// round trip, and a source that has still not delivered, a whole interval
// later, what the previous check saw on record is repaired from the
// history. Events merely in flight at one check are delivered by the next,
// so they never cause a read.
func (h *Hub) checkPositions(ctx context.Context) error {
	h.mu.RLock()
	ss := make([]*Source, 0, len(h.sources))
	names := make([]string, 0, len(h.sources))
	for name, s := range h.sources {
		ss = append(ss, s)
		names = append(names, name)
	}
	h.mu.RUnlock()
	if len(ss) == 0 {
		return nil
	}
	newest, err := h.hist.Lasts(ctx, names)
	if err != nil {
		return err
	}
	for i, s := range ss {
		s.mu.Lock()
		if s.phase == phaseLive {
			if s.last.Less(s.behind) {
				h.log.Warn().Str("source", s.name).Stringer("delivered", s.last).Stringer("on_record", s.behind).
					Msg("pub/sub fell silent on this source; repairing from the history")
				h.c.Stalls.Inc()
				s.phase = phaseSyncing
				s.resync = true
				h.queueSync(s)
			}
			s.behind = contract.ID{}
			if s.last.Less(newest[i]) {
				s.behind = newest[i]
			} else if !newest[i].IsZero() && newest[i].Less(s.last) {
				// The newest id on record is below what the node delivered:
				// Redis lost its data and ids started over (a restart
				// without persistence, a failover that lost writes). Events
				// published since would look already delivered.
				h.log.Warn().Str("source", s.name).Stringer("delivered", s.last).Stringer("on_record", newest[i]).
					Msg("the history restarted below this node's position; streams get history-lost, then the new history")
				s.phase = phaseSyncing
				s.resync, s.restart = true, true
				h.queueSync(s)
			}
		}
		s.mu.Unlock()
	}
	return nil
}
