package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// cmdSuite runs every scenario against a gateway node and a redis-server it
// starts itself, on free ports, and prints one table.
func cmdSuite(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ssebench suite", flag.ContinueOnError)
	fs.SetOutput(stderr)
	gwBin := fs.String("gateway", "", "gateway binary (default: build ./cmd/gateway)")
	only := fs.String("only", "", "run only this scenario: idle, b, c, d, e, publish, replay, storm")
	idleConns := fs.Int("idle-conns", 10000, "streams in the idle scenario")
	scale := fs.Float64("scale", 1, "multiply scenario durations (0.2 for a quick look)")
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "ssebench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if *gwBin == "" {
		*gwBin = filepath.Join(dir, "gateway")
		build := exec.Command("go", "build", "-o", *gwBin, "./cmd/gateway")
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

	d := func(s float64) time.Duration { return time.Duration(s * *scale * float64(time.Second)) }
	var rows [][2]string
	row := func(k, v string) {
		rows = append(rows, [2]string{k, v})
		fmt.Fprintf(stderr, "%s: %s\n", k, v)
	}
	want := func(s string) bool { return *only == "" || *only == s }
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Each scenario gets a fresh node, so one's memory does not carry over.
	withNode := func(name string, fn func(t *target) error, args ...string) error {
		if !want(name) {
			return nil
		}
		n, err := startNode(*gwBin, redisURL, dir, stderr, args...)
		if err != nil {
			return err
		}
		defer n.stop()
		return fn(n.target())
	}
	// 64 or more concurrent publishers, so a slow publish round trip does not
	// throttle the offered rate (loss is counted per sequence number, so
	// events need not be published in order).
	fanout := func(label, name string, subs int, rate float64, dur, drain time.Duration, args ...string) error {
		return withNode(name, func(t *target) error {
			r, err := doFanout(ctx, t, subs, rate, dur, 64, "fanout", defaultPublishers(rate), drain)
			if err != nil {
				return err
			}
			row(label, fmt.Sprintf("p50 %s, p99 %s, max %s; %d of %d deliveries, %d lost (gaps), %d not reached by the end, duplicated %d; reconnects %d, evicted %.0f; "+
				"published %.1f/s of %.0f offered (publish p99 %s); server CPU %.2f s over %.1f s, %.1f events per write; peak RSS %.0f MiB",
				ms(r.P50), ms(r.P99), ms(r.Max), r.Received, r.Expected, r.Gaps, r.Tail, r.Dupes, r.Reconnects, r.Evicted,
				r.Achieved, r.Offered, ms(r.PublishP99), r.CPU.Seconds(), r.Window.Seconds(), r.PerWrite, float64(r.PeakRSS)/(1<<20)))
			return nil
		}, args...)
	}
	steps := []func() error{
		func() error {
			return withNode("idle", func(t *target) error {
				r, err := doIdle(t, *idleConns, "idle", 5*time.Second)
				if err != nil {
					return err
				}
				row(fmt.Sprintf("RSS per idle stream at %d streams", *idleConns), fmt.Sprintf("%s (%d open, %d failed %s; RSS %.0f → %.0f MiB)",
					kib(r.PerConn), r.Conns, r.Failed, r.FirstErr, float64(r.Before)/(1<<20), float64(r.After)/(1<<20)))
				return nil
			})
		},
		func() error { return fanout("(b) 1,000 subs × 200 msg/s", "b", 1000, 200, d(10), 5*time.Second) },
		func() error { return fanout("(c) 5,000 subs × 40 msg/s", "c", 5000, 40, d(10), 5*time.Second) },
		func() error { return fanout("(d) 5,000 subs × 100 msg/s", "d", 5000, 100, d(10), 5*time.Second) },
		// More than the machine can write. With a 256 KiB kernel send
		// buffer per stream, subscribers that fall behind are evicted and
		// resume from Redis; the longer drain gives them time to catch up.
		func() error {
			return fanout("(e) 5,000 subs × 1,000 msg/s offered (--send-buffer 262144)", "e", 5000, 1000, d(10), 30*time.Second,
				"--send-buffer", "262144")
		},
		func() error {
			return withNode("publish", func(t *target) error {
				r := doPublishHTTP(ctx, t, 64, d(5), 64, 100)
				row("POST /publish, 64 concurrent", fmt.Sprintf("%.0f/s (%d errors %s)", r.Rate, r.Errors, r.Err))
				g, err := doPublishRedis(ctx, redisURL, 8, d(5), 64, 100, 64)
				if err != nil {
					return err
				}
				row("Go publisher, 8 × pipelines of 64", fmt.Sprintf("%.0f/s (%d errors %s)", g.Rate, g.Errors, g.Err))
				return nil
			})
		},
		func() error {
			return withNode("replay", func(t *target) error {
				r, err := doStorm(ctx, t, 1, 10000, 64, "replay")
				if err != nil {
					return err
				}
				row("one reconnect replaying 10,000 events", fmt.Sprintf("%s (%d of 1 complete, lost %d, duplicated %d)", ms(r.Max), r.Done, r.Lost, r.Dupes))
				return nil
			})
		},
		func() error {
			return withNode("storm", func(t *target) error {
				r, err := doStorm(ctx, t, 1000, 1000, 64, "storm")
				if err != nil {
					return err
				}
				row("1,000 clients resuming at once, 1,000 events missed each", fmt.Sprintf("all done in %s (p50 %s, p99 %s); %d of %d complete, lost %d, duplicated %d; history reads %.0f, shared %.0f",
					ms(r.Max), ms(r.P50), ms(r.P99), r.Done, r.Clients, r.Lost, r.Dupes, r.OwnReads, r.Shared))
				return nil
			})
		},
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	fmt.Fprintf(stdout, "\nssebench suite — %s, %d CPUs, %s\n\n| scenario | result |\n|---|---|\n", runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU(), time.Now().UTC().Format("2006-01-02 15:04 MST"))
	for _, r := range rows {
		fmt.Fprintf(stdout, "| %s | %s |\n", r[0], r[1])
	}
	return nil
}

// node is a gateway process the suite started.
type node struct {
	cmd         *exec.Cmd
	port, admin int
	done        chan struct{}
}

func startNode(bin, redisURL, dir string, stderr io.Writer, extra ...string) (*node, error) {
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
	cmd := exec.Command(bin, args...)
	logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("gateway-%d.log", port)))
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	n := &node{cmd: cmd, port: port, admin: admin, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(n.done) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", admin))
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return n, nil
			}
		}
		if time.Now().After(deadline) {
			n.stop()
			return nil, errors.New("the gateway did not become ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (n *node) target() *target {
	return &target{url: fmt.Sprintf("http://127.0.0.1:%d", n.port), path: "/events?topic=%s", body: `{"topic":%q,"data":%q}`,
		sources: "127.0.0.1-127.0.0.20", perProc: 5000, pid: n.cmd.Process.Pid,
		metricURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", n.admin)}
}

func (n *node) stop() {
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(20 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
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
