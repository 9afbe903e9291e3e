package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/gateway/fanout"
	"github.com/ssegateway/ssegateway/replay"
)

// Resume: a (re)connecting stream joins its topics first, learns each
// topic's position, replays from the client's cursor up to it (history
// reads shared between streams making the same read), and only then goes
// live, skipping what the replay already sent. Where the history after a
// cursor is gone, the client is told in-band with a history-lost event,
// never with an error status.

// resume places every topic from the cursor, replays what the client missed
// up to the position the hub had when the stream joined, and ends with a
// checkpoint id. It reports false, with the reason, if the stream must end.
func (st *stream) resume(ctx context.Context, cursor string, ts []*fanout.Source) (closeReason, bool) {
	start := time.Now()
	r, ok, result := st.place(ctx, cursor, ts)
	if !ok && r == closeRedis {
		result = replayError
	}
	if cursor != "" && result != "" {
		st.d.m.replays.WithLabelValues(result).Inc()
		st.d.m.replayDuration.Observe(time.Since(start).Seconds())
	}
	return r, ok
}

// place does resume's work, and says how it went for replays_total.
//
// Per want, from the cursor: nothing to do if the client is where the node
// is; skip live events up to its position if it is further along (it came
// from a node ahead of this one); otherwise replay what it missed. Where
// history after its position is gone, it gets a history-lost event placed
// at the gap — before the oldest event still retained — followed by every
// retained event, so nothing that survived is skipped. A want with no
// position of its own (no cursor, or one that cannot be placed) goes live
// where its source was when the response headers went out, if it was known
// then, not where it is now: its client may have published as soon
// as it saw the stream open.
func (st *stream) place(ctx context.Context, cursor string, ts []*fanout.Source) (r closeReason, ok bool, result string) {
	d := st.d
	starts, err := st.starts(ctx, cursor)
	if err != nil {
		st.logger().Warn().Err(err).Msg("resume: placing the cursor failed")
		return st.bye(closeRedis), false, result
	}
	n := len(ts)
	upTo := make([]contract.ID, n)
	var liveAt []contract.ID // the positions when the headers went out, if known
	if st.liveKnown {
		liveAt, st.liveKnown = st.pos, false
	}
	st.pos = make([]contract.ID, n)
	for i, t := range ts {
		upTo[i] = t.Position()
		st.pos[i] = upTo[i]
	}
	lost := map[string][]int{}
	pages := make([][]replay.Entry, n) // the first page of each want replayed
	var replaying []int
	for i, sp := range starts {
		source := st.sub.wants[i].Source
		live := upTo[i] // where the want goes live, with no position of its own
		if liveAt != nil {
			live = liveAt[i]
		}
		switch {
		case sp.kind == startLive:
			st.pos[i] = live
			// A live start past a position the node has not delivered yet
			// skips the live events up to it.
			if live.Less(sp.id) {
				st.pos[i] = sp.id
			}
		case sp.kind == startInvalid:
			st.pos[i] = live
			lost["invalid-cursor"] = append(lost["invalid-cursor"], i)
		case sp.kind == startEarliest:
			// All that is retained; a trimmed beginning is not a loss here.
			entries, err := d.reads.after(ctx, source, contract.ID{}, upTo[i], d.batch)
			switch {
			case err != nil && !errors.Is(err, replay.ErrHistoryLost):
				st.logger().Warn().Err(err).Msg("resume: reading history failed")
				return st.bye(closeRedis), false, result
			case len(entries) > 0:
				st.pos[i] = entries[0].Prev
				replaying = append(replaying, i)
				pages[i] = entries
			}
		case sp.id == upTo[i]:
		case upTo[i].Less(sp.id):
			// The client saw more than this node has delivered yet (it came
			// from a node further along). Live events up to its position
			// are skipped, if the position is real.
			ok, err := d.reads.contains(ctx, source, sp.id)
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
			entries, err := d.reads.after(ctx, source, sp.id, upTo[i], d.batch)
			switch {
			case errors.Is(err, replay.ErrHistoryLost) && len(entries) > 0:
				// Retained history starts after a gap: the client is placed
				// at the gap and gets everything after it.
				st.pos[i] = entries[0].Prev
				lost["trimmed"] = append(lost["trimmed"], i)
				replaying = append(replaying, i)
				pages[i] = entries
			case errors.Is(err, replay.ErrHistoryLost):
				lost["trimmed"] = append(lost["trimmed"], i)
			case err != nil:
				st.logger().Warn().Err(err).Msg("resume: reading history failed")
				return st.bye(closeRedis), false, result
			default:
				st.pos[i] = sp.id
				replaying = append(replaying, i)
				pages[i] = entries
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
	wrote := len(lost) > 0 // the last id written carries the current cursor
	for _, i := range replaying {
		page := pages[i]
		for {
			sent := 0
			for _, e := range page {
				if !st.pos[i].Less(e.ID) {
					continue
				}
				if st.appendEvent(i, e) {
					sent++
					wrote = true
				} else {
					wrote = false // the position moved past the last id written
				}
				if len(st.buf) >= flushAt && st.flush() != nil {
					return closeWrite, false, result
				}
			}
			d.m.replayed.Add(float64(sent))
			if !st.pos[i].Less(upTo[i]) {
				break
			}
			var err error
			page, err = d.reads.after(ctx, st.sub.wants[i].Source, st.pos[i], upTo[i], d.batch)
			if errors.Is(err, replay.ErrHistoryLost) {
				// Trimmed while we were reading it.
				st.pos[i] = upTo[i]
				if len(page) > 0 {
					st.pos[i] = page[0].Prev
				}
				st.appendLost([]int{i}, "trimmed")
				wrote = true
				if len(page) > 0 {
					continue
				}
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
	// nothing else arrives first. It is needed unless the last event written
	// already carries the current cursor.
	if !wrote {
		st.grab()
		st.buf = st.appendID(st.buf)
		st.buf = append(st.buf, '\n')
	}
	if st.flush() != nil {
		return closeWrite, false, result
	}
	return 0, true, result
}

// appendEvent moves want i's position to a history entry and appends the
// entry, unless the want passes it over. It reports whether it appended
// it.
func (st *stream) appendEvent(i int, e replay.Entry) bool {
	st.pos[i] = e.ID
	ev := &fanout.Event{ID: e.ID, Prev: e.Prev, Topic: e.Topic, Type: e.Type, Data: e.Data}
	if ev.Topic == "" {
		ev.Topic = st.sub.wants[i].Source
	}
	if !st.sub.accepts(i, ev) {
		return false
	}
	st.appendWire(ev)
	st.events++
	return true
}

// appendWire appends an event in the stream's form: whole, its own id
// line included, when the stream has one want (a single topic's cursor is
// the event id; other front doors write their own ids); after the stream's
// cursor otherwise.
func (st *stream) appendWire(ev *fanout.Event) {
	st.grab()
	form := st.box.Form()
	if len(st.pos) == 1 {
		st.buf = form.AppendEvent(st.buf, ev)
		return
	}
	st.buf = st.appendID(st.buf)
	if _, named := form.(fanout.NamedForm); named {
		st.buf = fanout.AppendNamedBody(st.buf, ev.Type, ev.Topic, ev.Data)
	} else {
		st.buf = fanout.AppendBody(st.buf, ev.Type, ev.Data)
	}
}

// historyLost is the data of a history-lost event.
type historyLost struct {
	Topics []string `json:"topics"`
	Reason string   `json:"reason"`
}

// appendLost appends a history-lost event for the wants at indexes idx —
// naming the topics and patterns they serve — whose positions the caller
// has already moved to where the stream goes on.
func (st *stream) appendLost(idx []int, reason string) {
	hl := historyLost{Reason: reason}
	for _, i := range idx {
		hl.Topics = append(hl.Topics, st.sub.names(i)...)
	}
	data, _ := json.Marshal(hl)
	st.grab()
	st.buf = st.appendID(st.buf)
	st.buf = fanout.AppendBody(append(st.buf, "event: "+contract.HistoryLostType+"\n"...), "", string(data))
	st.d.m.historyLost.Inc()
}

// readGroup makes the history reads of reconnecting streams. When a node
// dies, its clients reconnect to the others at about the same moment, most
// with the same cursor per topic: identical reads in flight together are
// made once and their result shared, and at most max reads run at once, so
// a reconnect storm costs Redis a few reads per topic, not one per client.
type readGroup struct {
	hist replay.Store
	sem  chan struct{}
	m    *metrics
	// base is the context reads run under: the server's, so a shutdown ends
	// them; wg counts them so the server can wait for them.
	base context.Context
	wg   sync.WaitGroup

	mu    sync.Mutex
	calls map[readKey]*readCall
}

type readKey struct {
	op           readOp
	topic        string
	after, until contract.ID
	count        int64
	key          string // a lookup's
}

// readOp is the Store method a read calls.
type readOp uint8

const (
	opAfter readOp = iota
	opContains
	opLookup
)

type readCall struct {
	done    chan struct{}
	entries []replay.Entry // shared: read only
	found   bool           // Contains' and Lookup's answer
	id      contract.ID    // Lookup's
	err     error
}

// readTimeout bounds one shared read; it does not follow any one stream's
// context, since other streams may be waiting for it.
const readTimeout = 10 * time.Second

func newReadGroup(hist replay.Store, max int, m *metrics) *readGroup {
	return &readGroup{hist: hist, sem: make(chan struct{}, max), m: m, base: context.Background(),
		calls: make(map[readKey]*readCall)}
}

// after is replay.Store.After, shared between identical concurrent calls.
// The returned entries must not be modified.
func (g *readGroup) after(ctx context.Context, topic string, after, until contract.ID, count int64) ([]replay.Entry, error) {
	c, err := g.read(ctx, readKey{topic: topic, after: after, until: until, count: count})
	if c == nil {
		return nil, err
	}
	return c.entries, err // with ErrHistoryLost, the history retained after the gap
}

// contains is replay.Store.Contains, shared and bounded like after: a
// storm of clients coming from a node further along asks it too.
func (g *readGroup) contains(ctx context.Context, topic string, id contract.ID) (bool, error) {
	c, err := g.read(ctx, readKey{op: opContains, topic: topic, after: id})
	if err != nil {
		return false, err
	}
	return c.found, nil
}

// lookup is replay.Store.Lookup, shared and bounded like after: a Mercure
// hub's subscribers reconnecting after a node died name the same ids.
func (g *readGroup) lookup(ctx context.Context, feed, key string) (contract.ID, bool, error) {
	c, err := g.read(ctx, readKey{op: opLookup, topic: feed, key: key})
	if err != nil {
		return contract.ID{}, false, err
	}
	return c.id, c.found, nil
}

// read makes the read k, or joins an identical one in flight, and waits
// for it or for ctx.
func (g *readGroup) read(ctx context.Context, k readKey) (*readCall, error) {
	g.mu.Lock()
	c, shared := g.calls[k]
	if !shared {
		c = &readCall{done: make(chan struct{})}
		g.calls[k] = c
	}
	g.mu.Unlock()
	if shared {
		g.m.replayReads.WithLabelValues("true").Inc()
	} else {
		g.m.replayReads.WithLabelValues("false").Inc()
		g.wg.Go(func() { g.do(k, c) })
	}
	select {
	case <-c.done:
		return c, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// do makes one read. It runs on its own goroutine so that the stream that
// started it can leave without failing the others; it ends within
// readTimeout, or when the server's context ends.
func (g *readGroup) do(k readKey, c *readCall) {
	ctx, cancel := context.WithTimeout(g.base, readTimeout)
	defer cancel()
	select {
	case g.sem <- struct{}{}:
		switch k.op {
		case opContains:
			c.found, c.err = g.hist.Contains(ctx, k.topic, k.after)
		case opLookup:
			c.id, c.found, c.err = g.hist.Lookup(ctx, k.topic, k.key)
		default:
			c.entries, c.err = g.hist.After(ctx, k.topic, k.after, k.until, k.count)
		}
		<-g.sem
	case <-ctx.Done():
		c.err = ctx.Err()
	}
	g.mu.Lock()
	delete(g.calls, k)
	g.mu.Unlock()
	close(c.done)
}
