package fanout

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/internal/memhistory"
	"github.com/ssegateway/ssegateway/internal/testutil"
	"github.com/ssegateway/ssegateway/replay"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// count is a Counter for tests.
type count struct{ atomic.Int64 }

func (c *count) Inc()          { c.Add(1) }
func (c *count) Add(v float64) { c.Int64.Add(int64(v)) }
func (c *count) Sub(v float64) { c.Int64.Add(-int64(v)) }

// counters are a hub's counters, readable by a test.
type counters struct {
	received, repaired, lost, stalls, disconnects, sources count
}

func (c *counters) fanout() Counters {
	return Counters{Received: &c.received, Repaired: &c.repaired, HistoryLost: &c.lost, Stalls: &c.stalls,
		Disconnects: &c.disconnects, Sources: &c.sources}
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

func startHub(t *testing.T, hist replay.Store, grace time.Duration) (*Hub, *fakeSub, *counters) {
	t.Helper()
	sub := &fakeSub{}
	c := &counters{}
	h := New(Config{Grace: grace, Batch: 3, Logger: zerolog.Nop(), Counters: c.fanout()}, sub, hist)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return h, sub, c
}

// received collects what an outbox gets, as "id" or "lost:id".
func received(o *Outbox) func() []string {
	var got []string
	return func() []string {
		items, _ := o.Take()
		for _, q := range items {
			s := q.Frame.ID.String()
			if q.Frame.Lost {
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

func joinLive(t *testing.T, h *Hub, o *Outbox) []*Source {
	t.Helper()
	ts := h.Join(o)
	for _, tp := range ts {
		h.HandleSubscribed(tp.name)
	}
	for _, tp := range ts {
		select {
		case <-tp.Ready():
		case <-time.After(10 * time.Second):
			t.Fatal("topic never became ready")
		}
		testutil.WaitFor(t, "topic live", func() bool { tp.mu.Lock(); defer tp.mu.Unlock(); return tp.phase == phaseLive })
	}
	return ts
}

func TestHub_HandleEvent_inOrder(t *testing.T) {
	hist := memhistory.New()
	hist.Add("a", 1, 1)
	h, _, _ := startHub(t, hist, time.Minute)
	c := Topics([]string{"a"}, 1<<20)
	ts := joinLive(t, h, c)
	if got := ts[0].Position(); got != (contract.ID{Ms: 1}) {
		t.Fatalf("position %v, want 1-0", got)
	}
	for _, env := range hist.Add("a", 2, 4) {
		h.HandleEvent("a", env)
	}
	if got := received(c)(); !slices.Equal(got, ids(2, 3, 4, 5)) {
		t.Fatalf("got %v", got)
	}
}

func TestHub_HandleEvent_gapRepairedFromStream(t *testing.T) {
	hist := memhistory.New()
	hist.Add("a", 1, 1)
	h, _, _ := startHub(t, hist, time.Minute)
	c := Topics([]string{"a"}, 1<<20)
	joinLive(t, h, c)
	envs := hist.Add("a", 2, 8) // 2..9; pub/sub drops 2..6 (more than one read batch)
	h.HandleEvent("a", envs[5])
	h.HandleEvent("a", envs[6])
	h.HandleEvent("a", envs[6]) // a duplicate is dropped
	h.HandleEvent("a", envs[7])
	get := received(c)
	testutil.WaitFor(t, "repair", func() bool { return len(get()) >= 8 })
	if got := get(); !slices.Equal(got, ids(2, 3, 4, 5, 6, 7, 8, 9)) {
		t.Fatalf("got %v", got)
	}
}

func TestHub_HandleSubscribed_resubscribeRepairs(t *testing.T) {
	hist := memhistory.New()
	h, _, _ := startHub(t, hist, time.Minute)
	c := Topics([]string{"a"}, 1<<20)
	joinLive(t, h, c)
	for _, env := range hist.Add("a", 1, 2) {
		h.HandleEvent("a", env)
	}
	// The connection drops; two events are published meanwhile.
	h.HandleDisconnected(fmt.Errorf("boom"))
	lost := hist.Add("a", 3, 2)
	h.HandleSubscribed("a")
	h.HandleEvent("a", lost[1]) // arrives while repairing: delivered once
	next := hist.Add("a", 5, 1)
	h.HandleEvent("a", next[0])
	get := received(c)
	testutil.WaitFor(t, "repair", func() bool { return len(get()) >= 5 })
	if got := get(); !slices.Equal(got, ids(1, 2, 3, 4, 5)) {
		t.Fatalf("got %v", got)
	}
}

func TestHub_sync_historyLostAtNode(t *testing.T) {
	hist := memhistory.New()
	h, _, _ := startHub(t, hist, time.Minute)
	c := Topics([]string{"a"}, 1<<20)
	joinLive(t, h, c)
	envs := hist.Add("a", 1, 10)
	hist.Trim("a", 3) // 8, 9, 10 left; the node saw none of them
	h.HandleEvent("a", envs[9])
	get := received(c)
	testutil.WaitFor(t, "lost frame", func() bool { return len(get()) >= 4 })
	// The loss is placed at the gap, and what was retained follows.
	if got := get(); !slices.Equal(got, []string{"lost:7-0", "8-0", "9-0", "10-0"}) {
		t.Fatalf("got %v", got)
	}
	// Live again after the loss.
	h.HandleEvent("a", hist.Add("a", 11, 1)[0])
	if got := get(); !slices.Equal(got, []string{"lost:7-0", "8-0", "9-0", "10-0", "11-0"}) {
		t.Fatalf("got %v", got)
	}
}

// TestHub_checkPositions_restartedHistory: Redis loses its data and ids
// start over below what the node delivered, so new envelopes look already
// delivered; the position check sees the record go backwards, and streams
// get history-lost, then the new history.
func TestHub_checkPositions_restartedHistory(t *testing.T) {
	hist := memhistory.New()
	h, _, _ := startHub(t, hist, time.Minute)
	c := Topics([]string{"a"}, 1<<20)
	joinLive(t, h, c)
	for _, env := range hist.Add("a", 100, 3) {
		h.HandleEvent("a", env)
	}
	hist.Reset()
	for _, env := range hist.Add("a", 50, 2) {
		h.HandleEvent("a", env) // dropped: below the node's position
	}
	get := received(c)
	if got := get(); !slices.Equal(got, ids(100, 101, 102)) {
		t.Fatalf("before the check: %v", got)
	}
	if err := h.checkPositions(context.Background()); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the new history", func() bool { return len(get()) >= 6 })
	if got := get(); !slices.Equal(got, []string{"100-0", "101-0", "102-0", "lost:0-0", "50-0", "51-0"}) {
		t.Fatalf("got %v", got)
	}
	h.HandleEvent("a", hist.Add("a", 52, 1)[0])
	if got := get(); len(got) != 7 || got[6] != "52-0" {
		t.Fatalf("live after the restart: %v", got)
	}
}

func TestHub_sweep_unsubscribesAfterGrace(t *testing.T) {
	h, sub, _ := startHub(t, memhistory.New(), 20*time.Millisecond)
	c := Topics([]string{"a", "b"}, 1<<20)
	ts := joinLive(t, h, c)
	c2 := Topics([]string{"b"}, 1<<20)
	joinLive(t, h, c2)
	h.Leave(c, ts)
	testutil.WaitFor(t, "unsubscribe a", func() bool { _, u := sub.calls(); return slices.Equal(u, []string{"a"}) })
	// b still has a stream; a comes back as a new subscription.
	joinLive(t, h, Topics([]string{"a"}, 1<<20))
	if s, _ := sub.calls(); !slices.Equal(s, []string{"a", "b", "a"}) {
		t.Fatalf("subscribes %v", s)
	}
}

func TestOutbox_enqueue_overflowEvicts(t *testing.T) {
	c := Topics([]string{"a"}, 150) // a frame is 56 bytes: two fit, three do not
	f := newFrame(&Event{ID: contract.ID{Ms: 1}, Data: "0123456789012345678901234567890123456789"})
	f.build(PlainForm{})
	c.enqueue(f, 0)
	c.enqueue(f, 0)
	if q, ev := c.Take(); len(q) != 2 || ev {
		t.Fatalf("queued %d evicted %v", len(q), ev)
	}
	for range 3 {
		c.enqueue(f, 0)
	}
	q, ev := c.Take()
	if !ev || len(q) != 0 {
		t.Fatalf("after overflow: queued %d evicted %v, want evicted with the queue dropped", len(q), ev)
	}
	c.enqueue(f, 0)
	if q, _ := c.Take(); len(q) != 0 {
		t.Fatal("an evicted outbox still queues")
	}
}

func TestHub_checkPositions_repairsSilentTopic(t *testing.T) {
	hist := memhistory.New()
	h, _, cs := startHub(t, hist, time.Minute)
	c := Topics([]string{"quiet", "busy"}, 1<<20)
	joinLive(t, h, c)
	ctx := context.Background()
	get := received(c)

	// busy: an event on record whose envelope is merely in flight at the
	// first check and arrives before the second: no repair.
	inFlight := hist.Add("busy", 1, 1)
	// quiet: pub/sub silently stops delivering; two events are on record.
	hist.Add("quiet", 10, 2)
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
	testutil.WaitFor(t, "repair", func() bool { return len(get()) >= 3 })
	if got := get(); !slices.Equal(got, ids(1, 10, 11)) {
		t.Fatalf("got %v", got)
	}
	if n := cs.stalls.Load(); n != 1 {
		t.Fatalf("stalls = %v, want 1 (only the silent topic)", n)
	}
}

// racyLasts delivers an event to the hub while the position check reads
// the records, after reading them: the record it returns is one event
// behind what the node then has, as when an event arrives during the read.
type racyLasts struct {
	*memhistory.Store
	h *Hub
}

func (r *racyLasts) Lasts(ctx context.Context, names []string) ([]contract.ID, error) {
	out, err := r.Store.Lasts(ctx, names)
	for _, env := range r.Store.Add("a", 200, 1) {
		r.h.HandleEvent("a", env)
	}
	return out, err
}

// TestHub_checkPositions_eventDuringRead: an event delivered while the
// check reads the records is not taken for ids starting over (no
// history-lost, no repair).
func TestHub_checkPositions_eventDuringRead(t *testing.T) {
	store := memhistory.New()
	hist := &racyLasts{Store: store}
	h, _, cs := startHub(t, hist, time.Minute)
	hist.h = h
	c := Topics([]string{"a"}, 1<<20)
	joinLive(t, h, c)
	for _, env := range store.Add("a", 100, 1) {
		h.HandleEvent("a", env)
	}
	if err := h.checkPositions(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.HandleEvent("a", store.Add("a", 300, 1)[0])
	if got := received(c)(); !slices.Equal(got, ids(100, 200, 300)) {
		t.Fatalf("got %v, want every event once and no history-lost", got)
	}
	if n := cs.lost.Load(); n != 0 {
		t.Fatalf("history-lost %d times", n)
	}
}

// TestHub_deliver_framesBuiltBeforeHandedOut: a topic followed by streams
// of two forms (plain, and named for streams that also hold patterns). A
// stream reads its frames without the source's lock while the hub goes on
// delivering, so every form must be built before any stream is handed the
// frame: with -race, building the second form after handing the first
// one's stream the frame is a data race.
func TestHub_deliver_framesBuiltBeforeHandedOut(t *testing.T) {
	hist := memhistory.New()
	hist.Add("a", 1, 1)
	h, _, _ := startHub(t, hist, time.Minute)
	plain := Topics([]string{"a"}, 1<<20)
	named := NewOutbox([]Want{{Source: "a"}}, NamedForm{}, 1<<20)
	joinLive(t, h, plain)
	joinLive(t, h, named)
	done := make(chan []string)
	go func() { // the plain stream's writer, reading as frames arrive
		var got []string
		for len(got) < 200 {
			<-plain.Notify()
			items, _ := plain.Take()
			for _, q := range items {
				got = append(got, string(q.Frame.Bytes(PlainForm{})))
			}
			plain.Recycle(items)
		}
		done <- got
	}()
	for _, env := range hist.Add("a", 2, 200) {
		h.HandleEvent("a", env)
	}
	select {
	case got := <-done:
		for i, b := range got {
			if !strings.HasPrefix(b, "id: ") || !strings.HasSuffix(b, "\n\n") {
				t.Fatalf("frame %d in plain form: %q", i, b)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the plain stream did not get its 200 events")
	}
	items, _ := named.Take()
	if len(items) != 200 || !strings.Contains(string(items[0].Frame.Bytes(NamedForm{})), `"topic":"a"`) {
		t.Fatalf("named stream: %d frames", len(items))
	}
}
