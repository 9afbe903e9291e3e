package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// suiteScenarios are the names --only takes, in the order they run.
var suiteScenarios = []string{"idle", "b", "c", "d", "e", "publish", "replay", "storm"}

// suiteConfig is the suite's flags.
type suiteConfig struct {
	gateway, exe string
	only         map[string]bool // empty: all
	idleConns    int
	scale        float64 // durations
	clients      float64 // subscriber and client counts
	drain        time.Duration
	floor        bool // compare idle, b, c, d with the floor server
	patterns     bool // b, c, d, publish and replay on a pattern too
	mercure      bool // b, c and d on the Mercure endpoint too
	spread       int  // topics a pattern's events go to
}

func (c *suiteConfig) parse(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("ssebench suite", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.gateway, "gateway", "", "gateway binary (default: build ./cmd/gateway)")
	fs.StringVar(&c.exe, "ssebench", "", "ssebench binary that runs the workers and the floor server (default: this one)")
	only := fs.String("only", "", "run only these scenarios, comma-separated: "+strings.Join(suiteScenarios, ", "))
	fs.IntVar(&c.idleConns, "idle-conns", 10000, "streams in the idle scenario (before --clients)")
	fs.Float64Var(&c.scale, "scale", 1, "multiply scenario durations (0.2 for a quick look)")
	fs.Float64Var(&c.clients, "clients", 1, "multiply subscriber and client counts (0.1 for a small machine)")
	fs.DurationVar(&c.drain, "drain", 5*time.Second, "wait after publishing before counting, in b, c and d")
	fs.BoolVar(&c.floor, "floor", true, "also run idle, b, c and d against the floor server (ssebench floor-server) and report gateway / floor ratios")
	fs.BoolVar(&c.patterns, "patterns", true, "also run b, c, d, publish and replay on a pattern subscription (bench/*) beside the plain topic")
	fs.BoolVar(&c.mercure, "mercure", true, "also run b, c and d on the Mercure endpoint (/.well-known/mercure) beside /events")
	fs.IntVar(&c.spread, "spread", defaultSpread, "topics under bench/ that the pattern scenarios' events are spread over")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("suite: unexpected arguments %q", fs.Args())
	}
	c.only = map[string]bool{}
	if *only != "" {
		for _, s := range strings.Split(*only, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains(suiteScenarios, s) {
				return fmt.Errorf("suite: --only: unknown scenario %q (want some of %s)", s, strings.Join(suiteScenarios, ", "))
			}
			c.only[s] = true
		}
	}
	return positive(map[string]float64{"--idle-conns": float64(c.idleConns), "--scale": c.scale, "--clients": c.clients,
		"--drain": c.drain.Seconds(), "--spread": float64(c.spread)})
}

// spreadOf returns the topics a subscription's events are published to
// (see spreadTopics): none for a topic, --spread of them for a pattern.
func (c *suiteConfig) spreadOf(topic string) ([]string, error) {
	if !isPattern(topic) {
		return nil, nil
	}
	return spreadTopics(topic, c.spread)
}

func (c *suiteConfig) want(s string) bool { return len(c.only) == 0 || c.only[s] }

// n scales a client count, keeping at least one.
func (c *suiteConfig) n(count int) int { return max(1, int(float64(count)*c.clients+0.5)) }

// d scales a duration given in seconds.
func (c *suiteConfig) d(s float64) time.Duration {
	return time.Duration(s * c.scale * float64(time.Second))
}

// comparison is one scenario measured on the gateway and on the floor.
type comparison struct {
	label    string
	idle     [2]*idleResult   // gateway, floor
	fanout   [2]*fanoutResult // gateway, floor
	withFeed bool             // the gateway's events also went through a feed
}

// mercureBenchKey signs the suite's Mercure publishers' tokens.
const mercureBenchKey = "ssebench-mercure-publisher-key-0123456789"

// cmdSuite runs every scenario against a gateway node and a redis-server it
// starts itself, on free ports, and the idle and fan-out scenarios also
// against the floor server, and prints the gateway / floor ratios and one
// table of every figure.
func cmdSuite(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg suiteConfig
	if err := cfg.parse(args, stderr); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "ssebench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if cfg.exe == "" {
		if cfg.exe, err = os.Executable(); err != nil {
			return err
		}
	}
	if cfg.gateway == "" {
		cfg.gateway = filepath.Join(dir, "gateway")
		build := exec.Command("go", "build", "-o", cfg.gateway, "./cmd/gateway")
		build.Stderr = stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build the gateway (run from the repository root, or pass --gateway): %w", err)
		}
	}
	redisPort, err := freePort()
	if err != nil {
		return err
	}
	redis := exec.Command("redis-server", "--port", strconv.Itoa(redisPort), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", dir, "--maxclients", "10000")
	if err := redis.Start(); err != nil {
		return fmt.Errorf("start redis-server (install it, or run make deps): %w", err)
	}
	defer func() { _ = redis.Process.Kill(); _ = redis.Wait() }()
	redisURL := fmt.Sprintf("redis://127.0.0.1:%d", redisPort)
	if err := waitTCP(fmt.Sprintf("127.0.0.1:%d", redisPort)); err != nil {
		return err
	}

	var rows [][2]string
	row := func(k, v string) {
		rows = append(rows, [2]string{k, v})
		fmt.Fprintf(stderr, "%s: %s\n", k, v)
	}
	var comps []*comparison
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Each run gets a fresh server process, so one's memory does not carry
	// over.
	withNode := func(fn func(t *target) error, args ...string) error {
		n, err := startNode(cfg.gateway, redisURL, dir, args...)
		if err != nil {
			return err
		}
		defer n.stop()
		t := n.target
		t.exe, t.redisPID = cfg.exe, redis.Process.Pid
		return fn(t)
	}
	withFloor := func(fn func(t *target) error) error {
		f, err := startFloor(cfg.exe, dir)
		if err != nil {
			return err
		}
		defer f.stop()
		return fn(f.target)
	}
	idle := func() error {
		// Streams on one topic, and each on a topic of its own (a topic
		// per user), where the server's memory per topic counts too.
		for _, own := range []bool{false, true} {
			shape := "one topic"
			if own {
				shape = "each on its own topic"
			}
			c := &comparison{label: fmt.Sprintf("RSS per idle stream, %d streams, %s", cfg.n(cfg.idleConns), shape)}
			run := func(i int, name string) func(t *target) error {
				return func(t *target) error {
					r, err := doIdle(t, cfg.n(cfg.idleConns), "idle", own, max(time.Second, cfg.d(5)))
					if err != nil {
						return err
					}
					c.idle[i] = &r
					row(fmt.Sprintf("%s: RSS per idle stream at %d streams, %s", name, cfg.n(cfg.idleConns), shape),
						fmt.Sprintf("%s (%d open, %d failed %s; RSS %.0f → %.0f MiB)",
							kib(r.PerConn), r.Conns, r.Failed, r.FirstErr, float64(r.Before)/(1<<20), float64(r.After)/(1<<20)))
					return nil
				}
			}
			if err := withNode(run(0, "ssegateway")); err != nil {
				return err
			}
			if cfg.floor {
				if err := withFloor(run(1, "floor")); err != nil {
					return err
				}
			}
			comps = append(comps, c)
		}
		return nil
	}
	fanoutRow := func(label string, r fanoutResult) {
		redis := ""
		if r.RedisCPU > 0 {
			redis = fmt.Sprintf(" (+ Redis %.2f s)", r.RedisCPU.Seconds())
		}
		perWrite := ""
		if r.PerWrite > 0 {
			perWrite = fmt.Sprintf(", %.1f events per write", r.PerWrite)
		}
		if r.HistoryLost > 0 {
			perWrite += fmt.Sprintf("; %d history-lost events", r.HistoryLost)
		}
		pubErrs := ""
		if r.PublishErrs > 0 {
			pubErrs = fmt.Sprintf(", %d publish errors (the last: %s)", r.PublishErrs, r.PubErrMsg)
		}
		row(label, fmt.Sprintf("p50 %s, p99 %s, max %s; %d of %d deliveries, %d lost (gaps), %d not reached by the end, duplicated %d; reconnects %d, evicted %.0f; "+
			"published %.1f/s of %.0f offered (publish p99 %s%s); server CPU %.2f s%s over %.1f s%s; peak RSS %.0f MiB",
			ms(r.P50), ms(r.P99), ms(r.Max), r.Received, r.Expected, r.Gaps, r.Tail, r.Dupes, r.Reconnects, r.Evicted,
			r.Achieved, r.Offered, ms(r.PublishP99), pubErrs, r.CPU.Seconds(), redis, r.Window.Seconds(), perWrite, float64(r.PeakRSS)/(1<<20)))
	}
	// 64 or more concurrent publishers, so a slow publish round trip does not
	// throttle the offered rate (loss is counted per sequence number, so
	// events need not be published in order).
	fanout := func(label string, subs int, rate float64, dur, drain time.Duration, compare bool, args ...string) error {
		subs = cfg.n(subs)
		label = fmt.Sprintf(label, subs)
		type variant struct {
			topic, what string
			mercure     bool // on the Mercure endpoint: rows only (the floor speaks no Mercure)
		}
		variants := []variant{{topic: "fanout"}}
		if cfg.patterns && compare {
			variants = append(variants, variant{topic: "bench/*", what: fmt.Sprintf(" on bench/* (%d topics)", cfg.spread)})
		}
		if cfg.mercure && compare {
			variants = append(variants, variant{topic: "https://example.com/bench", what: " on /.well-known/mercure", mercure: true})
		}
		for _, v := range variants {
			spread, err := cfg.spreadOf(v.topic)
			if err != nil {
				return err
			}
			c := &comparison{label: label + v.what, withFeed: v.what != ""}
			run := func(i int, name string) func(t *target) error {
				return func(t *target) error {
					if v.mercure {
						if err := t.mercure(mercureBenchKey); err != nil {
							return err
						}
					}
					r, err := doFanout(ctx, t, subs, rate, dur, 64, v.topic, spread, defaultPublishers(rate), drain)
					if err != nil {
						return err
					}
					c.fanout[i] = &r
					fanoutRow(name+": "+c.label, r)
					return nil
				}
			}
			nodeArgs := args
			if v.mercure {
				nodeArgs = append(slices.Clone(args), "--mercure-publisher-jwt-key", mercureBenchKey, "--mercure-anonymous")
			}
			if err := withNode(run(0, "ssegateway"), nodeArgs...); err != nil {
				return err
			}
			if v.mercure {
				continue
			}
			if cfg.floor && compare {
				if err := withFloor(run(1, "floor")); err != nil {
					return err
				}
			}
			if compare {
				comps = append(comps, c)
			}
		}
		return nil
	}
	publish := func() error {
		return withNode(func(t *target) error {
			formats := []struct{ format, what string }{{"pub-%d", "topics without /"}}
			if cfg.patterns {
				formats = append(formats, struct{ format, what string }{"pub/%d", "topics under one feed, pub/0 … pub/99"})
			}
			for _, f := range formats {
				r := doPublishHTTP(ctx, t, 64, cfg.d(5), 64, 100, f.format)
				row("POST /publish, 64 concurrent, "+f.what, fmt.Sprintf("%.0f/s (%d errors %s)", r.Rate, r.Errors, r.Err))
				g, err := doPublishRedis(ctx, redisURL, 8, cfg.d(5), 64, 100, 64, f.format)
				if err != nil {
					return err
				}
				row("Go publisher, 8 × pipelines of 64, "+f.what, fmt.Sprintf("%.0f/s (%d errors %s)", g.Rate, g.Errors, g.Err))
			}
			return nil
		})
	}
	replay := func() error {
		variants := []struct{ topic, what string }{{"replay", "a topic"}}
		if cfg.patterns {
			variants = append(variants, struct{ topic, what string }{"replayp/*", fmt.Sprintf("a pattern, replayp/* (%d topics)", cfg.spread)})
		}
		for _, v := range variants {
			spread, err := cfg.spreadOf(v.topic)
			if err != nil {
				return err
			}
			if err := withNode(func(t *target) error {
				r, err := doStorm(ctx, t, 1, 10000, 64, v.topic, spread)
				if err != nil {
					return err
				}
				row("one reconnect replaying 10,000 events on "+v.what, fmt.Sprintf("%s (%d of 1 complete, lost %d, duplicated %d, history-lost events %d)",
					ms(r.Max), r.Done, r.Lost, r.Dupes, r.HistoryLost))
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	}
	steps := []struct {
		name string
		run  func() error
	}{
		{"idle", idle},
		{"b", func() error { return fanout("(b) %d subs × 200 msg/s", 1000, 200, cfg.d(10), cfg.drain, true) }},
		{"c", func() error { return fanout("(c) %d subs × 40 msg/s", 5000, 40, cfg.d(10), cfg.drain, true) }},
		{"d", func() error { return fanout("(d) %d subs × 100 msg/s", 5000, 100, cfg.d(10), cfg.drain, true) }},
		// More than the machine can write. With a 256 KiB kernel send
		// buffer per stream, subscribers that fall behind are evicted and
		// resume from Redis; the longer drain gives them time to catch up.
		{"e", func() error {
			return fanout("(e) %d subs × 1,000 msg/s offered (--send-buffer 262144)", 5000, 1000, cfg.d(10), 6*cfg.drain, false,
				"--send-buffer", "262144")
		}},
		{"publish", publish},
		{"replay", replay},
		{"storm", func() error {
			return withNode(func(t *target) error {
				clients := cfg.n(1000)
				r, err := doStorm(ctx, t, clients, 1000, 64, "storm", nil)
				if err != nil {
					return err
				}
				row(fmt.Sprintf("%d clients resuming at once, 1,000 events missed each", clients), fmt.Sprintf("all done in %s (p50 %s, p99 %s); %d of %d complete, lost %d, duplicated %d, history-lost events %d; history reads %.0f, shared %.0f",
					ms(r.Max), ms(r.P50), ms(r.P99), r.Done, r.Clients, r.Lost, r.Dupes, r.HistoryLost, r.OwnReads, r.Shared))
				return nil
			})
		}},
	}
	for _, s := range steps {
		if !cfg.want(s.name) {
			continue
		}
		if err := s.run(); err != nil {
			return fmt.Errorf("scenario %s: %w", s.name, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	fmt.Fprintf(stdout, "\nssebench suite — %s, %d CPUs, %s, %s\n", runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU(), runtime.Version(),
		time.Now().UTC().Format("2006-01-02 15:04 MST"))
	if cfg.floor && len(comps) > 0 {
		printRatios(stdout, comps)
	}
	fmt.Fprintf(stdout, "\n| scenario | result |\n|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(stdout, "| %s | %s |\n", r[0], r[1])
	}
	return nil
}

// printRatios prints the gateway / floor table: for each scenario measured
// on both, the figure on each and their ratio.
func printRatios(w io.Writer, comps []*comparison) {
	fmt.Fprintf(w, "\n| scenario | measure | ssegateway | floor | ssegateway / floor |\n|---|---|---|---|---|\n")
	line := func(label, measure, gw, fl string, a, b float64) {
		ratio := "—"
		if a > 0 && b > 0 {
			ratio = fmt.Sprintf("%.2f×", a/b)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", label, measure, gw, fl, ratio)
	}
	for _, c := range comps {
		if g, f := c.idle[0], c.idle[1]; g != nil && f != nil {
			line(c.label, "server RSS per stream", kib(g.PerConn), kib(f.PerConn), g.PerConn, f.PerConn)
			continue
		}
		g, f := c.fanout[0], c.fanout[1]
		if g == nil || f == nil {
			continue
		}
		secs := func(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
		line(c.label, "server CPU", secs(g.CPU), secs(f.CPU), g.CPU.Seconds(), f.CPU.Seconds())
		if g.RedisCPU > 0 {
			line(c.label, "server CPU + Redis CPU", secs(g.CPU+g.RedisCPU), secs(f.CPU), (g.CPU + g.RedisCPU).Seconds(), f.CPU.Seconds())
		}
		line(c.label, "p50 latency", ms(g.P50), ms(f.P50), float64(g.P50), float64(f.P50))
		line(c.label, "p99 latency", ms(g.P99), ms(f.P99), float64(g.P99), float64(f.P99))
		if g.PerWrite > 0 && f.PerWrite > 0 {
			line(c.label, "events per write", fmt.Sprintf("%.1f", g.PerWrite), fmt.Sprintf("%.1f", f.PerWrite), 0, 0)
		}
		if g.Gaps+g.Dupes+g.Tail+g.HistoryLost+f.Gaps+f.Dupes+f.Tail+f.HistoryLost > 0 {
			fmt.Fprintf(w, "| %s | deliveries lost, duplicated, not reached by the end; history-lost events | %d, %d, %d; %d | %d, %d, %d; %d | |\n",
				c.label, g.Gaps, g.Dupes, g.Tail, g.HistoryLost, f.Gaps, f.Dupes, f.Tail, f.HistoryLost)
		}
	}
}

// server is a process the suite started: a gateway node or the floor.
type server struct {
	cmd    *exec.Cmd
	done   chan struct{}
	target *target
}

// start starts cmd with its stderr in logPath and waits until readyURL
// answers 200.
func start(cmd *exec.Cmd, logPath, readyURL string) (*server, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	s := &server{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(s.done) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := http.Get(readyURL)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-s.done:
			b, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("%s exited before it was ready: %s", filepath.Base(cmd.Path), b)
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s did not become ready (%s)", filepath.Base(cmd.Path), readyURL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func startNode(bin, redisURL, dir string, extra ...string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	admin, err := freePort()
	if err != nil {
		return nil, err
	}
	args := append([]string{"--addr", fmt.Sprintf("127.0.0.1:%d", port), "--admin-addr", fmt.Sprintf("127.0.0.1:%d", admin),
		"--redis-url", redisURL, "--insecure-no-auth", "--log-level", "warn", "--log-format", "json", "--drain-period", "1s",
		// Thousands of streams from 20 source addresses: no per-client limit.
		"--max-streams-per-client", "0"}, extra...)
	s, err := start(exec.Command(bin, args...), filepath.Join(dir, fmt.Sprintf("gateway-%d.log", port)),
		fmt.Sprintf("http://127.0.0.1:%d/readyz", admin))
	if err != nil {
		return nil, err
	}
	s.target = &target{url: fmt.Sprintf("http://127.0.0.1:%d", port), path: "/events?topic=%s", body: `{"topic":%q,"data":%q}`,
		sources: "127.0.0.1-127.0.0.20", perProc: 5000, pid: s.cmd.Process.Pid,
		metricURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", admin)}
	return s, nil
}

// startFloor starts the floor server (ssebench floor-server) as a process
// of its own, so its CPU and memory are read from /proc like a node's.
func startFloor(exe, dir string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s, err := start(exec.Command(exe, "floor-server", "--addr", fmt.Sprintf("127.0.0.1:%d", port)),
		filepath.Join(dir, fmt.Sprintf("floor-%d.log", port)), fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
	if err != nil {
		return nil, err
	}
	s.target = &target{url: fmt.Sprintf("http://127.0.0.1:%d", port), path: "/events?topic=%s", body: `{"topic":%q,"data":%q}`,
		sources: "127.0.0.1-127.0.0.20", perProc: 5000, pid: s.cmd.Process.Pid, exe: exe,
		metricURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", port)}
	return s, nil
}

// stop ends the process with SIGTERM, or kills it after 20 s.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func waitTCP(addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
