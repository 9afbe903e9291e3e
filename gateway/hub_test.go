package gateway

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/replay"
)

// memHistory is an in-memory replay.Store with the same continuity rules as
// the Redis one.
type memHistory struct {
	mu      sync.Mutex
	entries map[string][]replay.Entry
	last    map[string]contract.ID
}

func newMemHistory() *memHistory {
	return &memHistory{entries: map[string][]replay.Entry{}, last: map[string]contract.ID{}}
}

// add appends events with ids ms..ms+n-1 (seq 0) and returns their envelopes.
func (m *memHistory) add(topic string, ms, n int) []contract.Envelope {
	m.mu.Lock()
	defer m.mu.Unlock()
	var envs []contract.Envelope
	for i := 0; i < n; i++ {
		id := contract.ID{Ms: uint64(ms + i)}
		e := replay.Entry{ID: id, Prev: m.last[topic], Data: fmt.Sprint(ms + i)}
		m.entries[topic] = append(m.entries[topic], e)
		m.last[topic] = id
		envs = append(envs, contract.Envelope{ID: id.String(), Prev: e.Prev.String(), Data: e.Data})
	}
	return envs
}

// trim keeps only the newest keep entries.
func (m *memHistory) trim(topic string, keep int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	es := m.entries[topic]
	m.entries[topic] = slices.Clone(es[max(0, len(es)-keep):])
}

func (m *memHistory) Last(_ context.Context, topic string) (contract.ID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last[topic], nil
}

func (m *memHistory) After(_ context.Context, topic string, after, until contract.ID, count int64) ([]replay.Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []replay.Entry
	for _, e := range m.entries[topic] {
		if after.Less(e.ID) && (until.IsZero() || !until.Less(e.ID)) && int64(len(out)) < count {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		if !until.IsZero() && after.Less(until) {
			return nil, replay.ErrHistoryLost
		}
		return nil, nil
	}
	if out[0].Prev != after {
		return nil, replay.ErrHistoryLost
	}
	return out, nil
}

func (m *memHistory) Lasts(_ context.Context, topics []string) ([]contract.ID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]contract.ID, len(topics))
	for i, t := range topics {
		out[i] = m.last[t]
	}
	return out, nil
}

func (m *memHistory) Contains(_ context.Context, topic string, id contract.ID) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.entries[topic] {
		if e.ID == id {
			return true, nil
		}
	}
	return false, nil
}

// fakeSub records what the hub asks of the subscriber.
type fakeSub struct {
	mu           sync.Mutex
	subs, unsubs []string
}

func (f *fakeSub) Subscribe(t ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs = append(f.subs, t...)
}

func (f *fakeSub) Unsubscribe(t ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unsubs = append(f.unsubs, t...)
}

func (f *fakeSub) calls() (subs, unsubs []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.subs), slices.Clone(f.unsubs)
}

func startHub(t *testing.T, hist replay.Store, grace time.Duration) (*hub, *fakeSub) {
	t.Helper()
	sub := &fakeSub{}
	h := newHub(sub, hist, zerolog.Nop(), newMetrics(), grace, 0, 3)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return h, sub
}

// waitFor polls cond until it holds or the test times out.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// received collects what a conn's queue gets, as "id" or "lost:id".
func received(c *conn) func() []string {
	var got []string
	return func() []string {
		items, _ := c.take()
		for _, q := range items {
			s := q.f.id.String()
			if q.f.lost {
				s = "lost:" + s
			}
			got = append(got, s)
		}
		return got
	}
}

func ids(ms ...int) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = fmt.Sprintf("%d-0", m)
	}
	return out
}

func joinLive(t *testing.T, h *hub, c *conn) []*topicState {
	t.Helper()
	ts := h.join(c)
	for _, tp := range ts {
		h.HandleSubscribed(tp.name)
	}
	for _, tp := range ts {
		select {
		case <-tp.ready:
		case <-time.After(10 * time.Second):
			t.Fatal("topic never became ready")
		}
		waitFor(t, "topic live", func() bool { tp.mu.Lock(); defer tp.mu.Unlock(); return tp.phase == phaseLive })
	}
	return ts
}

func TestHub_HandleEvent_inOrder(t *testing.T) {
	hist := newMemHistory()
	hist.add("a", 1, 1)
	h, _ := startHub(t, hist, time.Minute)
	c := newConn([]string{"a"}, 1<<20)
	ts := joinLive(t, h, c)
	if got := ts[0].position(); got != (contract.ID{Ms: 1}) {
		t.Fatalf("position %v, want 1-0", got)
	}
	for _, env := range hist.add("a", 2, 4) {
		h.HandleEvent("a", env)
	}
	if got := received(c)(); !slices.Equal(got, ids(2, 3, 4, 5)) {
		t.Fatalf("got %v", got)
	}
}

func TestHub_HandleEvent_gapRepairedFromStream(t *testing.T) {
	hist := newMemHistory()
	hist.add("a", 1, 1)
	h, _ := startHub(t, hist, time.Minute)
	c := newConn([]string{"a"}, 1<<20)
	joinLive(t, h, c)
	envs := hist.add("a", 2, 8) // 2..9; pub/sub drops 2..6 (more than one read batch)
	h.HandleEvent("a", envs[5])
	h.HandleEvent("a", envs[6])
	h.HandleEvent("a", envs[6]) // a duplicate is dropped
	h.HandleEvent("a", envs[7])
	get := received(c)
	waitFor(t, "repair", func() bool { return len(get()) >= 8 })
	if got := get(); !slices.Equal(got, ids(2, 3, 4, 5, 6, 7, 8, 9)) {
		t.Fatalf("got %v", got)
	}
}

func TestHub_HandleSubscribed_resubscribeRepairs(t *testing.T) {
	hist := newMemHistory()
	h, _ := startHub(t, hist, time.Minute)
	c := newConn([]string{"a"}, 1<<20)
	joinLive(t, h, c)
	for _, env := range hist.add("a", 1, 2) {
		h.HandleEvent("a", env)
	}
	// The connection drops; two events are published meanwhile.
	h.HandleDisconnected(fmt.Errorf("boom"))
	lost := hist.add("a", 3, 2)
	h.HandleSubscribed("a")
	h.HandleEvent("a", lost[1]) // arrives while repairing: delivered once
	next := hist.add("a", 5, 1)
	h.HandleEvent("a", next[0])
	get := received(c)
	waitFor(t, "repair", func() bool { return len(get()) >= 5 })
	if got := get(); !slices.Equal(got, ids(1, 2, 3, 4, 5)) {
		t.Fatalf("got %v", got)
	}
}

func TestHub_sync_historyLostAtNode(t *testing.T) {
	hist := newMemHistory()
	h, _ := startHub(t, hist, time.Minute)
	c := newConn([]string{"a"}, 1<<20)
	joinLive(t, h, c)
	envs := hist.add("a", 1, 10)
	hist.trim("a", 3) // 8, 9, 10 left; the node saw none of them
	h.HandleEvent("a", envs[9])
	get := received(c)
	waitFor(t, "lost frame", func() bool { return len(get()) >= 1 })
	if got := get(); !slices.Equal(got, []string{"lost:10-0"}) {
		t.Fatalf("got %v", got)
	}
	// Live again after the loss.
	h.HandleEvent("a", hist.add("a", 11, 1)[0])
	if got := get(); !slices.Equal(got, []string{"lost:10-0", "11-0"}) {
		t.Fatalf("got %v", got)
	}
}

func TestHub_sweep_unsubscribesAfterGrace(t *testing.T) {
	h, sub := startHub(t, newMemHistory(), 20*time.Millisecond)
	c := newConn([]string{"a", "b"}, 1<<20)
	ts := joinLive(t, h, c)
	c2 := newConn([]string{"b"}, 1<<20)
	joinLive(t, h, c2)
	h.leave(c, ts)
	waitFor(t, "unsubscribe a", func() bool { _, u := sub.calls(); return slices.Equal(u, []string{"a"}) })
	// b still has a stream; a comes back as a new subscription.
	joinLive(t, h, newConn([]string{"a"}, 1<<20))
	if s, _ := sub.calls(); !slices.Equal(s, []string{"a", "b", "a"}) {
		t.Fatalf("subscribes %v", s)
	}
}

func TestConn_enqueue_overflowEvicts(t *testing.T) {
	c := newConn([]string{"a"}, 150) // a frame is 56 bytes: two fit, three do not
	f := newFrame(event{id: contract.ID{Ms: 1}, data: "0123456789012345678901234567890123456789"})
	c.enqueue(f, 0)
	c.enqueue(f, 0)
	if q, ev := c.take(); len(q) != 2 || ev {
		t.Fatalf("queued %d evicted %v", len(q), ev)
	}
	for range 3 {
		c.enqueue(f, 0)
	}
	q, ev := c.take()
	if !ev || len(q) != 0 {
		t.Fatalf("after overflow: queued %d evicted %v, want evicted with the queue dropped", len(q), ev)
	}
	c.enqueue(f, 0)
	if q, _ := c.take(); len(q) != 0 {
		t.Fatal("an evicted conn still queues")
	}
}

func TestHub_checkPositions_repairsSilentTopic(t *testing.T) {
	hist := newMemHistory()
	h, _ := startHub(t, hist, time.Minute)
	c := newConn([]string{"quiet", "busy"}, 1<<20)
	joinLive(t, h, c)
	ctx := context.Background()
	get := received(c)

	// busy: an event on record whose envelope is merely in flight at the
	// first check and arrives before the second: no repair.
	inFlight := hist.add("busy", 1, 1)
	// quiet: pub/sub silently stops delivering; two events are on record.
	hist.add("quiet", 10, 2)
	if err := h.checkPositions(ctx); err != nil {
		t.Fatal(err)
	}
	h.HandleEvent("busy", inFlight[0])
	if got := get(); !slices.Equal(got, ids(1)) {
		t.Fatalf("after the first check: %v (nothing may be repaired yet)", got)
	}
	if err := h.checkPositions(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "repair", func() bool { return len(get()) >= 3 })
	if got := get(); !slices.Equal(got, ids(1, 10, 11)) {
		t.Fatalf("got %v", got)
	}
	if n := testGauge(h.m.stalls); n != 1 {
		t.Fatalf("stalls = %v, want 1 (only the silent topic)", n)
	}
}

// slowHistory counts After calls and makes each take a while, so that
// concurrent identical reads overlap.
type slowHistory struct {
	*memHistory
	mu    sync.Mutex
	calls int
}

func (s *slowHistory) After(ctx context.Context, topic string, after, until contract.ID, count int64) ([]replay.Entry, error) {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	time.Sleep(50 * time.Millisecond)
	return s.memHistory.After(ctx, topic, after, until, count)
}

func TestReadGroup_after_sharesIdenticalReads(t *testing.T) {
	hist := &slowHistory{memHistory: newMemHistory()}
	hist.add("a", 1, 10)
	g := newReadGroup(hist, 4, newMetrics())
	const readers = 100
	var wg sync.WaitGroup
	results := make([][]replay.Entry, readers)
	errs := make([]error, readers)
	for i := range readers {
		wg.Go(func() {
			results[i], errs[i] = g.after(context.Background(), "a", contract.ID{Ms: 3}, contract.ID{Ms: 10}, 100)
		})
	}
	wg.Wait()
	g.wg.Wait()
	for i := range readers {
		if errs[i] != nil || len(results[i]) != 7 || results[i][0].ID != (contract.ID{Ms: 4}) {
			t.Fatalf("reader %d: %d entries, %v", i, len(results[i]), errs[i])
		}
	}
	if hist.calls > readers/10 {
		t.Fatalf("%d reads for %d identical concurrent requests", hist.calls, readers)
	}
	t.Logf("%d Redis reads served %d reconnecting streams", hist.calls, readers)
	// A reader that gives up does not fail the others.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.after(ctx, "a", contract.ID{}, contract.ID{Ms: 10}, 100); err == nil {
		t.Fatal("a cancelled reader got a result")
	}
	g.wg.Wait()
}

func nopLogger() zerolog.Logger { return zerolog.Nop() }

// allLive reports whether every topic the node has is live (so a test knows
// that a stream's subscriptions are in place).
func (h *hub) allLive() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, t := range h.topics {
		t.mu.Lock()
		live := t.phase == phaseLive
		t.mu.Unlock()
		if !live {
			return false
		}
	}
	return true
}
