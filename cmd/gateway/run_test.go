package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/ssegateway/ssegateway/auth"
	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/gateway/sseclient"
	"github.com/ssegateway/ssegateway/internal/redistest"
	"github.com/ssegateway/ssegateway/internal/testutil"
	"github.com/ssegateway/ssegateway/pubsub"
)

func TestMain(m *testing.M) {
	// go-redis redials a dead node from a goroutine that sleeps a second
	// between tries and notices its pool closed only when it wakes: after
	// a failover test it may outlive the test by that second.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}

// node is one gateway started through run().
type node struct {
	url   string // base URL, http:// or https://
	admin string // admin listener's base URL, if it has one
	stop  func() // graceful stop; waits for run to return
	logs  *logSink
}

// logSink collects a node's JSON log lines and reports its listen address.
type logSink struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	addrs chan string // the public listener's base URL
	admin string      // the admin listener's base URL, once logged
	part  []byte
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	l.part = append(l.part, p...)
	for {
		i := bytes.IndexByte(l.part, '\n')
		if i < 0 {
			break
		}
		var rec struct{ Message, Addr, Scheme string }
		if json.Unmarshal(l.part[:i], &rec) == nil {
			switch rec.Message {
			case "listening":
				l.addrs <- rec.Scheme + "://" + rec.Addr
			case "admin listening":
				l.admin = "http://" + rec.Addr
			}
		}
		l.part = l.part[i+1:]
	}
	return len(p), nil
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func startRun(t *testing.T, env map[string]string, args ...string) *node {
	t.Helper()
	logs := &logSink{addrs: make(chan string, 1)}
	getenv := func(k string) string { return env[k] }
	args = append([]string{"--addr", "127.0.0.1:0", "--log-format", "json", "--unsubscribe-grace", "100ms", "--drain-period", "100ms"}, args...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, getenv, io.Discard, logs) }()
	var addr string
	select {
	case addr = <-logs.addrs:
	case err := <-done:
		cancel()
		t.Fatalf("run returned at start: %v\n%s", err, logs)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatalf("node did not start:\n%s", logs)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run returned %v", err)
			}
		})
	}
	t.Cleanup(stop)
	n := &node{url: addr, stop: stop, logs: logs}
	logs.mu.Lock()
	n.admin = logs.admin // logged before "listening"
	logs.mu.Unlock()
	if strings.HasPrefix(addr, "http:") {
		waitReady(t, n.url)
	}
	return n
}

func waitReady(t *testing.T, base string) {
	t.Helper()
	waitReadyWith(t, http.DefaultClient, base)
}

func publish(t *testing.T, base, topic, data string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"topic": topic, "data": data})
	res, err := http.Post(base+"/publish", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Error(err)
		return ""
	}
	defer res.Body.Close()
	var out struct{ ID, Error string }
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != http.StatusOK {
		t.Errorf("publish: %d %+v %v", res.StatusCode, out, err)
	}
	return out.ID
}

func eventsURL(base string, topics ...string) string {
	return base + "/events?" + url.Values{"topic": topics}.Encode()
}

// tally checks per-topic sequences "topic:n" for loss, duplicates and order.
type tally struct {
	next map[string]int
	errs []string
}

func (ta *tally) add(ev sseclient.Event) {
	i := strings.LastIndexByte(ev.Data, ':')
	if i < 0 {
		ta.errs = append(ta.errs, fmt.Sprintf("unexpected event %+v", ev))
		return
	}
	topic := ev.Data[:i]
	n, err := strconv.Atoi(ev.Data[i+1:])
	if err != nil {
		ta.errs = append(ta.errs, fmt.Sprintf("unexpected event %+v", ev))
		return
	}
	if want := ta.next[topic]; n != want {
		ta.errs = append(ta.errs, fmt.Sprintf("%s: got %d, want %d", topic, n, want))
	}
	ta.next[topic] = n + 1
}

// checkpointWatch closes seen once the stream has sent its first id: line,
// the silent checkpoint that ends the stream's setup: events published after
// it are the stream's.
type checkpointWatch struct {
	r    io.Reader
	seen chan struct{}
	tail []byte
}

func (w *checkpointWatch) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if w.seen != nil {
		w.tail = append(w.tail, p[:n]...)
		if bytes.HasPrefix(w.tail, []byte("id: ")) || bytes.Contains(w.tail, []byte("\nid: ")) {
			close(w.seen)
			w.seen, w.tail = nil, nil
		}
	}
	return n, err
}

// readUntil reads one connection until it ends, ctx ends, or done says so.
// checkpoint, if not nil, is closed when the stream's setup is complete.
func readUntil(ctx context.Context, rawURL, lastID string, handle func(sseclient.Event), done func() bool, checkpoint ...chan struct{}) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return lastID, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return lastID, fmt.Errorf("status %d", res.StatusCode)
	}
	var body io.Reader = res.Body
	if len(checkpoint) > 0 {
		body = &checkpointWatch{r: res.Body, seen: checkpoint[0]}
	}
	p := sseclient.NewParser(body, lastID)
	for !done() {
		ev, err := p.Next()
		if err != nil {
			return p.LastEventID, err
		}
		handle(ev)
	}
	return p.LastEventID, nil
}

// unwrap returns the event of a pattern stream with the data as published,
// checking that the topic it carries is the one the data names.
func (ta *tally) unwrap(ev sseclient.Event) sseclient.Event {
	if !strings.HasPrefix(ev.Data, `{"topic":`) {
		return ev
	}
	var v struct{ Topic, Data string }
	if err := json.Unmarshal([]byte(ev.Data), &v); err != nil || !strings.HasPrefix(v.Data, v.Topic+":") {
		ta.errs = append(ta.errs, fmt.Sprintf("bad named event %q (%v)", ev.Data, err))
	}
	ev.Data = v.Data
	return ev
}

// failover publishes numbered events on topics through node b while a client
// reads from node a; after a third of the events the client is cut off from
// a by cut(), and reconnects to b with its cursor.
func failover(t *testing.T, a, b *node, topics []string, perTopic int, cut func(cancelConn context.CancelFunc)) {
	t.Helper()
	failoverSub(t, a, b, topics, topics, nil, perTopic, cut)
}

// failoverSub is failover for a client subscribed to sub (topics and
// patterns), while events are published on topics from the start and on
// late only from halfway on, after the client has left node a.
func failoverSub(t *testing.T, a, b *node, sub, topics, late []string, perTopic int, cut func(cancelConn context.CancelFunc)) {
	t.Helper()
	ta := &tally{next: map[string]int{}}
	total := 0
	want := perTopic*len(topics) + (perTopic-perTopic/2)*len(late)
	done := func() bool { return total == want }
	handle := func(ev sseclient.Event) {
		if ev.Type != "message" {
			ta.errs = append(ta.errs, fmt.Sprintf("unexpected %s event %q", ev.Type, ev.Data))
			return
		}
		ta.add(ta.unwrap(ev))
		total++
	}

	// Connect to a first, and only then start publishing.
	connCtx, cancelConn := context.WithCancel(context.Background())
	defer cancelConn()
	firstOpen := make(chan struct{})
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		<-firstOpen
		for i := range perTopic {
			for _, tp := range topics {
				publish(t, b.url, tp, fmt.Sprintf("%s:%d", tp, i))
			}
			if i >= perTopic/2 {
				for _, tp := range late {
					publish(t, b.url, tp, fmt.Sprintf("%s:%d", tp, i-perTopic/2))
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()
	var cutOnce sync.Once
	var last string
	var err error
	// The checkpoint arrives before anything else: read it, then publish.
	last, err = readUntil(connCtx, eventsURL(a.url, sub...), "", func(ev sseclient.Event) {
		handle(ev)
		if total >= perTopic*len(topics)/3 {
			cutOnce.Do(func() { go cut(cancelConn) })
		}
	}, done, firstOpen)
	t.Logf("left node a after %d events (%v), cursor %q", total, err, last)
	// Like an EventSource's retry delay: events keep being published while
	// the client is away, so resuming must fetch them.
	time.Sleep(50 * time.Millisecond)
	if last == "" {
		t.Fatal("no cursor from node a")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for !done() && ctx.Err() == nil {
		last, err = readUntil(ctx, eventsURL(b.url, sub...), last, handle, done)
		if err != nil && !done() {
			time.Sleep(10 * time.Millisecond)
		}
	}
	<-pubDone
	if len(ta.errs) > 0 {
		t.Fatalf("%d problems, first: %v", len(ta.errs), ta.errs[:min(5, len(ta.errs))])
	}
	for _, tp := range topics {
		if ta.next[tp] != perTopic {
			t.Fatalf("%s: received %d of %d", tp, ta.next[tp], perTopic)
		}
	}
	for _, tp := range late {
		if ta.next[tp] != perTopic-perTopic/2 {
			t.Fatalf("%s (first published after the client left node a): received %d of %d", tp, ta.next[tp], perTopic-perTopic/2)
		}
	}
}

func twoNodes(t *testing.T) (*node, *node) {
	srv := redistest.Start(t)
	env := map[string]string{"GATEWAY_REDIS_URL": srv.URL(), "GATEWAY_INSECURE_NO_AUTH": "true", "GATEWAY_REDIS_PREFIX": "e2e:"}
	return startRun(t, env), startRun(t, env)
}

func TestRun_failover_nodeStopped(t *testing.T) {
	for _, topics := range [][]string{{"orders"}, {"a", "b/c", "d:e"}} {
		t.Run(strings.Join(topics, "+"), func(t *testing.T) {
			a, b := twoNodes(t)
			failover(t, a, b, topics, 200, func(context.CancelFunc) { a.stop() })
		})
	}
}

// TestRun_failover_patterns: a pattern client on node a, which stops; it
// resumes on node b with its cursor and gets every event of every topic the
// pattern matches exactly once, in order per topic — including a topic
// first published after it left a — alongside a plain topic on the same
// stream, and never an event of a topic the pattern does not match.
func TestRun_failover_patterns(t *testing.T) {
	a, b := twoNodes(t)
	failoverSub(t, a, b, []string{"orders/*", "news"}, []string{"orders/1", "orders/2", "news"}, []string{"orders/new"}, 150,
		func(context.CancelFunc) { a.stop() })
}

func TestRun_failover_connectionDropped(t *testing.T) {
	a, b := twoNodes(t)
	failover(t, a, b, []string{"x", "y", "z"}, 150, func(cancelConn context.CancelFunc) { cancelConn() })
}

func TestRun_trimmedCursorGivesHistoryLost(t *testing.T) {
	srv := redistest.Start(t, redistest.WithArgs("--stream-node-max-entries", "4"))
	n := startRun(t, map[string]string{"GATEWAY_REDIS_URL": srv.URL()}, "--insecure-no-auth", "--history-max-len", "10")
	first := publish(t, n.url, "t", "0")
	for i := 1; i < 60; i++ {
		publish(t, n.url, "t", strconv.Itoa(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got sseclient.Event
	_, _ = readUntil(ctx, eventsURL(n.url, "t", "u"), "", func(sseclient.Event) {}, func() bool { return true })
	// A two-topic cursor from before the trim: only t lost history.
	cursorURL := eventsURL(n.url, "t")
	_, _ = readUntil(ctx, cursorURL, first, func(ev sseclient.Event) { got = ev }, func() bool { return got.Type != "" })
	if got.Type != "history-lost" || !strings.Contains(got.Data, `"topics":["t"]`) || !strings.Contains(got.Data, `"reason":"trimmed"`) {
		t.Fatalf("got %+v, want a history-lost event for t", got)
	}
	if got.LastEventID == first || got.LastEventID == "" {
		t.Fatalf("history-lost carries cursor %q, want a fresh checkpoint", got.LastEventID)
	}
}

func TestRun_embeddedMode(t *testing.T) {
	n := startRun(t, nil)
	if !strings.Contains(n.logs.String(), "SINGLE-NODE MODE") {
		t.Fatalf("no single-node warning in:\n%s", n.logs)
	}
	res, err := http.Get(n.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !bytes.Contains(page, []byte("new EventSource(")) {
		t.Fatal("demo page does not subscribe with EventSource")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []string
	var cursor string
	opened := make(chan struct{})
	go func() {
		<-opened
		publish(t, n.url, "demo", "hello")
	}()
	cursor, err = readUntil(ctx, eventsURL(n.url, "demo"), "", func(ev sseclient.Event) { got = append(got, ev.Data) },
		func() bool { return len(got) == 1 }, opened)
	if err != nil || len(got) != 1 || got[0] != "hello" || cursor == "" {
		t.Fatalf("got %v cursor %q err %v", got, cursor, err)
	}
	// The CLI publishes through the running node when no Redis URL is set.
	var out bytes.Buffer
	if err := run(ctx, []string{"publish", "--url", n.url, "--topic", "demo", "--type", "greet", "hi"},
		func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var ev sseclient.Event
	_, _ = readUntil(ctx, eventsURL(n.url, "demo"), cursor, func(e sseclient.Event) { ev = e }, func() bool { return ev.Type != "" })
	if ev.Type != "greet" || ev.Data != "hi" || ev.LastEventID != strings.TrimSpace(out.String()) {
		t.Fatalf("replayed %+v, CLI printed %q", ev, out.String())
	}
}

func TestRun_publishCommandToRedis(t *testing.T) {
	srv := redistest.Start(t)
	var out, errOut bytes.Buffer
	getenv := func(k string) string { return map[string]string{"GATEWAY_REDIS_URL": srv.URL()}[k] }
	if err := run(context.Background(), []string{"publish", "--topic", "t", "x"}, getenv, &out, &errOut); err != nil {
		t.Fatalf("%v: %s", err, errOut.String())
	}
	id := strings.TrimSpace(out.String())
	if got := srv.Client().XRange(context.Background(), "sse:{t}:stream", id, id).Val(); len(got) != 1 || got[0].Values["d"] != "x" {
		t.Fatalf("stream holds %+v for id %q", got, id)
	}
	for _, args := range [][]string{{"publish", "x"}, {"publish", "--topic", "t"}, {"publish", "--topic", "a{b}", "x"}} {
		if err := run(context.Background(), args, getenv, io.Discard, io.Discard); err == nil {
			t.Errorf("run %v succeeded", args)
		}
	}
}

// TestRun_publishCommand_refusesInvalidUTF8: the CLI refuses data that is
// not UTF-8, saying where, on both of its paths, and publishes nothing.
// TestRun_publishCommand_onlyNamedVariables: gateway publish reads only the
// variables its help names; --topic, --type and --idempotency-key have none.
func TestRun_publishCommand_onlyNamedVariables(t *testing.T) {
	n := startRun(t, nil)
	env := map[string]string{"GATEWAY_URL": n.url, "GATEWAY_TOPIC": "t", "GATEWAY_TYPE": "status", "GATEWAY_IDEMPOTENCY_KEY": "k"}
	getenv := func(k string) string { return env[k] }
	if err := run(context.Background(), []string{"publish", "x"}, getenv, io.Discard, io.Discard); !errors.Is(err, errUsage) {
		t.Errorf("publish without --topic, GATEWAY_TOPIC set: %v, want a usage error", err)
	}
	var first, second bytes.Buffer
	for _, out := range []*bytes.Buffer{&first, &second} {
		if err := run(context.Background(), []string{"publish", "--topic", "t", "x"}, getenv, out, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	if first.String() == second.String() {
		t.Errorf("two publishes answered the same id %q: GATEWAY_IDEMPOTENCY_KEY was read", first.String())
	}
}

func TestRun_publishCommand_refusesInvalidUTF8(t *testing.T) {
	n := startRun(t, nil)
	srv := redistest.Start(t)
	ctx := context.Background()
	for _, args := range [][]string{
		{"publish", "--url", n.url, "--topic", "t", "ok \xff\xfe bad"},
		{"publish", "--url", n.url, "--topic", "t", "--type", "t\xc3", "x"},
		{"publish", "--redis-url", srv.URL(), "--topic", "t", "ok \xff\xfe bad"},
	} {
		var out bytes.Buffer
		err := run(ctx, args, func(string) string { return "" }, &out, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "not valid UTF-8: byte 0x") {
			t.Errorf("run %q = %v (printed %q), want a refusal saying where", args, err, out.String())
		}
	}
	if got := srv.Client().Exists(ctx, "sse:{t}:stream").Val(); got != 0 {
		t.Error("an event was published to Redis")
	}
	res, err := http.Get(n.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if ok := metricValue(string(text), `ssegateway_publish_total{result="ok"}`); ok != 0 {
		t.Errorf("the node published %v events", ok)
	}
}

// TestRun_publishCommand_token: through a node that requires tokens, the
// CLI is refused (401) without one, and publishes with one given by
// --token or GATEWAY_TOKEN; a token for other topics gets 403.
func TestRun_publishCommand_token(t *testing.T) {
	secret := strings.Repeat("p", 32)
	n := startRun(t, map[string]string{"GATEWAY_JWT_SECRET": secret})
	signer, err := auth.NewSigner(auth.SignerConfig{HMACSecret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	mint := func(publish string) string {
		tok, err := signer.Sign(auth.Claims{Expires: time.Now().Add(time.Hour).Unix(), SSE: &auth.SSEClaim{Publish: []string{publish}}})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	orders, news := mint("orders/**"), mint("news/*")
	eventID := regexp.MustCompile(`^[0-9]+-[0-9]+\n$`) // as the CLI prints it
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		want string // in the error; "" for success
	}{
		{"no token", nil, nil, "401 Unauthorized): publishing requires a bearer token; pass a token with --token or GATEWAY_TOKEN"},
		{"--token", nil, []string{"--token", orders}, ""},
		{"GATEWAY_TOKEN", map[string]string{"GATEWAY_TOKEN": orders}, nil, ""},
		{"--token over GATEWAY_TOKEN", map[string]string{"GATEWAY_TOKEN": news}, []string{"--token", orders}, ""},
		{"token for other topics", nil, []string{"--token", news}, "403 Forbidden): the token does not allow publishing to: orders/1"},
		{"invalid token", nil, []string{"--token", orders + "x"}, "401 Unauthorized): invalid token"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			args := append(append([]string{"publish", "--url", n.url, "--topic", "orders/1"}, c.args...), "x")
			err := run(context.Background(), args, func(k string) string { return c.env[k] }, &out, io.Discard)
			switch {
			case c.want == "" && (err != nil || !eventID.MatchString(out.String())):
				t.Fatalf("run = %v, printed %q; want an event id", err, out.String())
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("run = %v, printed %q; want an error with %q", err, out.String(), c.want)
			}
		})
	}
	if strings.Contains(n.logs.String(), orders) {
		t.Fatal("the token appears in the node's logs")
	}
}

func TestRun_refusesAnonymousWithoutFlag(t *testing.T) {
	srv := redistest.Start(t)
	err := run(context.Background(), []string{"--addr", "127.0.0.1:0"},
		func(k string) string { return map[string]string{"GATEWAY_REDIS_URL": srv.URL()}[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--insecure-no-auth") {
		t.Fatalf("run = %v, want a refusal naming --insecure-no-auth", err)
	}
}

func TestParseServe_flagsEnvDefaults(t *testing.T) {
	env := map[string]string{"GATEWAY_ADDR": ":9000", "GATEWAY_HEARTBEAT": "5s", "GATEWAY_HISTORY_MAX_LEN": "77",
		"GATEWAY_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7,fd00::/8"}
	c, err := parseServe([]string{"--heartbeat", "3s"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.addr != ":9000" || c.node.Heartbeat != 3*time.Second || c.history.maxLen != 77 || c.prefix != "sse:" {
		t.Fatalf("got addr %q heartbeat %v maxlen %d prefix %q", c.addr, c.node.Heartbeat, c.history.maxLen, c.prefix)
	}
	if got := fmt.Sprint(c.node.TrustedProxies); got != "[10.0.0.0/8 192.0.2.7/32 fd00::/8]" {
		t.Fatalf("trusted proxies %s", got)
	}
	if c.node.MaxStreamsPerClient != 100 || c.node.BodyTimeout != 30*time.Second || c.node.MinBodyRate != 1024 {
		t.Fatalf("max streams per client %d, body timeout %v, min body rate %d; want the defaults 100, 30s, 1024",
			c.node.MaxStreamsPerClient, c.node.BodyTimeout, c.node.MinBodyRate)
	}
	if c, err := parseServe([]string{"--max-streams-per-client", "0"}, func(string) string { return "" }, io.Discard); err != nil ||
		c.node.MaxStreamsPerClient >= 0 {
		t.Fatalf("--max-streams-per-client 0 gives %+v, %v; want unbounded", c, err)
	}
	bad := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, map[string]string{"GATEWAY_HEARTBEAT": "soon"}, "GATEWAY_HEARTBEAT"},
		{[]string{"--heartbeat", "0s"}, nil, "--heartbeat"},
		{[]string{"--max-queue-bytes", "10"}, nil, "--max-queue-bytes"},
		{[]string{"--history-max-len", "-1"}, nil, "--history-max-len"},
		{[]string{"--drain-period", "20s"}, nil, "--drain-period"},
		{[]string{"--trusted-proxies", "10.0.0.0/8,proxy.local"}, nil, "--trusted-proxies"},
		{[]string{"--max-streams-per-client", "-1"}, nil, "--max-streams-per-client"},
		{[]string{"--body-timeout", "0s"}, nil, "--body-timeout"},
		{[]string{"--min-body-rate", "-5"}, nil, "--min-body-rate"},
		{[]string{"--nope"}, nil, ""},
		{[]string{"extra"}, nil, ""},
	}
	for _, b := range bad {
		_, err := parseServe(b.args, func(k string) string { return b.env[k] }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), b.want) && !errors.Is(err, errUsage) {
			t.Errorf("parseServe(%v, %v) = %v, want an error about %s", b.args, b.env, err, b.want)
		}
	}
}

func TestRun_help(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-h"}, func(string) string { return "" }, io.Discard, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("run -h = %v", err)
	}
	help := out.String()
	sc := bufio.NewScanner(strings.NewReader(help))
	flags := 0
	for sc.Scan() {
		if strings.HasPrefix(strings.TrimSpace(sc.Text()), "-") {
			flags++
		}
	}
	if !strings.Contains(help, "[GATEWAY_HEARTBEAT]") {
		t.Fatal("help does not name the environment variables")
	}
	if flags < 15 {
		t.Fatalf("help lists %d flags:\n%s", flags, out.String())
	}
}

// TestRun_gapRepair_pubsubConnectionKilled kills the node's pub/sub
// connection again and again while events are published: what pub/sub
// missed must come from the stream, and the client, on one connection, must
// see every event exactly once and in order.
func TestRun_gapRepair_pubsubConnectionKilled(t *testing.T) {
	srv := redistest.Start(t)
	n := startRun(t, map[string]string{"GATEWAY_REDIS_URL": srv.URL(), "GATEWAY_INSECURE_NO_AUTH": "1"})
	rdb := srv.Client()
	keys, _ := contract.NewKeys("sse:")
	pub := pubsub.NewPublisher(rdb, pubsub.PublisherConfig{Keys: keys})
	topics := []string{"g1", "g2"}
	const perTopic = 300

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ready := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		<-ready
		for i := range perTopic {
			for _, tp := range topics {
				if _, err := pub.Publish(ctx, pubsub.Message{Topic: tp, Data: fmt.Sprintf("%s:%d", tp, i)}); err != nil {
					t.Error(err)
					return
				}
			}
			if i%50 == 25 {
				if err := rdb.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
					t.Error(err)
				}
			}
			time.Sleep(500 * time.Microsecond)
		}
	})
	ta := &tally{next: map[string]int{}}
	total := 0
	_, err := readUntil(ctx, eventsURL(n.url, topics...), "", func(ev sseclient.Event) {
		ta.add(ev)
		total++
	}, func() bool { return total == perTopic*len(topics) }, ready)
	wg.Wait()
	if err != nil || len(ta.errs) > 0 {
		t.Fatalf("after %d events: %v %v", total, err, ta.errs[:min(5, len(ta.errs))])
	}
	res, err := http.Get(n.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	disconnects := metricValue(string(metrics), "ssegateway_pubsub_disconnects_total")
	repaired := metricValue(string(metrics), "ssegateway_events_repaired_total")
	t.Logf("pub/sub disconnects %v, events repaired from the stream %v", disconnects, repaired)
	if disconnects < 1 || repaired < 1 {
		t.Fatalf("the test did not exercise repair: %v disconnects, %v repaired", disconnects, repaired)
	}
}

func metricValue(text, name string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// TestRun_streamOpenedWhileRedisDown: a stream opened while Redis is down
// stays open with heartbeats and starts when Redis is back.
func TestRun_streamOpenedWhileRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	n := startRun(t, map[string]string{"GATEWAY_REDIS_URL": srv.URL(), "GATEWAY_INSECURE_NO_AUTH": "1"}, "--heartbeat", "100ms")
	srv.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, eventsURL(n.url, "late"), nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d while Redis is down; EventSource would give up", res.StatusCode)
	}
	br := bufio.NewReader(res.Body)
	heartbeats := 0
	for heartbeats < 3 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == ":\n" {
			heartbeats++
		}
	}
	srv.Restart()
	// The stream's setup completes (its checkpoint) once Redis answers.
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "id: ") {
			break
		}
	}
	id := publish(t, n.url, "late", "after")
	p := sseclient.NewParser(br, "")
	ev, err := p.Next()
	if err != nil || ev.Data != "after" || ev.LastEventID != id {
		t.Fatalf("got %+v %v", ev, err)
	}
}

// TestMain_SIGTERM builds the binary, runs it, and stops it with SIGTERM: it
// must end its streams and exit 0.
func TestMain_SIGTERM(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "gateway")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	port := redistest.FreePort(t)
	cmd := exec.Command(bin, "--addr", fmt.Sprintf("127.0.0.1:%d", port), "--log-format", "json", "--drain-period", "200ms")
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitReady(t, base)
	res, err := http.Get(eventsURL(base, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	if !strings.Contains(string(body), "retry: ") {
		t.Fatalf("stream ended without a retry hint: %q", body)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, logs.String())
		}
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("did not exit after SIGTERM\n%s", logs.String())
	}
}

// TestRun_redisRestart: with persistence a Redis restart under an open
// stream loses nothing; without it the stream is told history was lost
// instead of going silent, and then gets every event the new history holds.
// The client stays connected throughout.
func TestRun_redisRestart(t *testing.T) {
	for _, persist := range []bool{true, false} {
		t.Run(fmt.Sprintf("persistence=%v", persist), func(t *testing.T) {
			var opts []redistest.Option
			if persist {
				opts = append(opts, redistest.WithPersistence())
			}
			srv := redistest.Start(t, opts...)
			n := startRun(t, map[string]string{"GATEWAY_REDIS_URL": srv.URL(), "GATEWAY_INSECURE_NO_AUTH": "1"})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			opened := make(chan struct{})
			events := make(chan sseclient.Event, 1000)
			go func() {
				_, _ = readUntil(ctx, eventsURL(n.url, "r"), "", func(ev sseclient.Event) { events <- ev }, func() bool { return false }, opened)
			}()
			<-opened
			next := func() sseclient.Event {
				select {
				case ev := <-events:
					return ev
				case <-ctx.Done():
					t.Fatal("timed out waiting for an event")
				}
				return sseclient.Event{}
			}
			for i := range 5 {
				publish(t, n.url, "r", fmt.Sprintf("r:%d", i))
			}
			for i := range 5 {
				if ev := next(); ev.Data != fmt.Sprintf("r:%d", i) {
					t.Fatalf("before restart: %+v", ev)
				}
			}
			srv.Restart()
			waitReady(t, n.url)
			for i := 5; i < 10; i++ {
				publish(t, n.url, "r", fmt.Sprintf("r:%d", i))
			}
			first := next()
			if persist {
				// Exact: the next event follows on.
				if first.Data != "r:5" {
					t.Fatalf("after a restart with persistence: %+v, want r:5", first)
				}
				for i := 6; i < 10; i++ {
					if ev := next(); ev.Data != fmt.Sprintf("r:%d", i) {
						t.Fatalf("after restart: %+v", ev)
					}
				}
				return
			}
			// The history the node was following is gone: said in-band, at
			// the start of the new history, and every event published since
			// the restart follows — none of what survived is skipped.
			if first.Type != "history-lost" || !strings.Contains(first.Data, `"topics":["r"]`) || first.LastEventID != "0-0" {
				t.Fatalf("after a restart without persistence: %+v, want history-lost at 0-0", first)
			}
			for i := 5; i < 10; i++ {
				if ev := next(); ev.Data != fmt.Sprintf("r:%d", i) {
					t.Fatalf("after history-lost: %+v, want r:%d", ev, i)
				}
			}
			publish(t, n.url, "r", "r:after")
			if ev := next(); ev.Data != "r:after" {
				t.Fatalf("live after the loss: %+v", ev)
			}
		})
	}
}

// TestRun_reconnectStorm: 300 clients reconnect to one node at the same
// moment with the same cursor, as when their node died. Every one must get
// exactly what it missed, then live events; the node's metrics show how many
// history reads served them.
func TestRun_reconnectStorm(t *testing.T) {
	// A topic, and a pattern over two topics: the pattern's clients read
	// the feed, and share those reads just the same.
	for _, c := range []struct {
		name string
		sub  string
		pick func(i int) string // the topic of the i-th event
	}{
		{"topic", "storm", func(int) string { return "storm" }},
		{"pattern", "storm/*", func(i int) string { return []string{"storm/a", "storm/b"}[i%2] }},
	} {
		t.Run(c.name, func(t *testing.T) { reconnectStorm(t, c.sub, c.pick) })
	}
}

func reconnectStorm(t *testing.T, sub string, pick func(i int) string) {
	srv := redistest.Start(t)
	// 300 clients from one address: past the default per-client limit.
	n := startRun(t, map[string]string{"GATEWAY_REDIS_URL": srv.URL(), "GATEWAY_INSECURE_NO_AUTH": "1"}, "--max-streams-per-client", "0")
	var ids []string
	count := map[string]int{}
	publishNext := func(i int) string {
		tp := pick(i)
		id := publish(t, n.url, tp, fmt.Sprintf("%s:%d", tp, count[tp]))
		count[tp]++
		return id
	}
	for i := range 50 {
		ids = append(ids, publishNext(i))
	}
	const clients = 300
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := make(chan struct{})
	replayed := make(chan struct{}, clients)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			<-start
			ta := &tally{next: map[string]int{pick(0): 1}}
			got := 0
			_, err := readUntil(ctx, eventsURL(n.url, sub), ids[0], func(ev sseclient.Event) {
				ta.add(ta.unwrap(ev))
				got++
				if got == 49 {
					replayed <- struct{}{}
				}
			}, func() bool { return got == 59 })
			if err == nil && len(ta.errs) > 0 {
				err = fmt.Errorf("%v", ta.errs[0])
			}
			errs <- err
		})
	}
	close(start)
	for range clients {
		select {
		case <-replayed:
		case <-ctx.Done():
			t.Fatal("not every client got its replay")
		}
	}
	for i := 50; i < 60; i++ {
		publishNext(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	res, err := http.Get(n.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(res.Body)
	res.Body.Close()
	own := metricValue(string(text), `ssegateway_replay_reads_total{shared="false"}`)
	shared := metricValue(string(text), `ssegateway_replay_reads_total{shared="true"}`)
	t.Logf("%d reconnecting clients were served by %v history reads (%v shared)", clients, own, shared)
	if own+shared != clients {
		t.Fatalf("replay reads %v + %v, want one per client", own, shared)
	}
}

// TestRun_auth: a node configured with a rotated secret file and a public
// topic pattern, through run().
func TestRun_auth(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	oldSecret, newSecret := strings.Repeat("o", 32), strings.Repeat("n", 32)
	secrets := filepath.Join(dir, "secrets")
	if err := os.WriteFile(secrets, []byte(newSecret+"\n"+oldSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := startRun(t, map[string]string{"GATEWAY_REDIS_URL": srv.URL(), "GATEWAY_JWT_SECRET_FILE": secrets},
		"--public-topics", "status,news/*")
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"exp": time.Now().Add(time.Hour).Unix(), "sse": map[string]any{"subscribe": []string{"orders/*"}},
	}).SignedString([]byte(oldSecret))
	if err != nil {
		t.Fatal(err)
	}
	status := func(path, token string) int {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.url+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for path, want := range map[string]int{"/events?topic=status": 200, "/events?topic=news/x": 200, "/events?topic=orders/1": 401} {
		if got := status(path, ""); got != want {
			t.Errorf("GET %s without a token: %d, want %d", path, got, want)
		}
	}
	if got := status("/events?topic=orders/1", tok); got != 200 {
		t.Errorf("token signed with the older secret: %d", got)
	}
	if got := status("/events?topic=orders/1/2", tok); got != 403 {
		t.Errorf("token for orders/* asking orders/1/2: %d", got)
	}
	if out := n.logs.String(); strings.Contains(out, tok) || strings.Contains(out, oldSecret) {
		t.Fatal("a token or secret appears in the logs")
	}
}

// TestRun_keyInjection throws hostile topic names and cursors at a node and
// shows that nothing outside its prefix is ever touched in Redis.
func TestRun_keyInjection(t *testing.T) {
	srv := redistest.Start(t)
	n := startRun(t, map[string]string{"GATEWAY_REDIS_URL": srv.URL(), "GATEWAY_INSECURE_NO_AUTH": "1", "GATEWAY_REDIS_PREFIX": "inj:"})
	hostile := []string{
		"a}b", "{x}", "a{b", "x}:stream", "}:events", "inj:{other}", "sse:{evil}:stream", "*", "a*", "?", "[a]", "a\x00b",
		"a\nb", "a\rb", " a", "a ", "a\tb", "a%00b", "\\", "a\"b", "é", "a,b", strings.Repeat("x", 10000), "",
	}
	for _, topic := range hostile {
		res, err := http.Get(n.url + "/events?topic=" + url.QueryEscape(topic))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("subscribe to %q: %d, want 400", topic[:min(len(topic), 40)], res.StatusCode)
		}
		body, _ := json.Marshal(map[string]string{"topic": topic, "data": "x"})
		res, err = http.Post(n.url+"/publish", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest && res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("publish to %q: %d, want 400", topic[:min(len(topic), 40)], res.StatusCode)
		}
	}
	// Odd but valid names stay inside the prefix and their hash tag.
	for _, topic := range []string{"../../etc/passwd", "inj:x", "a:stream", "x=1+2@y~z", strings.Repeat("y", 256)} {
		publish(t, n.url, topic, "x")
	}
	// Hostile cursors on a valid topic: answered in-band, never a key.
	publish(t, n.url, "ok", "x")
	for _, cursor := range []string{"*", "m1.*", "m1.{x}1", "0-0}", "inj:{a}", strings.Repeat("9", 5000), "1-1 OR 1=1"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var got sseclient.Event
		_, _ = readUntil(ctx, eventsURL(n.url, "ok", "ok2"), cursor, func(ev sseclient.Event) { got = ev }, func() bool { return got.Type != "" })
		cancel()
		if got.Type != "history-lost" || !strings.Contains(got.Data, "invalid-cursor") {
			t.Errorf("cursor %q: got %+v, want a history-lost event", cursor[:min(len(cursor), 20)], got)
		}
	}
	rdb := srv.Client()
	keys, err := rdb.Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	channels, err := rdb.PubSubChannels(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range append(keys, channels...) {
		if !strings.HasPrefix(k, "inj:{") {
			t.Errorf("key or channel %q is outside the prefix", k)
		}
	}
	if len(keys) == 0 || len(channels) == 0 {
		t.Fatalf("the test touched no keys (%v) or channels (%v)", keys, channels)
	}
}

// TestRun_contractV1Publisher: a service still on the version 1 script
// publishes to a topic with "/"; the node bridges it, and its clients — of
// the topic and of a pattern over it — get each event once, with the id it
// was published with.
func TestRun_contractV1Publisher(t *testing.T) {
	v1, err := os.ReadFile("../../pubsub/testdata/publish_v1.lua")
	if err != nil {
		t.Fatal(err)
	}
	srv := redistest.Start(t)
	n := startRun(t, map[string]string{"GATEWAY_REDIS_URL": srv.URL(), "GATEWAY_INSECURE_NO_AUTH": "1"})
	rdb := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events := make(chan sseclient.Event, 100)
	opened := make(chan struct{})
	go func() {
		_, _ = readUntil(ctx, eventsURL(n.url, "orders/*", "orders/42"), "", func(ev sseclient.Event) { events <- ev },
			func() bool { return false }, opened)
	}()
	<-opened
	testutil.WaitFor(t, "the bridge's pattern subscription", func() bool { return strings.Contains(rdb.ClientList(ctx).Val(), "psub=1") })
	var ids []string
	for i := range 3 {
		k := []string{"sse:{orders/42}:stream", "sse:{orders/42}:last", "sse:{orders/42}:events", fmt.Sprintf("sse:{orders/42}:idem:%d", i)}
		id, err := rdb.Eval(ctx, string(v1), k, "", fmt.Sprintf("orders/42:%d", i), 10000, 86400000, "PUBLISH", 60000).Text()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	ta := &tally{next: map[string]int{}}
	for i := range 3 {
		select {
		case ev := <-events:
			ta.add(ta.unwrap(ev))
			if len(ta.errs) > 0 {
				t.Fatalf("event %d: %+v: %v", i, ev, ta.errs)
			}
		case <-ctx.Done():
			t.Fatalf("got %d of 3 events published with contract v1", i)
		}
	}
	// Each once: a fourth would be a duplicate.
	publish(t, n.url, "orders/42", "orders/42:3")
	if ev := ta.unwrap(<-events); ev.Data != "orders/42:3" {
		t.Fatalf("after the bridged events: %+v", ev)
	}
	got, _ := rdb.XRange(ctx, "sse:{orders}/42:stream", "-", "+").Result()
	for i, id := range ids {
		if got[i].ID != id {
			t.Errorf("event %d has id %s in version 2, want the version 1 id %s", i, got[i].ID, id)
		}
	}
	if m := metricValue(scrape(t, n.url), "ssegateway_contract_v1_events_bridged_total"); m != 3 {
		t.Errorf("bridged metric %v, want 3", m)
	}
}

func scrape(t *testing.T, base string) string {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}
