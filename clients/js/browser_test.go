package jsclient_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/internal/redistest"
)

// The client's tests: its Node unit tests, and the browser tests, which run
// a real gateway (on a real Redis) and headless Chromium through
// browser/driver.mjs (playwright-core with Debian's chromium).

const jwtSecret = "browser-test-secret-of-at-least-32-bytes"

// mercureKey is the gateway's Mercure publisher key in the browser tests.
const mercureKey = "browser-test-mercure-key-of-at-least-32-bytes"

func needNode(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed; run `make test`, which installs it (Debian: apt-get install -y nodejs npm)")
	}
}

// TestNodeUnit runs the unit tests, test/*.test.js, with Node's test runner.
func TestNodeUnit(t *testing.T) {
	needNode(t)
	if _, err := os.Stat("node_modules/esbuild"); err != nil {
		t.Fatal("clients/js/node_modules is missing; run `make test` (or `npm ci` in clients/js)")
	}
	files, err := filepath.Glob("test/*.test.js")
	if err != nil || len(files) == 0 {
		t.Fatalf("no unit tests in test/: %v", err)
	}
	out, err := exec.Command("node", append([]string{"--test"}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
}

// report is one line from driver.mjs: a command's answer, or what a test
// page reported (see browser/page.html).
type report struct {
	Kind    string   `json:"kind"`
	Seq     int      `json:"seq"`
	Tab     string   `json:"tab"`
	Load    string   `json:"load"` // one page load of the tab
	N       int      `json:"n"`    // the report's number within its load
	Role    string   `json:"role"`
	Type    string   `json:"type"`
	Data    string   `json:"data"`
	ID      string   `json:"id"`
	Topic   string   `json:"topic"`
	Topics  []string `json:"topics"`
	Reason  string   `json:"reason"`
	Status  int      `json:"status"`
	Message string   `json:"message"`
	Fatal   bool     `json:"fatal"`
	State   int      `json:"readyState"`
	Value   string   `json:"value"` // a command's answer
}

// browser is driver.mjs: tabs in browser contexts, and what they report.
type browser struct {
	stdin io.WriteCloser

	mu       sync.Mutex
	seq      int
	answers  map[int]chan report
	loads    map[string][]string            // tab → its page loads, in order
	reports  map[string]map[string][]report // tab → load → reports
	problems []string
}

func startBrowser(t *testing.T, base string) *browser {
	t.Helper()
	needNode(t)
	if _, err := os.Stat("node_modules/playwright-core"); err != nil {
		t.Fatal("clients/js/node_modules is missing; run `make test` (or `npm ci` in clients/js)")
	}
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("chromium is not installed at %s; run `make test`, which installs it (Debian: apt-get install -y chromium)", chromium)
	}
	cmd := exec.Command("node", "browser/driver.mjs", base, jwtSecret)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &browser{stdin: stdin, answers: map[int]chan report{}, loads: map[string][]string{}, reports: map[string]map[string][]report{}}
	started := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var r report
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				b.problem("driver printed %q", sc.Text())
				continue
			}
			b.mu.Lock()
			switch r.Kind {
			case "started":
				close(started)
			case "done", "fail":
				if ch := b.answers[r.Seq]; ch != nil {
					ch <- r
				}
			case "pageerror", "console":
				b.problems = append(b.problems, r.Tab+": "+r.Kind+": "+r.Message)
			default:
				if b.reports[r.Tab] == nil {
					b.reports[r.Tab] = map[string][]report{}
				}
				if _, ok := b.reports[r.Tab][r.Load]; !ok {
					b.loads[r.Tab] = append(b.loads[r.Tab], r.Load)
				}
				b.reports[r.Tab][r.Load] = append(b.reports[r.Tab][r.Load], r)
			}
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("driver.mjs stderr:\n%s", stderr.String())
		}
	})
	select {
	case <-started:
	case <-done:
		t.Fatalf("driver.mjs exited at start:\n%s", stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("driver.mjs did not start:\n%s", stderr.String())
	}
	return b
}

func (b *browser) problem(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, fmt.Sprintf(format, args...))
}

// try runs one driver command and waits for its answer.
func (b *browser) try(cmd map[string]any) (report, error) {
	b.mu.Lock()
	b.seq++
	cmd["seq"] = b.seq
	ch := make(chan report, 1)
	b.answers[b.seq] = ch
	b.mu.Unlock()
	line, _ := json.Marshal(cmd)
	if _, err := b.stdin.Write(append(line, '\n')); err != nil {
		return report{}, fmt.Errorf("driver: %w", err)
	}
	select {
	case r := <-ch:
		if r.Kind == "fail" {
			return r, fmt.Errorf("driver %v: %s", cmd, r.Message)
		}
		return r, nil
	case <-time.After(60 * time.Second):
		return report{}, fmt.Errorf("driver %v: no answer", cmd)
	}
}

// do runs one driver command for the test t and returns its answer.
func (b *browser) do(t *testing.T, cmd map[string]any) report {
	t.Helper()
	r, err := b.try(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (b *browser) open(t *testing.T, ctx, tab, query string) {
	t.Helper()
	b.do(t, map[string]any{"op": "open", "ctx": ctx, "tab": tab, "query": query})
}

// of returns a tab's reports of the given kinds over all its page loads,
// each load's in the order the page made them.
func (b *browser) of(tab string, kinds ...string) []report {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []report
	for _, l := range b.loads[tab] {
		rs := slices.Clone(b.reports[tab][l])
		sort.Slice(rs, func(i, j int) bool { return rs[i].N < rs[j].N })
		for _, r := range rs {
			if slices.Contains(kinds, r.Kind) {
				out = append(out, r)
			}
		}
	}
	return out
}

// lastOf returns the tab's last report of kind in its last page load.
func (b *browser) lastOf(tab, kind string) (report, bool) {
	b.mu.Lock()
	loads := b.loads[tab]
	b.mu.Unlock()
	if len(loads) == 0 {
		return report{}, false
	}
	var last report
	found := false
	for _, r := range b.of(tab, kind) {
		if r.Load == loads[len(loads)-1] {
			last, found = r, true
		}
	}
	return last, found
}

// role is the tab's role in its latest page load.
func (b *browser) role(tab string) string {
	b.mu.Lock()
	loads := b.loads[tab]
	b.mu.Unlock()
	role := ""
	for _, r := range b.of(tab, "load", "role") {
		if r.Load == loads[len(loads)-1] {
			role = r.Role
		}
	}
	return role
}

// logged is what the tab's page kept of the events (and history-lost
// events) it was handed, over all its loads: the reports stream as they
// happen, but one made just before the page unloads may never arrive.
func (b *browser) logged(t *testing.T, tab string) []report {
	t.Helper()
	var out []report
	if err := json.Unmarshal([]byte(b.do(t, map[string]any{"op": "log", "tab": tab}).Value), &out); err != nil {
		t.Fatalf("%s's log: %v", tab, err)
	}
	return out
}

// datas is the data of the events the tab's page was handed.
func (b *browser) datas(t *testing.T, tab string) []string {
	t.Helper()
	var out []string
	for _, r := range b.logged(t, tab) {
		if r.Kind == "event" {
			out = append(out, r.Data)
		}
	}
	return out
}

// lost is the history-lost events the tab's page was handed.
func (b *browser) lost(t *testing.T, tab string) []report {
	t.Helper()
	var out []report
	for _, r := range b.logged(t, tab) {
		if r.Kind == "history-lost" {
			out = append(out, r)
		}
	}
	return out
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitReady waits until the tab's latest page load is open and placed.
func (b *browser) waitReady(t *testing.T, tabs ...string) {
	t.Helper()
	for _, tab := range tabs {
		waitFor(t, 30*time.Second, tab+" ready", func() bool { _, ok := b.lastOf(tab, "ready"); return ok })
	}
}

// dumpOnFailure logs what the tabs reported if the test fails.
func (b *browser) dumpOnFailure(t *testing.T, tabs ...string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, tab := range tabs {
			var lines []string
			for _, r := range b.of(tab, "load", "ready", "role", "open", "error", "history-lost", "token") {
				lines = append(lines, fmt.Sprintf("%s/%d %s %s %s %s %d %s", r.Load, r.N, r.Kind, r.Role, r.Data, r.ID, r.Status, r.Message))
			}
			t.Logf("%s reported:\n%s", tab, strings.Join(lines, "\n"))
			if r, err := b.try(map[string]any{"op": "log", "tab": tab}); err == nil {
				t.Logf("%s kept: %s", tab, r.Value)
			}
		}
	})
}

func (b *browser) checkProblems(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.problems) > 0 {
		t.Errorf("the pages reported problems: %q", b.problems)
	}
}

// node is the gateway under test.
type node struct {
	base      string
	redis     *redistest.Server
	pubTk     string // a token that may publish anywhere
	mercureTk string // a token that may publish anything to the Mercure hub
}

func startGateway(t *testing.T) *node {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gateway")
	build := exec.Command("go", "build", "-o", bin, "./cmd/gateway")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build gateway: %v\n%s", err, out)
	}
	rs := redistest.Start(t)
	port := redistest.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := exec.Command(bin, "--addr", fmt.Sprintf("127.0.0.1:%d", port), "--redis-url", rs.URL(),
		"--jwt-secret", jwtSecret, "--public-topics", "pub/**,shop/**", "--token-query-param", "token",
		"--mercure-publisher-jwt-key", mercureKey, "--mercure-anonymous",
		"--retry", "100ms", "--log-format", "json", "--log-level", "warn")
	logf, err := os.Create(filepath.Join(t.TempDir(), "gateway.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logf.Name())
			t.Logf("gateway log:\n%s", out)
		}
	})
	waitFor(t, 30*time.Second, "the gateway ready", func() bool {
		res, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "publisher", "exp": time.Now().Add(time.Hour).Unix(),
		"sse": map[string]any{"publish": []string{"**"}},
	}).SignedString([]byte(jwtSecret))
	if err != nil {
		t.Fatal(err)
	}
	mtok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"mercure": map[string]any{"publish": []string{"*"}},
	}).SignedString([]byte(mercureKey))
	if err != nil {
		t.Fatal(err)
	}
	return &node{base: base, redis: rs, pubTk: tok, mercureTk: mtok}
}

// publishMercure publishes an update to the gateway's Mercure hub with a
// publisher-chosen id.
func (n *node) publishMercure(t *testing.T, topic, id, data string) {
	t.Helper()
	form := url.Values{"topic": {topic}, "id": {id}, "data": {data}}
	req, _ := http.NewRequest(http.MethodPost, n.base+"/.well-known/mercure", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+n.mercureTk)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("publish to the Mercure hub: %v", err)
		return
	}
	msg, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || string(msg) != id {
		t.Errorf("publish to the Mercure hub: %d %q", res.StatusCode, msg)
	}
}

func (n *node) publish(t *testing.T, topic, data string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"topic": topic, "data": data})
	req, _ := http.NewRequest(http.MethodPost, n.base+"/publish", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+n.pubTk)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("publish: %v", err)
		return
	}
	msg, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("publish: %d %s", res.StatusCode, msg)
	}
}

// metric reads one sample of the node's /metrics, e.g.
// `ssegateway_connections_open` or
// `ssegateway_connections_closed_total{reason="token_expired"}`; 0 if absent.
func (n *node) metric(t *testing.T, name string) float64 {
	t.Helper()
	res, err := http.Get(n.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %q", name, v)
			}
			return f
		}
	}
	return 0
}

// exact checks that events hold each topic's numbered events, from its
// first to its last number, each once and in order.
func exact(t *testing.T, who string, events []string, want map[string][2]int) {
	t.Helper()
	per := map[string][]string{}
	for _, e := range events {
		topic, _, ok := strings.Cut(e, "#")
		if !ok {
			t.Errorf("%s: unexpected event %q", who, e)
			continue
		}
		per[topic] = append(per[topic], e)
	}
	total := 0
	for topic, r := range want {
		var w []string
		for i := r[0]; i < r[1]; i++ {
			w = append(w, fmt.Sprintf("%s#%d", topic, i))
		}
		total += len(w)
		if !slices.Equal(per[topic], w) {
			t.Errorf("%s: %s events\n got %q\nwant %q", who, topic, per[topic], w)
		}
	}
	if len(events) != total {
		t.Errorf("%s: %d events, want %d", who, len(events), total)
	}
}

// ev names event i of topic as the tests publish it.
func ev(topic string, i int) string { return fmt.Sprintf("%s#%d", topic, i) }

func TestBrowser(t *testing.T) {
	n := startGateway(t)
	b := startBrowser(t, n.base)
	t.Run("ten tabs share one stream; the holder closes mid-stream", func(t *testing.T) { testShare(t, n, b) })
	t.Run("a reload resumes from the stored cursor", func(t *testing.T) { testReload(t, n, b) })
	t.Run("history-lost reaches the listener", func(t *testing.T) { testHistoryLost(t, n, b) })
	t.Run("tokens refreshed before expiry keep the stream exact", func(t *testing.T) { testTokenRefresh(t, n, b) })
	t.Run("401 and 403 show up as error events", func(t *testing.T) { testRefused(t, n, b) })
	t.Run("a pattern subscription is unwrapped and shared", func(t *testing.T) { testPattern(t, n, b) })
	t.Run("the Mercure hub: shared, with the publishers' ids", func(t *testing.T) { testMercure(t, n, b) })
	b.checkProblems(t)
}

func testShare(t *testing.T, n *node, b *browser) {
	const tabs = 10
	a, c := "pub/share-a", "pub/share-b"
	opened0 := n.metric(t, "ssegateway_connections_opened_total")
	var names []string
	for i := range tabs {
		names = append(names, fmt.Sprintf("s%d", i))
		b.open(t, "share", names[i], "topic="+a+"&topic="+c)
	}
	b.dumpOnFailure(t, names...)
	b.waitReady(t, names...)
	holders := func(tabs []string) []string {
		var out []string
		for _, tab := range tabs {
			if b.role(tab) == "holder" {
				out = append(out, tab)
			}
		}
		return out
	}
	if h := holders(names); len(h) != 1 {
		t.Fatalf("holders: %v, want exactly one", h)
	}
	if open := n.metric(t, "ssegateway_connections_open"); open != 1 {
		t.Fatalf("the gateway holds %v streams for %d tabs, want 1", open, tabs)
	}

	// Every tab receives every event exactly once, in the same order.
	const first = 20
	for i := range first {
		n.publish(t, a, ev(a, i))
		n.publish(t, c, ev(c, i))
	}
	waitFor(t, 30*time.Second, "every tab has the first events", func() bool {
		for _, tab := range names {
			if len(b.datas(t, tab)) < 2*first {
				return false
			}
		}
		return true
	})
	holder := holders(names)[0]
	for _, tab := range names {
		got := b.datas(t, tab)
		exact(t, tab, got, map[string][2]int{a: {0, first}, c: {0, first}})
		if !slices.Equal(got, b.datas(t, holder)) {
			t.Errorf("%s delivered another order than the holder %s", tab, holder)
		}
		for _, r := range b.logged(t, tab) {
			if wantTopic, _, _ := strings.Cut(r.Data, "#"); r.Topic != wantTopic {
				t.Errorf("%s: %q came with topic %q", tab, r.Data, r.Topic)
				break
			}
		}
	}
	if open, opened := n.metric(t, "ssegateway_connections_open"), n.metric(t, "ssegateway_connections_opened_total")-opened0; open != 1 || opened != 1 {
		t.Fatalf("for %d tabs the gateway holds %v streams and opened %v, want 1 and 1", tabs, open, opened)
	}

	// The holder closes while events flow: another tab takes over and the
	// others carry on. Then a follower reloads (it is away while events are
	// published) and resumes. Nothing is lost or repeated anywhere.
	total := first
	publishTo := func(end int, pause time.Duration, at int, then func()) {
		for ; total < end; total++ {
			if total == at {
				then()
			}
			n.publish(t, a, ev(a, total))
			n.publish(t, c, ev(c, total))
			time.Sleep(pause)
		}
	}
	rest := slices.DeleteFunc(slices.Clone(names), func(s string) bool { return s == holder })
	closed := make(chan error, 1)
	publishTo(first+30, 10*time.Millisecond, first+10, func() {
		go func() { _, err := b.try(map[string]any{"op": "close", "tab": holder}); closed <- err }()
	})
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "another tab to take over", func() bool { return len(holders(rest)) == 1 })
	var follower string
	for _, tab := range rest {
		if b.role(tab) == "follower" {
			follower = tab
			break
		}
	}
	b.do(t, map[string]any{"op": "goto", "tab": follower, "url": "about:blank"})
	publishTo(total+10, 0, -1, nil)
	b.do(t, map[string]any{"op": "goto", "tab": follower, "url": ""})
	b.waitReady(t, follower)
	publishTo(total+10, 0, -1, nil)
	waitFor(t, 30*time.Second, "every remaining tab has every event", func() bool {
		for _, tab := range rest {
			if len(b.datas(t, tab)) < 2*total {
				return false
			}
		}
		return true
	})
	for _, tab := range rest {
		exact(t, tab, b.datas(t, tab), map[string][2]int{a: {0, total}, c: {0, total}})
	}
	if h := holders(rest); len(h) != 1 {
		t.Errorf("holders after the takeover: %v, want exactly one", h)
	}
	waitFor(t, 30*time.Second, "one stream again", func() bool { return n.metric(t, "ssegateway_connections_open") == 1 })
	b.do(t, map[string]any{"op": "closectx", "ctx": "share"})
	waitFor(t, 30*time.Second, "the streams closed", func() bool { return n.metric(t, "ssegateway_connections_open") == 0 })
}

func testReload(t *testing.T, n *node, b *browser) {
	topic := "pub/reload"
	b.dumpOnFailure(t, "r")
	b.open(t, "reload", "r", "topic="+topic)
	b.waitReady(t, "r")
	for i := range 5 {
		n.publish(t, topic, ev(topic, i))
	}
	waitFor(t, 30*time.Second, "the first events", func() bool { return len(b.datas(t, "r")) == 5 })

	// Away and back: events published while no page ran arrive after it.
	b.do(t, map[string]any{"op": "goto", "tab": "r", "url": "about:blank"})
	for i := 5; i < 10; i++ {
		n.publish(t, topic, ev(topic, i))
	}
	b.do(t, map[string]any{"op": "goto", "tab": "r", "url": ""})
	b.waitReady(t, "r")
	waitFor(t, 30*time.Second, "the events published during the reload", func() bool { return len(b.datas(t, "r")) >= 10 })

	// A reload while events flow.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 10; i < 40; i++ {
			n.publish(t, topic, ev(topic, i))
			time.Sleep(5 * time.Millisecond)
		}
	}()
	waitFor(t, 30*time.Second, "events before the reload", func() bool { return len(b.datas(t, "r")) >= 15 })
	b.do(t, map[string]any{"op": "reload", "tab": "r"})
	<-done
	waitFor(t, 30*time.Second, "every event", func() bool { return len(b.datas(t, "r")) >= 40 })
	exact(t, "r", b.datas(t, "r"), map[string][2]int{topic: {0, 40}})
	b.mu.Lock()
	loads := len(b.loads["r"])
	b.mu.Unlock()
	if loads != 3 {
		t.Errorf("%d page loads, want 3", loads)
	}
	for _, r := range b.logged(t, "r") {
		if r.Topic != topic {
			t.Errorf("%q came with topic %q", r.Data, r.Topic)
		}
	}
	b.do(t, map[string]any{"op": "closectx", "ctx": "reload"})
}

func testHistoryLost(t *testing.T, n *node, b *browser) {
	topic := "pub/lost"
	tabs := []string{"h1", "h2"}
	b.dumpOnFailure(t, tabs...)
	for _, tab := range tabs {
		b.open(t, "lost", tab, "topic="+topic)
	}
	b.waitReady(t, tabs...)
	n.publish(t, topic, ev(topic, 0))
	for _, tab := range tabs {
		waitFor(t, 30*time.Second, tab+"'s first event", func() bool { return len(b.datas(t, tab)) == 1 })
		b.do(t, map[string]any{"op": "goto", "tab": tab, "url": "about:blank"})
	}

	// While no page runs, events are published and then lost: the stream is
	// deleted, as a trim or an expiry would.
	n.publish(t, topic, ev(topic, 1))
	n.publish(t, topic, ev(topic, 2))
	keys, _ := contract.NewKeys(contract.DefaultPrefix)
	if err := n.redis.Client().Del(context.Background(), keys.Stream(topic)).Err(); err != nil {
		t.Fatal(err)
	}
	n.publish(t, topic, ev(topic, 3))

	// Both come back, each from the cursor in its sessionStorage: one
	// resumes from the gateway, the other gets what it missed from that one.
	for _, tab := range tabs {
		b.do(t, map[string]any{"op": "goto", "tab": tab, "url": ""})
	}
	b.waitReady(t, tabs...)
	for _, tab := range tabs {
		waitFor(t, 30*time.Second, tab+"'s history-lost", func() bool { return len(b.lost(t, tab)) > 0 })
	}
	n.publish(t, topic, ev(topic, 4))
	// The gateway places history-lost at the gap, then sends what was
	// retained after it (#3), then what follows.
	want := []string{ev(topic, 0), "history-lost", ev(topic, 3), ev(topic, 4)}
	for _, tab := range tabs {
		waitFor(t, 30*time.Second, tab+"'s next event", func() bool { return len(b.datas(t, tab)) >= 3 })
		var got []string
		for _, r := range b.logged(t, tab) {
			if r.Kind == "history-lost" {
				got = append(got, r.Kind)
				if !slices.Equal(r.Topics, []string{topic}) || r.Reason != "trimmed" {
					t.Errorf("%s: history-lost for %q (%s), want [%s] (trimmed)", tab, r.Topics, r.Reason, topic)
				}
			} else {
				got = append(got, r.Data)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s was handed %q, want %q", tab, got, want)
		}
	}
	b.do(t, map[string]any{"op": "closectx", "ctx": "lost"})
}

func testTokenRefresh(t *testing.T, n *node, b *browser) {
	expired0 := n.metric(t, `ssegateway_connections_closed_total{reason="token_expired"}`)
	// Tokens live 6 s; the client gets a new one after 3 s and reconnects
	// with it, from its cursor. One tab sends it in the Authorization
	// header, one in the query parameter the node takes (--token-query-param).
	tabs := map[string]string{"kh": "priv/header", "kq": "priv/query"}
	b.dumpOnFailure(t, "kh", "kq")
	b.open(t, "token-h", "kh", "token=good&ttl=6&grant=priv/**&topic=priv/header")
	b.open(t, "token-q", "kq", "token=good&ttl=6&grant=priv/**&tokenIn=query&topic=priv/query")
	b.waitReady(t, "kh", "kq")
	const count = 80 // over about 8 s
	for i := range count {
		for _, topic := range tabs {
			n.publish(t, topic, ev(topic, i))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for tab, topic := range tabs {
		waitFor(t, 30*time.Second, tab+"'s events", func() bool { return len(b.datas(t, tab)) >= count })
		exact(t, tab, b.datas(t, tab), map[string][2]int{topic: {0, count}})
		if tokens := len(b.of(tab, "token")); tokens < 3 {
			t.Errorf("%s fetched %d tokens in 8 s of 6 s tokens, want at least 3", tab, tokens)
		}
		if errs := b.of(tab, "error"); len(errs) > 0 {
			t.Errorf("%s: error events %+v", tab, errs)
		}
	}
	if d := n.metric(t, `ssegateway_connections_closed_total{reason="token_expired"}`) - expired0; d != 0 {
		t.Errorf("%v streams were cut at token expiry: the client did not refresh in time", d)
	}
	b.do(t, map[string]any{"op": "closectx", "ctx": "token-h"})
	b.do(t, map[string]any{"op": "closectx", "ctx": "token-q"})
}

func testRefused(t *testing.T, n *node, b *browser) {
	b.open(t, "refused", "bad", "token=bad&topic=priv/u")
	b.open(t, "refused", "none", "topic=priv/n")
	b.open(t, "refused", "other", "token=good&grant=priv/other&topic=priv/f")
	want := map[string]int{"bad": 401, "none": 401, "other": 403}
	b.dumpOnFailure(t, "bad", "none", "other")
	for tab, status := range want {
		waitFor(t, 30*time.Second, tab+"'s error event", func() bool { return len(b.of(tab, "error")) > 0 })
		errs := b.of(tab, "error")
		if len(errs) != 1 || errs[0].Status != status || !errs[0].Fatal || errs[0].State != 2 || errs[0].Message == "" {
			t.Errorf("%s: error events %+v, want one with status %d, fatal, readyState 2 (closed) and the gateway's message", tab, errs, status)
		}
	}
	if tokens := len(b.of("bad", "token")); tokens != 2 {
		t.Errorf("a refused token was fetched %d times, want 2 (a fresh one is tried once)", tokens)
	}
	b.do(t, map[string]any{"op": "closectx", "ctx": "refused"})
}

func testPattern(t *testing.T, n *node, b *browser) {
	// A pattern and a topic on one stream: the gateway wraps every event as
	// {"topic", "data"}; the tabs get the data as published and the topic.
	// Topics under the pattern appear only after the tabs subscribed.
	tabs := []string{"p0", "p1", "p2"}
	b.dumpOnFailure(t, tabs...)
	plain := "pub/beside-pattern"
	for _, tab := range tabs {
		b.open(t, "pattern", tab, "topic=shop/*&topic="+plain)
	}
	b.waitReady(t, tabs...)
	topics := []string{"shop/1", "shop/2", plain}
	publishRound := func(i int) {
		for _, topic := range topics {
			n.publish(t, topic, ev(topic, i))
		}
	}
	for i := range 10 {
		publishRound(i)
	}
	// The holder closes; the others go on from their cursors (one
	// position per pattern's feed and per topic).
	var holder string
	waitFor(t, 30*time.Second, "a holder", func() bool {
		for _, tab := range tabs {
			if b.role(tab) == "holder" {
				holder = tab
				return true
			}
		}
		return false
	})
	waitFor(t, 30*time.Second, "the first events", func() bool { return len(b.datas(t, holder)) >= 3*5 })
	b.do(t, map[string]any{"op": "close", "tab": holder})
	for i := 10; i < 20; i++ {
		publishRound(i)
	}
	rest := slices.DeleteFunc(slices.Clone(tabs), func(s string) bool { return s == holder })
	want := map[string][2]int{}
	for _, topic := range topics {
		want[topic] = [2]int{0, 20}
	}
	for _, tab := range rest {
		waitFor(t, 30*time.Second, tab+"'s events", func() bool { return len(b.datas(t, tab)) >= 3*20 })
		exact(t, tab, b.datas(t, tab), want)
		for _, r := range b.logged(t, tab) {
			if wantTopic, _, _ := strings.Cut(r.Data, "#"); r.Topic != wantTopic {
				t.Errorf("%s: %q came with topic %q", tab, r.Data, r.Topic)
				break
			}
		}
	}
	b.do(t, map[string]any{"op": "closectx", "ctx": "pattern"})
}

func testMercure(t *testing.T, n *node, b *browser) {
	// Three tabs subscribe to the gateway's Mercure hub with a URI template
	// and share one stream; the updates keep the ids their publisher chose.
	// The holder closes mid-stream and the others go on from their cursors
	// (Mercure ids, compared by equality), each update once and in order.
	tabs := []string{"m0", "m1", "m2"}
	b.dumpOnFailure(t, tabs...)
	for _, tab := range tabs {
		b.open(t, "mercure", tab, "endpoint=mercure&topic="+url.QueryEscape("https://example.com/books/{id}"))
	}
	b.waitReady(t, tabs...)
	topics := []string{"https://example.com/books/1", "https://example.com/books/2"}
	publishRound := func(i int) {
		for _, topic := range topics {
			n.publishMercure(t, topic, "id:"+ev(topic, i), ev(topic, i))
		}
		n.publishMercure(t, "https://example.com/authors/1", fmt.Sprint("id:author#", i), "not for these tabs")
	}
	for i := range 10 {
		publishRound(i)
	}
	var holder string
	waitFor(t, 30*time.Second, "a holder", func() bool {
		for _, tab := range tabs {
			if b.role(tab) == "holder" {
				holder = tab
				return true
			}
		}
		return false
	})
	waitFor(t, 30*time.Second, "the first updates", func() bool { return len(b.datas(t, holder)) >= 2*5 })
	b.do(t, map[string]any{"op": "close", "tab": holder})
	for i := 10; i < 20; i++ {
		publishRound(i)
	}
	rest := slices.DeleteFunc(slices.Clone(tabs), func(s string) bool { return s == holder })
	want := map[string][2]int{}
	for _, topic := range topics {
		want[topic] = [2]int{0, 20}
	}
	for _, tab := range rest {
		waitFor(t, 30*time.Second, tab+"'s updates", func() bool { return len(b.datas(t, tab)) >= 2*20 })
		exact(t, tab, b.datas(t, tab), want)
		for _, r := range b.logged(t, tab) {
			if r.Kind == "event" && r.ID != "id:"+r.Data {
				t.Errorf("%s: %q came with id %q, not its publisher's", tab, r.Data, r.ID)
				break
			}
		}
	}
	b.do(t, map[string]any{"op": "closectx", "ctx": "mercure"})
}
