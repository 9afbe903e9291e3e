package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ssegateway/ssegateway/gateway/sseclient"
	"github.com/ssegateway/ssegateway/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHist_quantiles(t *testing.T) {
	h := newHist()
	var ds []time.Duration
	for range 10000 {
		d := time.Duration(rand.ExpFloat64() * float64(5*time.Millisecond))
		h.add(d)
		ds = append(ds, d)
	}
	slices.Sort(ds)
	for _, q := range []float64{0.5, 0.99} {
		exact := ds[int(q*float64(len(ds)))-1]
		got := h.quantile(q)
		if got < exact || float64(got) > float64(exact)*1.03 {
			t.Errorf("q%.2f = %v, exact %v", q, got, exact)
		}
	}
	o := newHist()
	o.add(time.Second)
	h.merge(o)
	if h.N != 10001 || time.Duration(h.Max) != time.Second || h.quantile(1) != time.Second {
		t.Errorf("merge: n %d max %v", h.N, time.Duration(h.Max))
	}
}

func TestSourceList(t *testing.T) {
	got, err := sourceList("127.0.0.1-127.0.0.3")
	if err != nil || !slices.Equal(got, []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}) {
		t.Errorf("%v %v", got, err)
	}
	for _, bad := range []string{"127.0.0.3-127.0.0.1", "127.0.0.1-10.0.0.2", "x-y"} {
		if _, err := sourceList(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestScenarios runs every mode, small, against a real gateway process (on
// its embedded Redis) with workers in separate processes: the numbers the
// tool reports must add up.
func TestScenarios(t *testing.T) {
	dir := t.TempDir()
	self, gw := filepath.Join(dir, "ssebench"), filepath.Join(dir, "gateway")
	for out, pkg := range map[string]string{self: ".", gw: "../gateway"} {
		if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, b)
		}
	}
	port, admin := redistest.FreePort(t), redistest.FreePort(t)
	cmd := exec.Command(gw, "--addr", fmt.Sprintf("127.0.0.1:%d", port), "--admin-addr", fmt.Sprintf("127.0.0.1:%d", admin),
		"--log-level", "warn", "--log-format", "json")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	tg := &target{url: fmt.Sprintf("http://127.0.0.1:%d", port), path: "/events?topic=%s", body: `{"topic":%q,"data":%q}`,
		sources: "127.0.0.1-127.0.0.4", perProc: 40, pid: cmd.Process.Pid, exe: self,
		metricURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", admin)}
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := http.Get(tg.metricURL)
		if err == nil {
			res.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx := context.Background()

	idle, err := doIdle(tg, 100, "idle", 200*time.Millisecond)
	if err != nil || idle.Conns != 100 || idle.Failed != 0 || idle.PerConn <= 0 {
		t.Errorf("idle: %+v %v", idle, err)
	}

	// 100 subscribers over three worker processes, 4 publishers.
	f, err := doFanout(ctx, tg, 100, 100, time.Second, 64, "fan", 4, time.Second)
	if err != nil || f.Opened != 100 || f.Published != 100 || f.Expected != 10000 || f.Received != 10000 ||
		f.Lost != 0 || f.Gaps != 0 || f.Tail != 0 || f.Dupes != 0 || f.P99 <= 0 || f.CPU <= 0 {
		t.Errorf("fanout: %+v %v", f, err)
	}

	s, err := doStorm(ctx, tg, 50, 200, 64, "storm")
	if err != nil || s.Done != 50 || s.Lost != 0 || s.Dupes != 0 || s.Max <= 0 || s.OwnReads < 1 {
		t.Errorf("storm: %+v %v", s, err)
	}

	p := doPublishHTTP(ctx, tg, 4, 300*time.Millisecond, 64, 10)
	if p.N == 0 || p.Errors != 0 {
		t.Errorf("publish: %+v", p)
	}
	g, err := doPublishRedis(ctx, redistest.Start(t).URL(), 2, 300*time.Millisecond, 64, 10, 16)
	if err != nil || g.N == 0 || g.N%16 != 0 || g.Errors != 0 {
		t.Errorf("publish to Redis: %+v %v", g, err)
	}
}

// TestWorker_fanoutAccounting: per publisher, a skipped number is lost, a
// repeated one duplicated, and what follows a client's last event from a
// publisher is the tail it had not reached.
func TestWorker_fanoutAccounting(t *testing.T) {
	w := &worker{job: job{Mode: "fanout", Publishers: 2}, lat: newHist()}
	c := &client{}
	w.clients = []*client{c}
	now := time.Now().UnixNano()
	for _, ev := range []string{"0 0", "1 0", "0 1", "0 3", "1 1", "0 3", "2 0", "x"} {
		w.event(c, []byte(fmt.Sprintf("%s %d pad", ev, now)), time.Now())
	}
	if w.events.Load() != 6 || w.lost.Load() != 1 || w.dupes.Load() != 1 {
		t.Errorf("events %d lost %d dupes %d", w.events.Load(), w.lost.Load(), w.dupes.Load())
	}
	if got := w.tail([]int64{6, 4}); got != 2+2 {
		t.Errorf("tail %d, want 4", got)
	}
	if w.lat.N != 5 {
		t.Errorf("%d latencies", w.lat.N)
	}
}

// TestSoak_short runs the soak small and short against a real gateway
// process and a real Redis (AOF) restarted midway: every event reaches the
// tracked clients exactly once, in order, across their reconnects and the
// restart, and the report adds up. (Memory flatness needs minutes of
// warm-up: make soak.)
func TestSoak_short(t *testing.T) {
	dir := t.TempDir()
	self, gw := filepath.Join(dir, "ssebench"), filepath.Join(dir, "gateway")
	for out, pkg := range map[string]string{self: ".", gw: "../gateway"} {
		if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, b)
		}
	}
	c := soakConfig{gateway: gw, exe: self, duration: 12 * time.Second, streams: 240, tracked: 15, churn: 10, rate: 20, topics: 6,
		warmup: 3 * time.Second, every: 2 * time.Second, restartAt: 5 * time.Second, redisDown: time.Second, drain: 30 * time.Second,
		sources: "127.0.0.1-127.0.0.4", perProc: 120}
	r, err := runSoak(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	r.print(&out, c)
	t.Log(out.String())
	tt := r.Tracked
	if tt.Checked == 0 || tt.Lost != 0 || tt.Dupes != 0 || tt.Reordered != 0 || tt.HistoryLost != 0 || tt.Unexpected != 0 || tt.Errors != 0 {
		t.Errorf("tracked clients: %+v", tt)
	}
	if r.LoadOpened != 225 || r.Published < 100 || r.RedisDown < time.Second || r.PubSubDisconnects < 1 || r.Churned == 0 || tt.Reconnects == 0 {
		t.Errorf("opened %d, published %d, Redis away %v, pub/sub disconnects %v, churned %d, tracked reconnects %d",
			r.LoadOpened, r.Published, r.RedisDown, r.PubSubDisconnects, r.Churned, tt.Reconnects)
	}
	if r.Start.At < c.warmup || r.Middle.At < c.restartAt || r.End.At < c.duration || r.End.Streams != 240 || r.End.FDs < 240 {
		t.Errorf("samples: start %+v, middle %+v, end %+v", r.Start, r.Middle, r.End)
	}
	if r.HistoryLostSent != 0 {
		t.Errorf("the node sent %v history-lost events: Redis kept its data", r.HistoryLostSent)
	}
}

// TestTrackedClient_accounting: per topic, a skipped number is lost until
// it arrives late (then it is reordered), a repeated one duplicated, and
// what was published after the last number received is lost at the end.
func TestTrackedClient_accounting(t *testing.T) {
	tr := newTracker("http://x", []string{"a"}, 1)
	tc := tr.clients[0]
	now := time.Now().UnixNano()
	for _, ev := range []sseclient.Event{
		{Type: "message", Data: fmt.Sprintf("a 0 %d", now)},
		{Type: "message", Data: fmt.Sprintf("a 1 %d", now)},
		{Type: "message", Data: fmt.Sprintf("a 3 %d", now)},
		{Type: "message", Data: fmt.Sprintf("a 2 %d", now)},
		{Type: "message", Data: fmt.Sprintf("a 3 %d", now)},
		{Type: "message", Data: fmt.Sprintf("a 5 %d", now)},
		{Type: "history-lost", Data: `{"topics":["a"]}`},
		{Type: "message", Data: fmt.Sprintf("b 0 %d", now)},
		{Type: "message", Data: "a x 1"},
		{Type: "status", Data: fmt.Sprintf("a 6 %d", now)},
	} {
		if err := tc.handle(ev); err != nil {
			t.Fatal(err)
		}
	}
	tt := tr.totals(map[string]int64{"a": 8})
	if tt.Checked != 6 || tt.Lost != 1+2 || tt.NotReached != 2 || tt.Reordered != 1 || tt.Dupes != 1 || tt.HistoryLost != 1 || tt.Unexpected != 3 {
		t.Errorf("%+v", tt)
	}
}
