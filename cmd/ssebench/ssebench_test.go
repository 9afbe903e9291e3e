package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
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
	self, gw := build(t, ".", "ssebench"), build(t, "../gateway", "gateway")
	port, admin := redistest.FreePort(t), redistest.FreePort(t)
	cmd := exec.Command(gw, "--addr", fmt.Sprintf("127.0.0.1:%d", port), "--admin-addr", fmt.Sprintf("127.0.0.1:%d", admin),
		"--log-level", "warn", "--log-format", "json", "--mercure-publisher-jwt-key", mercureBenchKey, "--mercure-anonymous")
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

	idle, err := doIdle(tg, 100, "idle", false, 200*time.Millisecond)
	if err != nil || idle.Conns != 100 || idle.Failed != 0 || idle.PerConn <= 0 {
		t.Errorf("idle: %+v %v", idle, err)
	}

	// 100 subscribers over three worker processes, 4 publishers; on a
	// topic, and on a pattern whose events go to 7 topics.
	checkFanout(t, "gateway", tg, "fan", nil)
	checkFanout(t, "gateway", tg, "fanp/*", spread(t, "fanp/*", 7))
	// The same on the Mercure endpoint: form publishing with a token.
	mt := *tg
	if err := mt.mercure(mercureBenchKey); err != nil {
		t.Fatal(err)
	}
	checkFanout(t, "gateway's Mercure endpoint", &mt, "https://example.com/fan", nil)

	s, err := doStorm(ctx, tg, 50, 200, 64, "storm", nil)
	if err != nil || s.Done != 50 || s.Lost != 0 || s.Dupes != 0 || s.Max <= 0 || s.OwnReads < 1 {
		t.Errorf("storm: %+v %v", s, err)
	}
	// Resuming a pattern replays the feed, filtered: every event of its
	// topics once, in each publisher's order.
	s, err = doStorm(ctx, tg, 20, 300, 64, "stormp/*", spread(t, "stormp/*", 5))
	if err != nil || s.Done != 20 || s.Lost != 0 || s.Dupes != 0 || s.Max <= 0 {
		t.Errorf("storm on a pattern: %+v %v", s, err)
	}

	for _, format := range []string{"pub-%d", "pub/%d"} {
		p := doPublishHTTP(ctx, tg, 4, 300*time.Millisecond, 64, 10, format)
		if p.N == 0 || p.Errors != 0 {
			t.Errorf("publish %s: %+v", format, p)
		}
		g, err := doPublishRedis(ctx, redistest.Start(t).URL(), 2, 300*time.Millisecond, 64, 10, 16, format)
		if err != nil || g.N == 0 || g.N%16 != 0 || g.Errors != 0 {
			t.Errorf("publish %s to Redis: %+v %v", format, g, err)
		}
	}
}

// TestFloorServer runs the idle and fan-out scenarios, on a topic and on a
// pattern, against the floor server in a process of its own, as the suite
// does; then stops it with SIGTERM.
func TestFloorServer(t *testing.T) {
	self := build(t, ".", "ssebench")
	f, err := startFloor(self, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			f.stop()
		}
	})
	tg := f.target
	tg.sources, tg.perProc = "127.0.0.1-127.0.0.4", 40

	idle, err := doIdle(tg, 100, "idle", false, 200*time.Millisecond)
	if err != nil || idle.Conns != 100 || idle.Failed != 0 || idle.PerConn <= 0 {
		t.Errorf("idle: %+v %v", idle, err)
	}
	checkFanout(t, "floor", tg, "fan", nil)
	checkFanout(t, "floor", tg, "fanp/*", spread(t, "fanp/*", 7))

	// Bad requests get a status, not a hang.
	for _, c := range []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/events", "", http.StatusBadRequest},
		{"GET", "/events?topic=a%20b", "", http.StatusBadRequest},
		{"POST", "/publish", `{"topic":"a"}`, http.StatusBadRequest},
		{"POST", "/publish", `{"topic":"a/*","data":"x"}`, http.StatusBadRequest},
		{"POST", "/publish", `not json`, http.StatusBadRequest},
		{"POST", "/publish", `{"topic":"a","data":{"k":1}}`, http.StatusOK},
	} {
		req, _ := http.NewRequest(c.method, tg.url+c.path, strings.NewReader(c.body))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != c.want {
			t.Errorf("%s %s %s: %s, want %d", c.method, c.path, c.body, res.Status, c.want)
		}
	}

	f.stop()
	stopped = true
	if code := f.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("floor-server exited with %d after SIGTERM", code)
	}
}

// checkFanout runs a small fan-out (100 subscribers over three worker
// processes, 4 publishers) and checks that every figure adds up.
func checkFanout(t *testing.T, name string, tg *target, topic string, spread []string) {
	t.Helper()
	f, err := doFanout(context.Background(), tg, 100, 100, time.Second, 64, topic, spread, 4, time.Second)
	if err != nil || f.Opened != 100 || f.Published != 100 || f.Expected != 10000 || f.Received != 10000 ||
		f.Lost != 0 || f.Gaps != 0 || f.Tail != 0 || f.Dupes != 0 || f.P99 <= 0 || f.CPU <= 0 {
		t.Errorf("%s: fanout on %s: %+v %v", name, topic, f, err)
	}
}

func spread(t *testing.T, pattern string, n int) []string {
	t.Helper()
	s, err := spreadTopics(pattern, n)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// build builds the package at pkg (relative to this one) into the test's
// temporary directory and returns the binary's path.
func build(t *testing.T, pkg, name string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// TestSuite runs the suite, tiny, with the floor, the pattern and the
// Mercure rows: it prints the ratios table and leaves no process behind.
func TestSuite(t *testing.T) {
	self, gw := build(t, ".", "ssebench"), build(t, "../gateway", "gateway")
	var out, errs strings.Builder
	err := run(context.Background(), []string{"suite", "--gateway", gw, "--ssebench", self, "--only", "idle,b",
		"--scale", "0.1", "--clients", "0.05", "--idle-conns", "2000", "--drain", "1s", "--spread", "5"}, nil, &out, &errs)
	if err != nil {
		t.Fatalf("suite: %v\n%s", err, errs.String())
	}
	for _, want := range []string{
		"| RSS per idle stream, 100 streams, one topic | server RSS per stream |",
		"| RSS per idle stream, 100 streams, each on its own topic | server RSS per stream |",
		"| ssegateway: (b) 50 subs × 200 msg/s on /.well-known/mercure | ",
		"| (b) 50 subs × 200 msg/s | server CPU |",
		"| (b) 50 subs × 200 msg/s | server CPU + Redis CPU |",
		"| (b) 50 subs × 200 msg/s on bench/* (5 topics) | p99 latency |",
		"| floor: (b) 50 subs × 200 msg/s on bench/* (5 topics) | ",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "deliveries lost, duplicated") {
		t.Errorf("loss reported:\n%s", out.String())
	}
	if kids := children(t); len(kids) > 0 {
		t.Errorf("processes left behind: %v", kids)
	}
}

// children lists this process's live child processes.
func children(t *testing.T) []string {
	t.Helper()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []string
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 2 && f[1] != "Z" && f[2] == strconv.Itoa(os.Getpid()) {
			out = append(out, string(b[:i+1]))
		}
	}
	return out
}

func TestSuite_badFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--only", "b,x"},
		{"--scale", "0"},
		{"--clients", "-1"},
		{"--spread", "0"},
		{"--drain", "0s"},
		{"extra"},
	} {
		var errs strings.Builder
		err := run(context.Background(), append([]string{"suite"}, args...), nil, io.Discard, &errs)
		if err == nil {
			t.Errorf("suite %q: no error", args)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"fanout", "--topic", "a/*/b"}, "prefix/*"},
		{[]string{"fanout", "--topic", "plain", "--spread", "5"}, "needs a pattern"},
		{[]string{"fanout", "--subs", "0"}, "--subs must be positive"},
		{[]string{"storm", "--topic", "*"}, "prefix/*"},
		{[]string{"publish", "--topic-format", "pub"}, "--topic-format"},
		{[]string{"publish", "--topic-format", "pub-%s"}, "--topic-format"},
		{[]string{"floor-server", "--write-timeout", "0s"}, "--write-timeout"},
		{[]string{"floor-server", "x"}, "unexpected"},
		{[]string{"nope"}, "unknown mode"},
	} {
		err := run(context.Background(), c.args, nil, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error with %q", c.args, err, c.want)
		}
	}
}

func TestUnwrapNamed(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{`{"topic":"a/1","data":"0 3 17 xx"}`, "0 3 17 xx", true},
		{`{"topic":"a/1","data":"q\"uote\\n"}`, "q\"uote\\n", true},
		{`{"topic":"a/1","data":"line\nbreak"}`, "line\nbreak", true},
		{`{"data":"x","topic":"a/1"}`, "x", true},
		{`{"topics":["a/*"],"reason":"trimmed"}`, "", false},
		{`0 3 17`, "", false},
	} {
		got, ok := unwrapNamed([]byte(c.in))
		if ok != c.ok || string(got) != c.want {
			t.Errorf("%s: %q %v, want %q %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// TestWorker_namedEvents: a pattern stream's events are unwrapped before
// they are counted, per publisher, whatever topic each went to; a
// history-lost event is counted as such.
func TestWorker_namedEvents(t *testing.T) {
	w := &worker{job: job{Mode: "fanout", Publishers: 1, Named: true}, lat: newHist()}
	c := &client{}
	w.clients = []*client{c}
	var stream strings.Builder
	for i, seq := range []int{0, 1, 3} {
		fmt.Fprintf(&stream, "id: %d\ndata: {\"topic\":\"b/%d\",\"data\":\"0 %d %d pad\"}\n\n", i, i, seq, time.Now().UnixNano())
	}
	stream.WriteString("event: history-lost\ndata: {\"topics\":[\"b/*\"],\"reason\":\"trimmed\"}\n\n")
	w.read(c, bufio.NewReader(strings.NewReader(stream.String())), time.Now())
	if w.events.Load() != 3 || w.lost.Load() != 1 || w.dupes.Load() != 0 || w.historyLost.Load() != 1 || c.lastID != "2" {
		t.Errorf("events %d lost %d dupes %d history-lost %d last id %q", w.events.Load(), w.lost.Load(), w.dupes.Load(), w.historyLost.Load(), c.lastID)
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
		warmup: 3 * time.Second, maxWarmup: time.Minute, settle: 4 * time.Second, every: 2 * time.Second, restartAt: 5 * time.Second, redisDown: time.Second, drain: 30 * time.Second,
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
	if r.Start.At < c.warmup || r.Middle.At < r.Start.At+c.restartAt || r.End.At < r.Start.At+c.duration || r.End.Streams != 240 || r.End.FDs < 240 {
		t.Errorf("samples: start %+v, middle %+v, end %+v", r.Start, r.Middle, r.End)
	}
	if r.NeverWarm || r.Start.GCs < 2 || r.Start.Stacks <= 0 || r.End.LiveHeap <= 0 {
		t.Errorf("warm: never %v, start %+v, end %+v", r.NeverWarm, r.Start, r.End)
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

// TestSoak_judgement: the live heap, goroutines and fds must stay within 5%
// of the warm figures; RSS within 5% over the second half, where its climb
// to the GC sawtooth's peaks is over and the Redis restart happened.
func TestSoak_judgement(t *testing.T) {
	c := soakConfig{streams: 100, churn: 1}
	sample := func(at time.Duration, rss, live, goroutines float64) soakSample {
		return soakSample{At: at, RSS: rss, LiveHeap: live, Heap: 2 * live, Stacks: 1, Goroutines: goroutines, FDs: 100,
			Streams: 100, Opened: at.Seconds() * 2, Closed: at.Seconds() * 2}
	}
	for _, tc := range []struct {
		name     string
		mid, end soakSample
		wantFail string
	}{
		{"flat", sample(5*time.Minute, 100, 50, 100), sample(10*time.Minute, 101, 50.5, 101), ""},
		{"RSS climbs to its plateau in the first half", sample(5*time.Minute, 108, 50, 100), sample(10*time.Minute, 110, 50.5, 100), ""},
		{"RSS grows in the second half", sample(5*time.Minute, 103, 50, 100), sample(10*time.Minute, 110, 50.5, 100), "RSS moved +6.8% from the middle"},
		{"live heap grows", sample(5*time.Minute, 100, 51, 100), sample(10*time.Minute, 100, 53, 100), "live heap (at the last GC) moved +6.0% from the end of the warm-up"},
		{"goroutines grow", sample(5*time.Minute, 100, 50, 103), sample(10*time.Minute, 100, 50, 106), "goroutines moved +6.0%"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := sample(time.Minute, 100, 50, 100)
			r := soakResult{Start: start, Middle: tc.mid, End: tc.end, Samples: []soakSample{start, tc.mid, tc.end},
				MinStreams: 100, Tracked: trackedTotals{Checked: 1}}
			got := strings.Join(r.failures(c), "; ")
			if tc.wantFail == "" && got != "" || tc.wantFail != "" && !strings.Contains(got, tc.wantFail) {
				t.Errorf("failures %q, want %q", got, tc.wantFail)
			}
		})
	}
}
