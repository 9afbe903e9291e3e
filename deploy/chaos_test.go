package deploy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/gateway/sseclient"
	"github.com/ssegateway/ssegateway/internal/redistest"
	"github.com/ssegateway/ssegateway/pubsub"
)

// chaosPhase is how long each phase of the chaos scenario runs: short in the
// normal test run, longer under `make chaos` (CHAOS_PHASE=5s).
func chaosPhase(t *testing.T) time.Duration {
	if v := os.Getenv("CHAOS_PHASE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("CHAOS_PHASE=%q: %v", v, err)
		}
		return d
	}
	return 600 * time.Millisecond
}

// topicCount is what one client saw of one topic.
type topicCount struct {
	next        int            // the number expected next
	seen        map[int]string // number → the cursor it came with
	received    int
	lost        int
	duplicated  int
	reordered   int
	historyLost int
	skipped     int  // events a history-lost event moved the client past
	early       int  // history-lost events before history was really lost
	afterLost   bool // the next event sets a new baseline
}

// tally checks one client's events "topic:n": per topic 0, 1, 2, ... with
// nothing lost, repeated or out of order, except that after a history-lost
// event for a topic its numbering may jump ahead once.
type tally struct {
	name   string
	wiped  *atomic.Bool // set once Redis came back without its data
	mu     sync.Mutex
	opens  int
	topics map[string]*topicCount
	errs   []string
}

func newTally(name string, topics []string, wiped *atomic.Bool) *tally {
	tl := &tally{name: name, wiped: wiped, topics: map[string]*topicCount{}}
	for _, tp := range topics {
		tl.topics[tp] = &topicCount{seen: map[int]string{}}
	}
	return tl
}

func (tl *tally) open() { tl.mu.Lock(); tl.opens++; tl.mu.Unlock() }

func (tl *tally) fail(format string, args ...any) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.errs = append(tl.errs, fmt.Sprintf(format, args...))
}

func (tl *tally) message(data, id string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	i := strings.LastIndexByte(data, ':')
	n, err := strconv.Atoi(data[i+1:])
	tc := tl.topics[data[:max(i, 0)]]
	if i < 0 || err != nil || tc == nil {
		tl.errs = append(tl.errs, fmt.Sprintf("unexpected event %q", data))
		return
	}
	tc.received++
	if first, ok := tc.seen[n]; ok {
		tc.duplicated++
		tl.errs = append(tl.errs, fmt.Sprintf("%q again: first with cursor %s, now with %s", data, first, id))
		return
	}
	switch {
	case tc.afterLost && n >= tc.next:
		tc.afterLost = false
		tc.skipped += n - tc.next
	case n < tc.next:
		tc.reordered++
		tc.lost-- // it was counted as lost when the gap opened
	case n > tc.next:
		tc.lost += n - tc.next
	}
	tc.seen[n] = id
	tc.next = max(tc.next, n+1)
}

func (tl *tally) historyLost(data string) {
	var hl struct{ Topics []string }
	if err := json.Unmarshal([]byte(data), &hl); err != nil {
		tl.fail("history-lost with bad data %q", data)
		return
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, tp := range hl.Topics {
		if tc := tl.topics[tp]; tc != nil {
			tc.historyLost++
			tc.afterLost = true
			// The app refetches here: what it saw before is no baseline for
			// what follows (an event whose publish was never acknowledged
			// before Redis lost it is rightly published again).
			clear(tc.seen)
			if !tl.wiped.Load() {
				tc.early++
			}
		}
	}
}

func (tl *tally) complete(published int) bool {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, tc := range tl.topics {
		if tc.next < published {
			return false
		}
	}
	return true
}

// runExternal starts a client script from deploy/chaos and feeds its JSON
// lines into tl.
func runExternal(t *testing.T, tl *tally, script, target string) {
	t.Helper()
	cmd := exec.Command("node", script, target)
	cmd.Dir = "chaos"
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), script+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s (run `make test` to install node packages): %v", script, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m struct{ Kind, Data, Message, ID string }
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				tl.fail("%s printed %q", script, sc.Text())
				continue
			}
			switch m.Kind {
			case "open":
				tl.open()
			case "message":
				tl.message(m.Data, m.ID)
			case "history-lost":
				tl.historyLost(m.Data)
			case "error", "page":
				if strings.Contains(sc.Text(), `"closed":true`) {
					tl.fail("%s: the EventSource gave up (it got a non-200 answer)", script)
				}
			case "pageerror":
				tl.fail("%s: page error %s", script, m.Message)
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s stderr:\n%s", script, b)
		}
	})
}

// runGoClient runs the project's Go client; delay, if set, is spent on every
// event (a deliberately slow reader with a small socket receive buffer).
func runGoClient(ctx context.Context, t *testing.T, wg *sync.WaitGroup, tl *tally, target string, delay time.Duration) {
	dialer := &net.Dialer{Timeout: 2 * time.Second}
	if delay > 0 {
		dialer.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
			})
			return errors.Join(err, serr)
		}
	}
	cl := &sseclient.Client{URL: target, Retry: 100 * time.Millisecond, OnOpen: tl.open,
		HTTP: &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}}
	wg.Go(func() {
		err := cl.Run(ctx, func(ev sseclient.Event) error {
			switch ev.Type {
			case "message":
				tl.message(ev.Data, ev.LastEventID)
			case contract.HistoryLostType:
				tl.historyLost(ev.Data)
			}
			if delay > 0 {
				time.Sleep(delay)
			}
			return nil
		})
		if err != nil {
			tl.fail("gave up: %v", err)
		}
	})
}

func TestChaos(t *testing.T) {
	for _, kind := range []string{"nginx", "haproxy"} {
		t.Run(kind, func(t *testing.T) { runChaos(t, kind) })
	}
}

// runChaos: three gateway processes behind the load balancer, four clients
// (the Go client, a slow Go client, the eventsource npm package, Chromium's
// EventSource on the demo page) on three topics, a publisher sending
// numbered events, and faults one after another: kill -9 of a node, a
// drain, a rolling restart of all three, a Redis restart that keeps its data
// (exact resume expected) and one that loses it (history-lost expected).
func runChaos(t *testing.T, kind string) {
	phase := chaosPhase(t)
	srv := redistest.Start(t, redistest.WithPersistence())
	bin := buildGateway(t)
	nodes := make([]*gw, 3)
	ports := make([]int, 3)
	for i := range nodes {
		ports[i] = redistest.FreePort(t)
		nodes[i] = &gw{t: t, bin: bin, port: ports[i], redisURL: srv.URL()}
		nodes[i].start()
		t.Cleanup(func() { nodes[i].stop(syscall.SIGKILL) })
	}
	base := startLB(t, kind, ports)
	topics := []string{"orders", "news/world", "user:42"}
	query := url.Values{"topic": topics}.Encode()
	var wiped atomic.Bool

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	tallies := []*tally{
		newTally("go", topics, &wiped),
		newTally("go-slow", topics, &wiped),
		newTally("eventsource", topics, &wiped),
		newTally("chromium", topics, &wiped),
	}
	runGoClient(ctx, t, &wg, tallies[0], base+"/events?"+query, 0)
	runGoClient(ctx, t, &wg, tallies[1], base+"/events?"+query, 300*time.Microsecond)
	runExternal(t, tallies[2], "eventsource-client.mjs", base+"/events?"+query)
	runExternal(t, tallies[3], "browser-client.mjs", base+"/?"+query)
	deadline := time.Now().Add(60 * time.Second)
	for _, tl := range tallies {
		for {
			tl.mu.Lock()
			opened, errs := tl.opens > 0, tl.errs
			tl.mu.Unlock()
			if opened {
				break
			}
			if len(errs) > 0 || time.Now().After(deadline) {
				t.Fatalf("%s did not connect: %v", tl.name, errs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(500 * time.Millisecond) // every stream's setup is done

	rdb := srv.Client()
	keys, _ := contract.NewKeys(contract.DefaultPrefix)
	pub := pubsub.NewPublisher(rdb, pubsub.PublisherConfig{Keys: keys})
	var published atomic.Int64
	stopPub := make(chan struct{})
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		for i := 0; ; i++ {
			select {
			case <-stopPub:
				return
			default:
			}
			for _, tp := range topics {
				// An event counts as published once Redis acknowledged it:
				// retry through outages, with one idempotency key per event so
				// a retry after a lost reply cannot publish it twice.
				m := pubsub.Message{Topic: tp, Data: fmt.Sprintf("%s:%d", tp, i), IdempotencyKey: fmt.Sprintf("chaos-%d", i)}
				for ctx.Err() == nil {
					if _, err := pub.Publish(ctx, m); err == nil {
						break
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			published.Store(int64(i + 1))
			time.Sleep(3 * time.Millisecond)
		}
	}()

	faults := []struct {
		name string
		do   func()
	}{
		{"kill -9 of a node, restarted", func() {
			nodes[0].stop(syscall.SIGKILL)
			time.Sleep(phase / 2)
			nodes[0].start()
		}},
		{"drain (SIGTERM) of a node, restarted", func() {
			nodes[1].stop(syscall.SIGTERM)
			nodes[1].start()
		}},
		{"rolling restart of all three", func() {
			for _, n := range nodes {
				n.stop(syscall.SIGTERM)
				n.start()
				time.Sleep(phase / 3)
			}
		}},
		{"Redis restart keeping its data", srv.Restart},
		{"Redis restart losing its data", func() {
			wiped.Store(true)
			srv.RestartEmpty()
		}},
	}
	for _, f := range faults {
		time.Sleep(phase)
		t.Logf("fault: %s", f.name)
		f.do()
	}
	time.Sleep(phase)
	close(stopPub)
	<-pubDone
	total := int(published.Load())
	deadline = time.Now().Add(60 * time.Second)
	for _, tl := range tallies {
		for !tl.complete(total) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	cancel()
	wg.Wait()

	var table strings.Builder
	fmt.Fprintf(&table, "%s, phases of %v: %d events published per topic; skipped = passed over by the history-lost event after Redis lost its data\n", kind, phase, total)
	fmt.Fprintf(&table, "%-12s %-11s %9s %9s %5s %5s %9s %13s %8s %10s\n", "client", "topic", "published", "received",
		"lost", "dup", "reordered", "history-lost", "skipped", "reconnects")
	for _, tl := range tallies {
		tl.mu.Lock()
		names := make([]string, 0, len(tl.topics))
		for tp := range tl.topics {
			names = append(names, tp)
		}
		sort.Strings(names)
		for _, tp := range names {
			tc := tl.topics[tp]
			lost := tc.lost + max(0, total-tc.next)
			fmt.Fprintf(&table, "%-12s %-11s %9d %9d %5d %5d %9d %13d %8d %10d\n", tl.name, tp, total, tc.received,
				lost, tc.duplicated, tc.reordered, tc.historyLost, tc.skipped, tl.opens-1)
			switch {
			case lost != 0 || tc.duplicated != 0 || tc.reordered != 0:
				t.Errorf("%s %s: %d lost, %d duplicated, %d reordered", tl.name, tp, lost, tc.duplicated, tc.reordered)
			case tc.early != 0:
				t.Errorf("%s %s: %d history-lost events while no history was lost", tl.name, tp, tc.early)
			case tc.historyLost == 0:
				t.Errorf("%s %s: no history-lost event after Redis lost its data", tl.name, tp)
			}
		}
		for _, e := range tl.errs {
			t.Errorf("%s: %s", tl.name, e)
		}
		if tl.opens < 2 {
			t.Errorf("%s never reconnected: the faults did not reach it", tl.name)
		}
		tl.mu.Unlock()
	}
	t.Log("\n" + table.String())
	if out := os.Getenv("CHAOS_TABLE"); out != "" {
		f, err := os.OpenFile(out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintln(f, table.String())
			f.Close()
		}
	}
}
