package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ssegateway/ssegateway/gateway/sseclient"
)

// The soak: one gateway node and a real Redis with an append-only file,
// under many streams for a long time, with streams coming and going,
// steady publishing, and a Redis restart in the middle. Most streams are
// held by worker processes (as in idle and fanout), from several source
// addresses, and churned: every second some are disconnected and reconnect
// at once with their Last-Event-ID. A sample of tracked clients, in this
// process, are full EventSource clients that check every event of their
// topics — each topic's events are numbered by one publisher, in order,
// retried with an idempotency key through the Redis restart — for loss,
// duplicates and order, across their own reconnects. The node's memory,
// goroutines and file descriptors are sampled throughout.

// soakConfig is one soak run.
type soakConfig struct {
	gateway   string        // the gateway binary; built from ./cmd/gateway if empty
	duration  time.Duration // of the judged load, from when the node is warm
	streams   int           // held in all, the tracked ones included
	tracked   int           // tracked clients
	churn     float64       // worker streams disconnected and reconnected per second
	rate      float64       // events published per second, over all topics
	topics    int           // topics, soak-0…
	warmup    time.Duration // the least time the load runs before the node can be warm
	maxWarmup time.Duration // the most; a node not warm by then fails
	settle    time.Duration // warm needs RSS to have grown less than 1% over this long
	every     time.Duration // sampling interval
	restartAt time.Duration // Redis restart, from when the node is warm; negative: none
	redisDown time.Duration // how long Redis stays stopped in the restart
	drain     time.Duration // after publishing stops, the time tracked clients have to catch up
	sources   string        // the workers' source addresses
	perProc   int           // streams per worker process
	exe       string        // the ssebench binary for workers; this one by default
	progress  io.Writer     // progress lines
}

func cmdSoak(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ssebench soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := soakConfig{progress: stderr}
	fs.StringVar(&c.gateway, "gateway", "", "gateway binary (default: build ./cmd/gateway)")
	fs.DurationVar(&c.duration, "duration", 10*time.Minute, "how long the node is judged under the load, from when it is warm")
	fs.IntVar(&c.streams, "streams", 19000, "streams held, the tracked clients' included")
	fs.IntVar(&c.tracked, "tracked", 100, "tracked clients: full EventSource clients that check every event of their 1-3 topics")
	fs.Float64Var(&c.churn, "churn", 50, "worker streams disconnected (and reconnected at once, with their Last-Event-ID) per second; tracked clients reconnect too")
	fs.Float64Var(&c.rate, "rate", 50, "events published per second, spread over the topics")
	fs.IntVar(&c.topics, "topics", 100, "topics")
	fs.DurationVar(&c.warmup, "warmup", time.Minute, "the least time the load runs before the node is warm; warm also needs a whole GC cycle under the load (the heap has grown to its GC goal once) and RSS to have settled (see --settle)")
	fs.DurationVar(&c.maxWarmup, "max-warmup", 10*time.Minute, "the most time the node may take to be warm; a node whose RSS still grows then fails")
	fs.DurationVar(&c.settle, "settle", time.Minute, "warm needs RSS to have grown less than 1% over this long: a Go heap's RSS covers its GC sawtooth's peaks, which it meets only gradually")
	fs.DurationVar(&c.every, "sample-every", 10*time.Second, "how often the node is sampled")
	fs.DurationVar(&c.restartAt, "redis-restart-at", 0, "when Redis is restarted (it keeps its data: AOF), from when the node is warm; 0: half-way; negative: never")
	fs.DurationVar(&c.redisDown, "redis-down", 3*time.Second, "how long Redis stays stopped in its restart, as while a large one loads its data: publishes fail and are retried, the node turns unready and repairs what pub/sub missed")
	fs.DurationVar(&c.drain, "drain", time.Minute, "after publishing stops, the most the tracked clients may take to receive every event")
	fs.StringVar(&c.sources, "sources", "127.0.0.1-127.0.0.20", "the workers' local addresses: a.b.c.X-a.b.c.Y, or a comma-separated list")
	fs.IntVar(&c.perProc, "per-process", 5000, "streams per worker process (each process may hold only so many files)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.restartAt == 0 {
		c.restartAt = c.duration / 2
	}
	switch {
	case c.streams <= c.tracked || c.tracked <= 0:
		return errors.New("--streams must be more than --tracked, which must be positive")
	case c.rate <= 0 || c.topics <= 0 || c.duration <= 0 || c.every <= 0:
		return errors.New("--rate, --topics, --duration and --sample-every must be positive")
	case c.warmup > c.maxWarmup || c.settle < 0:
		return errors.New("--warmup must not be longer than --max-warmup, and --settle not negative")
	}
	r, err := runSoak(ctx, c)
	if err != nil {
		return err
	}
	r.print(stdout, c)
	if fails := r.failures(c); len(fails) > 0 {
		return fmt.Errorf("soak failed: %s", strings.Join(fails, "; "))
	}
	return nil
}

// soakSample is the node at one moment.
type soakSample struct {
	At         time.Duration // since the start of the load
	RSS        float64       // bytes
	Heap       float64       // bytes in use: anywhere between the live heap and twice it, as the GC cycles
	LiveHeap   float64       // bytes marked live by the last GC: what a leak makes grow
	Stacks     float64       // bytes of goroutine stacks
	GCs        float64       // GC cycles completed since the node started
	Goroutines float64
	FDs        float64
	Streams    float64 // open
	Opened     float64 // streams, since the node started
	Closed     float64
}

// soakResult is what a soak found.
type soakResult struct {
	Samples             []soakSample
	Start, Middle, End  soakSample // at the end of the warm-up, before the Redis restart, at the end
	LoadOpened          int64      // worker streams open at the start
	ConnectFailures     int64      // worker connects that failed
	FirstConnectErr     string
	Churned             int64 // worker streams disconnected by the churn
	WorkerEvents        int64
	Published           int64 // events, all topics
	PublishRetries      int64 // publish attempts that failed and were retried
	Tracked             trackedTotals
	RedisDown           time.Duration // from the stop to answering again
	Refusals            map[string]float64
	Closed              map[string]float64 // streams closed by reason, over the run
	HistoryLostSent     float64            // by the node, to anyone
	Repaired            float64            // events the node read from the stream that pub/sub missed
	PubSubDisconnects   float64
	MinStreams          float64
	NeverWarm           bool // by --max-warmup, no whole GC cycle ran under the load or RSS still grew
	Machine, RedisVer   string
	LoadBefore, LoadEnd string // /proc/loadavg
}

func runSoak(ctx context.Context, c soakConfig) (r soakResult, err error) {
	logf := func(format string, args ...any) {
		if c.progress != nil {
			fmt.Fprintf(c.progress, "soak: "+format+"\n", args...)
		}
	}
	r.Machine = fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	r.LoadBefore = loadavg()
	dir, err := os.MkdirTemp("", "ssebench-soak")
	if err != nil {
		return r, err
	}
	// Kept, with the node's and Redis's logs, when the run fails.
	defer func() {
		if err == nil && len(r.failures(c)) == 0 {
			os.RemoveAll(dir)
		} else {
			logf("the node's and Redis's logs are kept in %s", dir)
		}
	}()
	if c.gateway == "" {
		c.gateway = filepath.Join(dir, "gateway")
		build := exec.Command("go", "build", "-o", c.gateway, "./cmd/gateway")
		build.Stderr = c.progress
		if err := build.Run(); err != nil {
			return r, fmt.Errorf("build the gateway (run from the repository root, or pass --gateway): %w", err)
		}
	}
	rs, err := startRedisAOF(dir)
	if err != nil {
		return r, err
	}
	defer rs.stop()
	r.RedisVer = "Redis ?"
	if out, err := exec.Command("redis-server", "--version").Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if v, ok := strings.CutPrefix(f, "v="); ok {
				r.RedisVer = "Redis " + v
			}
		}
	}
	n, err := startNode(c.gateway, rs.url(), dir)
	if err != nil {
		return r, err
	}
	defer n.stop()
	t := n.target
	t.sources, t.perProc, t.exe = c.sources, c.perProc, c.exe

	topics := make([]string, c.topics)
	paths := make([]string, c.topics)
	for i := range topics {
		topics[i] = fmt.Sprintf("soak-%d", i)
		paths[i] = fmt.Sprintf(t.path, topics[i])
	}
	load := c.streams - c.tracked
	logf("opening %d streams from worker processes", load)
	ws, err := t.spawn(job{Mode: "soak", URL: t.url, Paths: paths, Churn: c.churn}, load)
	if err != nil {
		return r, err
	}
	defer ws.close()
	ready, err := ws.collect(15 * time.Minute)
	if err != nil {
		return r, err
	}
	r.LoadOpened = ready.Opened
	logf("%d worker streams open (%d connects failed %s); opening %d tracked clients", ready.Opened, ready.Failed, ready.FirstErr, c.tracked)

	trackCtx, stopTracked := context.WithCancel(ctx)
	defer stopTracked()
	tr := newTracker(t.url, topics, c.tracked)
	var trackWG sync.WaitGroup
	tr.start(trackCtx, &trackWG)
	defer trackWG.Wait()
	if err := tr.waitOpen(ctx, 5*time.Minute); err != nil {
		return r, err
	}

	// The load: publishing, churn, samples.
	logf("load: %.0f events/s over %d topics, churn %.0f/s; judged for %v once the node is warm, Redis restarted %v after that", c.rate, c.topics, c.churn, c.duration, c.restartAt)
	start := time.Now()
	pub := newSoakPublisher(t, topics, c.rate)
	pubCtx, stopPub := context.WithCancel(ctx)
	defer stopPub()
	var pubWG sync.WaitGroup
	pub.start(pubCtx, &pubWG, start)
	ws.send("go")

	sampleAt := func() soakSample {
		s := soakSample{At: time.Since(start)}
		if st, err := readProc(t.pid); err == nil {
			s.RSS = float64(st.RSS)
		}
		if page, err := metricsPage(t.metricURL); err == nil {
			s.Heap = metricIn(page, "go_memstats_heap_inuse_bytes", "")
			// The GC's next goal is the heap it marked live, grown by GOGC.
			if gogc := metricIn(page, "go_gc_gogc_percent", ""); gogc > 0 {
				s.LiveHeap = metricIn(page, "go_memstats_next_gc_bytes", "") / (1 + gogc/100)
			}
			s.Stacks = metricIn(page, "go_memstats_stack_inuse_bytes", "")
			s.GCs = metricIn(page, "go_gc_duration_seconds_count", "")
			s.Goroutines = metricIn(page, "go_goroutines", "")
			s.FDs = metricIn(page, "process_open_fds", "")
			s.Streams = metricIn(page, "ssegateway_connections_open", "")
			s.Opened = metricIn(page, "ssegateway_connections_opened_total", "")
			s.Closed = metricIn(page, "ssegateway_connections_closed_total", "")
		}
		return s
	}
	// At the start, the middle and the end the node collects its garbage
	// and its heap profile is kept: the live heap there is exact, not the
	// one the last GC marked (cycles last minutes at this load), and
	// `go tool pprof -base heap-start.pb.gz heap-end.pb.gz` shows what grew.
	marked := func(name string) soakSample {
		if err := saveHeapProfile(t.metricURL, filepath.Join(dir, "heap-"+name+".pb.gz")); err != nil {
			logf("heap profile %s: %v", name, err)
		}
		return sampleAt()
	}
	// Warm: the warm-up has passed, a whole GC cycle ran under the load
	// (the heap has grown to its goal once), and RSS grew less than 1% over
	// the last --settle: a Go heap's RSS covers the peaks of its GC
	// sawtooth, which it meets only gradually (here it rose 5% more over
	// the four minutes after the first whole cycle, with the live heap
	// flat). A node that leaks never settles, and fails at --max-warmup.
	gcs0 := sampleAt().GCs
	isWarm := func(smp soakSample) bool {
		if smp.At < c.warmup || smp.GCs < gcs0+2 {
			return false
		}
		if c.settle == 0 {
			return true
		}
		for i := len(r.Samples) - 1; i >= 0; i-- {
			if then := r.Samples[i]; smp.At-then.At >= c.settle {
				return smp.RSS < 1.01*then.RSS
			}
		}
		return false
	}
	var restart, end <-chan time.Time
	take := func() {
		smp := sampleAt()
		if r.Start.At == 0 && isWarm(smp) {
			smp = marked("start")
			r.Start = smp
			logf("warm at %v: judged from here for %v", smp.At.Round(time.Second), c.duration)
			end = time.After(c.duration)
			if c.restartAt >= 0 && c.restartAt < c.duration {
				restart = time.After(c.restartAt)
			}
		}
		r.Samples = append(r.Samples, smp)
		logf("%6v  streams %6.0f  RSS %6.1f MiB  live heap %6.1f MiB  heap in use %6.1f MiB  goroutines %6.0f  fds %6.0f",
			smp.At.Round(time.Second), smp.Streams, smp.RSS/(1<<20), smp.LiveHeap/(1<<20), smp.Heap/(1<<20), smp.Goroutines, smp.FDs)
	}
	tick := time.NewTicker(c.every)
	defer tick.Stop()
	giveUp := time.After(c.maxWarmup)
	take()
load:
	for {
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-tick.C:
			take()
		case <-giveUp:
			if r.Start.At == 0 {
				r.NeverWarm = true
				break load
			}
		case <-restart:
			restart = nil
			r.Middle = marked("middle")
			logf("restarting Redis at %v", r.Middle.At.Round(time.Second))
			down, err := rs.restart(c.redisDown)
			if err != nil {
				return r, err
			}
			r.RedisDown = down
			logf("Redis answered again after %v", down.Round(time.Millisecond))
		case <-end:
			break load
		}
	}
	r.End = marked("end")
	r.Samples = append(r.Samples, r.End)
	if r.Start.At == 0 {
		r.Start = r.Samples[0]
	}
	if r.Middle.At == 0 { // no restart: the sample nearest the judged window's middle
		mid := r.Start.At + (r.End.At-r.Start.At)/2
		for _, smp := range r.Samples {
			if (r.Middle.At == 0 || (smp.At-mid).Abs() < (r.Middle.At-mid).Abs()) && smp.At >= r.Start.At {
				r.Middle = smp
			}
		}
	}
	r.MinStreams = math.Inf(1)
	for _, s := range r.Samples {
		if s.At >= r.Start.At {
			r.MinStreams = min(r.MinStreams, s.Streams)
		}
	}

	// Wind down: publishers finish the event in hand, the churn stops, and
	// the tracked clients get the time to receive everything.
	stopPub()
	pubWG.Wait()
	ws.send("stop -1")
	res, err := ws.collect(5 * time.Minute)
	if err != nil {
		return r, err
	}
	r.ConnectFailures, r.FirstConnectErr, r.Churned, r.WorkerEvents = res.Failed, res.FirstErr, res.Churned, res.Events
	r.Published, r.PublishRetries = pub.total(), pub.retries.Load()
	pub.hc.CloseIdleConnections()
	logf("published %d events (%d retries); waiting for the tracked clients", r.Published, r.PublishRetries)
	tr.stopChurn()
	tr.waitCaughtUp(ctx, pub.counts(), c.drain)
	stopTracked()
	trackWG.Wait()
	tr.base.CloseIdleConnections()
	r.Tracked = tr.totals(pub.counts())

	page, err := metricsPage(t.metricURL)
	if err != nil {
		return r, err
	}
	r.Refusals = map[string]float64{}
	for _, l := range []string{"topics_per_stream", "topic_length", "publish_body", "event_size", "connections", "streams_per_client", "publish_rate", "body_timeout"} {
		r.Refusals[l] = metricIn(page, "ssegateway_limit_refusals_total", `limit="`+l+`"`)
	}
	r.Refusals["auth 401"] = metricIn(page, "ssegateway_auth_refused_total", `status="401"`)
	r.Refusals["auth 403"] = metricIn(page, "ssegateway_auth_refused_total", `status="403"`)
	r.Closed = map[string]float64{}
	for _, reason := range []string{"client", "slow", "shutdown", "write_error", "redis_error", "max_age", "token_expired", "limit"} {
		r.Closed[reason] = metricIn(page, "ssegateway_connections_closed_total", `reason="`+reason+`"`)
	}
	r.HistoryLostSent = metricIn(page, "ssegateway_history_lost_total", "")
	r.Repaired = metricIn(page, "ssegateway_events_repaired_total", "")
	r.PubSubDisconnects = metricIn(page, "ssegateway_pubsub_disconnects_total", "")
	r.LoadEnd = loadavg()
	return r, nil
}

// failures are the checks the run did not pass.
func (r soakResult) failures(c soakConfig) []string {
	var f []string
	tt := r.Tracked
	if tt.Lost != 0 || tt.Dupes != 0 || tt.Reordered != 0 || tt.HistoryLost != 0 || tt.Unexpected != 0 || tt.Errors != 0 {
		f = append(f, fmt.Sprintf("tracked clients: %d lost, %d duplicated, %d reordered, %d history-lost, %d unexpected, %d errors (%s)",
			tt.Lost, tt.Dupes, tt.Reordered, tt.HistoryLost, tt.Unexpected, tt.Errors, tt.FirstErr))
	}
	if tt.Checked == 0 {
		f = append(f, "the tracked clients checked no events")
	}
	if r.NeverWarm {
		f = append(f, fmt.Sprintf("the node was not warm after %v: no whole GC cycle ran under the load, or its RSS still grew by 1%% or more in %v", c.maxWarmup, c.settle))
	}
	for _, d := range r.drifts() {
		switch {
		case d.judge == fromStart && math.Abs(d.end) > 0.05:
			f = append(f, fmt.Sprintf("%s moved %+.1f%% from the end of the warm-up to the end", d.name, 100*d.end))
		case d.judge == fromMiddle && math.Abs(d.half) > 0.05:
			f = append(f, fmt.Sprintf("%s moved %+.1f%% from the middle to the end", d.name, 100*d.half))
		}
	}
	if r.MinStreams < 0.98*float64(c.streams) {
		f = append(f, fmt.Sprintf("as few as %.0f streams open after the warm-up, of %d", r.MinStreams, c.streams))
	}
	if cps, dps := r.churnRates(); cps < c.churn || dps < c.churn {
		f = append(f, fmt.Sprintf("churn %.1f connects and %.1f disconnects per second, under %.0f", cps, dps, c.churn))
	}
	return f
}

type drift struct {
	name     string
	end, max float64 // end/start - 1; the largest |sample/start - 1| after the warm-up
	half     float64 // end/middle - 1
	judge    judgement
}

// judgement is which span a figure must be flat over (within 5%).
type judgement int

const (
	shown      judgement = iota // not judged
	fromStart                   // warm to end
	fromMiddle                  // the second half, the Redis restart in it
)

func (r soakResult) drifts() []drift {
	var out []drift
	for _, m := range []struct {
		name  string
		get   func(soakSample) float64
		judge judgement
	}{
		// RSS is judged over the second half: a Go heap's RSS covers the
		// peaks of its GC sawtooth, which it meets only gradually (the
		// runs of RELIABILITY.md: +5% over the minutes after warm, the
		// live heap flat within 1%), while a leak grows in every half. The
		// live heap, measured after a forced GC, is judged from warm.
		{"RSS", func(s soakSample) float64 { return s.RSS }, fromMiddle},
		{"live heap (at the last GC)", func(s soakSample) float64 { return s.LiveHeap }, fromStart},
		{"heap in use (GC sawtooth)", func(s soakSample) float64 { return s.Heap }, shown},
		{"goroutine stacks", func(s soakSample) float64 { return s.Stacks }, shown},
		{"goroutines", func(s soakSample) float64 { return s.Goroutines }, fromStart},
		{"open fds", func(s soakSample) float64 { return s.FDs }, fromStart},
	} {
		base := m.get(r.Start)
		if base <= 0 {
			continue
		}
		d := drift{name: m.name, end: m.get(r.End)/base - 1, judge: m.judge}
		if mid := m.get(r.Middle); mid > 0 {
			d.half = m.get(r.End)/mid - 1
		}
		for _, s := range r.Samples {
			if s.At >= r.Start.At {
				d.max = max(d.max, math.Abs(m.get(s)/base-1))
			}
		}
		out = append(out, d)
	}
	return out
}

// churnRates are the streams opened and closed per second from the end of
// the warm-up to the end.
func (r soakResult) churnRates() (connects, disconnects float64) {
	secs := (r.End.At - r.Start.At).Seconds()
	if secs <= 0 {
		return 0, 0
	}
	return (r.End.Opened - r.Start.Opened) / secs, (r.End.Closed - r.Start.Closed) / secs
}

func (r soakResult) print(w io.Writer, c soakConfig) {
	mib := func(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }
	num := func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
	fmt.Fprintf(w, "\nssebench soak — %s; %s; %s\n\n", r.Machine, r.RedisVer, time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "%d streams (%d tracked) from %s, %.0f events/s over %d topics, churn %.0f/s, judged for %v once warm; Redis (AOF, appendfsync everysec) restarted at %v; load average %s before, %s at the end\n\n",
		c.streams, c.tracked, c.sources, c.rate, c.topics, c.churn, (r.End.At - r.Start.At).Round(time.Second), r.Middle.At.Round(time.Second), r.LoadBefore, r.LoadEnd)
	restartNote := ", before the Redis restart"
	if r.RedisDown == 0 {
		restartNote = ""
	}
	fmt.Fprintf(w, "| node | start (%v, warm: a whole GC cycle under the load, RSS settled) | middle (%v%s) | end (%v) | end vs start | end vs middle | largest deviation after warm-up |\n|---|---|---|---|---|---|---|\n",
		r.Start.At.Round(time.Second), r.Middle.At.Round(time.Second), restartNote, r.End.At.Round(time.Second))
	ds := map[string]drift{}
	for _, d := range r.drifts() {
		ds[d.name] = d
	}
	row := func(name string, f func(soakSample) float64, format func(float64) string) {
		d := ds[name]
		fmt.Fprintf(w, "| %s | %s | %s | %s | %+.1f%% | %+.1f%% | %.1f%% |\n", name, format(f(r.Start)), format(f(r.Middle)), format(f(r.End)), 100*d.end, 100*d.half, 100*d.max)
	}
	row("RSS", func(s soakSample) float64 { return s.RSS }, mib)
	row("live heap (at the last GC)", func(s soakSample) float64 { return s.LiveHeap }, mib)
	row("heap in use (GC sawtooth)", func(s soakSample) float64 { return s.Heap }, mib)
	row("goroutine stacks", func(s soakSample) float64 { return s.Stacks }, mib)
	row("goroutines", func(s soakSample) float64 { return s.Goroutines }, num)
	row("open fds", func(s soakSample) float64 { return s.FDs }, num)
	fmt.Fprintf(w, "| streams open | %s | %s | %s | | | fewest after warm-up: %s |\n\n", num(r.Start.Streams), num(r.Middle.Streams), num(r.End.Streams), num(r.MinStreams))
	cps, dps := r.churnRates()
	tt := r.Tracked
	fmt.Fprintf(w, "| | |\n|---|---|\n")
	fmt.Fprintf(w, "| churn after warm-up | %.1f streams opened/s, %.1f closed/s (workers disconnected %d; tracked clients reconnected %d times) |\n", cps, dps, r.Churned, tt.Reconnects)
	fmt.Fprintf(w, "| published | %d events, each exactly once (%d attempts failed while Redis was away and were retried with their idempotency key) |\n", r.Published, r.PublishRetries)
	fmt.Fprintf(w, "| Redis restart | away %v: SIGTERM, stopped for %v, started again on its AOF |\n", r.RedisDown.Round(time.Millisecond), c.redisDown)
	fmt.Fprintf(w, "| tracked clients (%d, 1-3 topics each) | %d events checked: %d lost, %d duplicated, %d reordered, %d history-lost, %d unexpected; delivery p50 %s, p99 %s (reconnect replays included) |\n",
		tt.Clients, tt.Checked, tt.Lost, tt.Dupes, tt.Reordered, tt.HistoryLost, tt.Unexpected, ms(tt.Latency.quantile(0.5)), ms(tt.Latency.quantile(0.99)))
	fmt.Fprintf(w, "| node, whole run | history-lost sent %s, events repaired from the stream %s, pub/sub disconnects %s |\n", num(r.HistoryLostSent), num(r.Repaired), num(r.PubSubDisconnects))
	var refusals, closed []string
	for _, k := range sortedKeys(r.Refusals) {
		refusals = append(refusals, fmt.Sprintf("%s %s", k, num(r.Refusals[k])))
	}
	for _, k := range sortedKeys(r.Closed) {
		closed = append(closed, fmt.Sprintf("%s %s", k, num(r.Closed[k])))
	}
	fmt.Fprintf(w, "| refusals | worker connects failed %d %s; node: %s |\n", r.ConnectFailures, r.FirstConnectErr, strings.Join(refusals, ", "))
	fmt.Fprintf(w, "| streams closed, by reason | %s |\n", strings.Join(closed, ", "))
	if fails := r.failures(c); len(fails) > 0 {
		fmt.Fprintf(w, "\nFAILED: %s\n", strings.Join(fails, "; "))
	} else {
		fmt.Fprintf(w, "\nAll checks passed: no loss, duplicate or reordering for the tracked clients; live heap, goroutines and fds within 5%% of the warm figures at the end, and RSS within 5%% of the middle's (heap in use and stacks are shown, not judged: sampled anywhere in a GC cycle the heap swings between the live heap and twice it, and stacks grow and shrink with what the goroutines are doing). Warm: %v into the load, after a whole GC cycle under it and with RSS grown less than 1%% over the %v before; the live heap at start, middle and end is measured right after a GC the soak asks for.\n", r.Start.At.Round(time.Second), c.settle)
	}
}

// saveHeapProfile has the node collect its garbage and writes its heap
// profile to path.
func saveHeapProfile(metricURL, path string) error {
	u, err := url.Parse(metricURL)
	if err != nil {
		return err
	}
	u.Path, u.RawQuery = "/debug/pprof/heap", "gc=1"
	c := http.Client{Timeout: time.Minute}
	res, err := c.Get(u.String())
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", u, res.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func sortedKeys(m map[string]float64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks { // few keys
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// redisAOF is a redis-server with an append-only file, restartable on
// its port and directory.
type redisAOF struct {
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

func startRedisAOF(dir string) (*redisAOF, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	rs := &redisAOF{dir: filepath.Join(dir, "redis"), port: port}
	if err := os.MkdirAll(rs.dir, 0o755); err != nil {
		return nil, err
	}
	return rs, rs.launch()
}

func (rs *redisAOF) url() string { return fmt.Sprintf("redis://127.0.0.1:%d", rs.port) }

func (rs *redisAOF) launch() error {
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(rs.port), "--bind", "127.0.0.1", "--dir", rs.dir,
		"--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--maxclients", "10000",
		"--logfile", filepath.Join(rs.dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server (install it, or run make deps): %w", err)
	}
	rs.cmd, rs.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(rs.done)
	return waitTCP(fmt.Sprintf("127.0.0.1:%d", rs.port))
}

// restart stops Redis cleanly (SIGTERM: it writes out its AOF), leaves it
// stopped for down, and starts it again; it returns how long Redis was
// away.
func (rs *redisAOF) restart(down time.Duration) (time.Duration, error) {
	t0 := time.Now()
	_ = rs.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-rs.done:
	case <-time.After(30 * time.Second):
		return 0, errors.New("redis-server did not stop within 30s of SIGTERM")
	}
	time.Sleep(down)
	if err := rs.launch(); err != nil {
		return 0, err
	}
	// Answering PING means the AOF is loaded.
	for !redisPong(rs.port) {
		if time.Since(t0) > time.Minute {
			return 0, errors.New("redis-server did not answer PING within a minute of its restart")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(t0), nil
}

func (rs *redisAOF) stop() {
	if rs.cmd == nil {
		return
	}
	_ = rs.cmd.Process.Kill()
	<-rs.done
}

// redisPong sends a raw PING; Redis answers LOADING until its data is in.
func redisPong(port int) bool {
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 2*time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	b := make([]byte, 64)
	n, err := conn.Read(b)
	return err == nil && bytes.HasPrefix(b[:n], []byte("+PONG"))
}

// soakPublisher publishes each topic's events, numbered from 0, one after
// another: the next only once the last one has an id, retried through
// failures with its idempotency key, so that each number is published
// exactly once and in order.
type soakPublisher struct {
	t       *target
	hc      *http.Client
	topics  []string
	period  time.Duration // per topic
	run     string        // makes idempotency keys unique to the run
	done    []atomic.Int64
	retries atomic.Int64
}

func newSoakPublisher(t *target, topics []string, rate float64) *soakPublisher {
	tr := &http.Transport{MaxIdleConnsPerHost: 16, MaxConnsPerHost: 16}
	return &soakPublisher{t: t, hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}, topics: topics,
		period: time.Duration(float64(len(topics)) / rate * float64(time.Second)),
		run:    strconv.FormatInt(time.Now().UnixNano(), 36), done: make([]atomic.Int64, len(topics))}
}

// start runs one publisher per topic until ctx ends; each finishes the
// event in hand first.
func (p *soakPublisher) start(ctx context.Context, wg *sync.WaitGroup, t0 time.Time) {
	for k, topic := range p.topics {
		offset := time.Duration(k) * p.period / time.Duration(len(p.topics))
		wg.Go(func() {
			for seq := int64(0); ; seq++ {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Until(t0.Add(offset + time.Duration(seq)*p.period))):
				}
				p.publish(topic, seq)
				p.done[k].Store(seq + 1)
			}
		})
	}
}

// publish posts one event until it has an id (for at most 5 minutes).
func (p *soakPublisher) publish(topic string, seq int64) {
	body := fmt.Sprintf(`{"topic":%q,"data":"%s %d %d"}`, topic, topic, seq, time.Now().UnixNano())
	key := fmt.Sprintf("soak-%s-%s-%d", p.run, topic, seq)
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodPost, p.t.publishURL(), strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		res, err := p.hc.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		p.retries.Add(1)
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *soakPublisher) counts() map[string]int64 {
	m := make(map[string]int64, len(p.topics))
	for k, t := range p.topics {
		m[t] = p.done[k].Load()
	}
	return m
}

func (p *soakPublisher) total() int64 {
	var n int64
	for k := range p.done {
		n += p.done[k].Load()
	}
	return n
}

// tracker runs the tracked clients.
type tracker struct {
	url     string
	clients []*trackedClient
	churn   chan struct{} // closed: the tracked clients stop reconnecting on their own
	base    *http.Transport
}

// trackedClient is an EventSource on 1-3 topics that checks every event.
type trackedClient struct {
	topics []string
	es     *sseclient.Client
	opened chan struct{} // closed at the first checkpoint
	once   sync.Once     // closes opened

	mu         sync.Mutex
	next       map[string]int64          // per topic, the number expected next
	seen       map[string]map[int64]bool // per topic, the numbers received
	checked    int64
	lost       int64 // gaps: numbers skipped (an event arriving late takes itself back off)
	dupes      int64
	reordered  int64
	histLost   int64
	unexpected int64
	reconnects int64
	err        error
	lat        *hist
}

func newTracker(base string, topics []string, n int) *tracker {
	tr := &tracker{url: base, churn: make(chan struct{}), base: &http.Transport{MaxIdleConnsPerHost: 4}}
	for i := range n {
		k := 1 + i%3
		perm := rand.Perm(len(topics))
		var ts []string
		for _, j := range perm[:min(k, len(topics))] {
			ts = append(ts, topics[j])
		}
		tc := &trackedClient{topics: ts, opened: make(chan struct{}), next: map[string]int64{}, seen: map[string]map[int64]bool{}, lat: newHist()}
		for _, t := range ts {
			tc.seen[t] = map[int64]bool{}
		}
		tc.es = &sseclient.Client{URL: eventsURL(base, ts), Retry: time.Second,
			HTTP: &http.Client{Transport: checkpointTransport{base: tr.base, seen: func() { tc.once.Do(func() { close(tc.opened) }) }}}}
		tr.clients = append(tr.clients, tc)
	}
	return tr
}

func eventsURL(base string, topics []string) string {
	var q []string
	for _, t := range topics {
		q = append(q, "topic="+t)
	}
	return base + "/events?" + strings.Join(q, "&")
}

// start runs every tracked client until ctx ends.
func (tr *tracker) start(ctx context.Context, wg *sync.WaitGroup) {
	for _, tc := range tr.clients {
		wg.Go(func() { tc.run(ctx, tr.churn) })
	}
}

// run holds the client's stream until ctx ends. Until churn closes, it
// also drops it now and then and reconnects at once with its last event
// id, as a page that reloads would.
func (tc *trackedClient) run(ctx context.Context, churn <-chan struct{}) {
	defer func() {
		select {
		case <-tc.opened:
		default: // do not hold up waitOpen
			tc.fail(errors.New("ended before its first checkpoint"))
			tc.once.Do(func() { close(tc.opened) })
		}
	}()
	for {
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- tc.es.Run(cctx, tc.handle) }()
		var again <-chan time.Time
		select {
		case <-churn:
		default:
			again = time.After(5*time.Second + rand.N(20*time.Second))
		}
		reconnect, ended := false, false
		var err error
	wait:
		for {
			select {
			case <-again:
				reconnect = true
				break wait
			case <-churn:
				again, churn = nil, nil // hold this stream to the end
			case <-ctx.Done():
				break wait
			case err = <-done:
				ended = true
				break wait
			}
		}
		cancel()
		if !ended {
			err = <-done
		}
		tc.fail(err)
		if !reconnect || ended {
			if ended && err == nil && ctx.Err() == nil {
				tc.fail(errors.New("the stream ended for good"))
			}
			return
		}
		tc.mu.Lock()
		tc.reconnects++
		tc.mu.Unlock()
	}
}

func (tc *trackedClient) fail(err error) {
	if err == nil {
		return
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.err == nil {
		tc.err = err
	}
}

// handle checks one event: "<topic> <n> <unix nanoseconds>".
func (tc *trackedClient) handle(ev sseclient.Event) error {
	now := time.Now()
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if ev.Type == "history-lost" {
		tc.histLost++
		return nil
	}
	f := strings.Fields(ev.Data)
	if ev.Type != "message" || len(f) != 3 || tc.seen[f[0]] == nil {
		tc.unexpected++
		return nil
	}
	topic, seen := f[0], tc.seen[f[0]]
	seq, err1 := strconv.ParseInt(f[1], 10, 64)
	ns, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil {
		tc.unexpected++
		return nil
	}
	tc.checked++
	tc.lat.add(now.Sub(time.Unix(0, ns)))
	switch e := tc.next[topic]; {
	case seq == e:
		tc.next[topic] = seq + 1
	case seq > e:
		tc.lost += seq - e
		tc.next[topic] = seq + 1
	case seen[seq]:
		tc.dupes++
	default:
		tc.reordered++
		tc.lost--
	}
	seen[seq] = true
	return nil
}

// waitOpen waits for every tracked client's first checkpoint: from then on
// each receives every event published.
func (tr *tracker) waitOpen(ctx context.Context, limit time.Duration) error {
	deadline := time.After(limit)
	for i, tc := range tr.clients {
		select {
		case <-tc.opened:
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("tracked client %d did not open within %v", i, limit)
		}
	}
	return nil
}

func (tr *tracker) stopChurn() { close(tr.churn) }

// waitCaughtUp waits until every tracked client has every event published
// on its topics, or for at most limit.
func (tr *tracker) waitCaughtUp(ctx context.Context, published map[string]int64, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		behind := false
		for _, tc := range tr.clients {
			tc.mu.Lock()
			for _, t := range tc.topics {
				if tc.next[t] < published[t] {
					behind = true
				}
			}
			tc.mu.Unlock()
		}
		if !behind {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// trackedTotals add up the tracked clients.
type trackedTotals struct {
	Clients                             int
	Checked, Lost, Dupes, Reordered     int64
	HistoryLost, Unexpected, Reconnects int64
	NotReached                          int64 // of Lost: published after the last event a client received
	Errors                              int64
	FirstErr                            string
	Latency                             *hist
}

func (tr *tracker) totals(published map[string]int64) trackedTotals {
	tt := trackedTotals{Clients: len(tr.clients), Latency: newHist()}
	for _, tc := range tr.clients {
		tc.mu.Lock()
		tt.Checked += tc.checked
		tt.Lost += tc.lost
		tt.Dupes += tc.dupes
		tt.Reordered += tc.reordered
		tt.HistoryLost += tc.histLost
		tt.Unexpected += tc.unexpected
		tt.Reconnects += tc.reconnects
		for _, t := range tc.topics {
			if tail := published[t] - tc.next[t]; tail > 0 {
				tt.Lost += tail
				tt.NotReached += tail
			}
		}
		if tc.err != nil {
			tt.Errors++
			if tt.FirstErr == "" {
				tt.FirstErr = tc.err.Error()
			}
		}
		tt.Latency.merge(tc.lat)
		tc.mu.Unlock()
	}
	return tt
}

// checkpointTransport calls seen once a response's body has shown its
// first id: line, the checkpoint that ends a stream's setup.
type checkpointTransport struct {
	base http.RoundTripper
	seen func()
}

func (t checkpointTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := t.base.RoundTrip(req)
	if err == nil {
		res.Body = &checkpointBody{ReadCloser: res.Body, seen: t.seen}
	}
	return res, err
}

type checkpointBody struct {
	io.ReadCloser
	seen func()
	tail []byte
}

func (b *checkpointBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.seen != nil {
		b.tail = append(b.tail, p[:n]...)
		if bytes.HasPrefix(b.tail, []byte("id: ")) || bytes.Contains(b.tail, []byte("\nid: ")) {
			b.seen()
			b.seen, b.tail = nil, nil
		}
	}
	return n, err
}
