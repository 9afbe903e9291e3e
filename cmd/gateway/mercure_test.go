package main

import (
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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssegateway/ssegateway/gateway/sseclient"
	"github.com/ssegateway/ssegateway/internal/redistest"
	"github.com/ssegateway/ssegateway/internal/testutil"
	"github.com/ssegateway/ssegateway/mercure"
)

// The Mercure endpoint through run(), on real Redis: resumption across
// nodes by publisher ids, active subscriptions across nodes (and a killed
// node's expiring), authorization and refusals, and the embedded mode.

const (
	mercurePubKey = "the Mercure publishers' key, 32+ bytes"
	mercureSubKey = "the Mercure subscribers' key, 32+ bytes"
	// subscriptionsTpl is the selector of every subscription event.
	subscriptionsTpl = "/.well-known/mercure/subscriptions{/topic}{/subscriber}"
)

// mercureEnv configures a node on Redis at redisURL with the Mercure
// endpoint: the publisher key through Mercure's own variable, the
// subscriber key through ours, anonymous subscribers allowed.
func mercureEnv(redisURL string) map[string]string {
	return map[string]string{"GATEWAY_REDIS_URL": redisURL, "GATEWAY_REDIS_PREFIX": "merc:",
		"MERCURE_PUBLISHER_JWT_KEY": mercurePubKey, "GATEWAY_MERCURE_SUBSCRIBER_JWT_KEY": mercureSubKey,
		"GATEWAY_MERCURE_ANONYMOUS": "true"}
}

// hubURL is the hub's subscribe URL for the selectors, plus extra query
// parameters (name, value pairs).
func hubURL(base string, selectors []string, extra ...string) string {
	q := url.Values{"topic": selectors}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Add(extra[i], extra[i+1])
	}
	return base + mercure.HubPath + "?" + q.Encode()
}

// mercurePost posts an update's form to the hub with the bearer token tok
// and extra headers (name, value pairs); it returns the status and body.
func mercurePost(t *testing.T, base, tok string, form url.Values, header ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+mercure.HubPath, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestRun_mercure_failover: a subscriber with a URI template selector
// reads from node a while updates — matching, non-matching, and private
// ones it may not see — are published on node b with publisher-chosen ids;
// node a stops (a graceful stop through run(), or a gateway process killed
// with SIGKILL) after a third of them, and the subscriber resumes on node b
// by the last publisher id it saw. It gets every matching public update
// exactly once, in order, and nothing else.
func TestRun_mercure_failover(t *testing.T) {
	for _, how := range []string{"stopped", "killed"} {
		t.Run(how, func(t *testing.T) {
			srv := redistest.Start(t)
			env := mercureEnv(srv.URL())
			var a string
			var cut func()
			if how == "stopped" {
				n := startRun(t, env)
				a, cut = n.url, n.stop
			} else {
				a, cut = startProcess(t, buildBinary(t), env)
			}
			mercureFailover(t, a, startRun(t, env).url, cut)
		})
	}
}

func mercureFailover(t *testing.T, a, b string, cut func()) {
	t.Helper()
	pub := testutil.MercureToken(t, mercurePubKey, map[string]any{"publish": []string{"*"}}, time.Time{})
	const updates = 240 // of which matching and public: every one but every third and every fifth
	selector := []string{"https://example.com/books/{id}"}

	ta := &tally{next: map[string]int{}}
	want, total := 0, 0
	for i := range updates {
		if i%3 != 0 && i%5 != 0 {
			want++
		}
	}
	done := func() bool { return total == want }
	handle := func(ev sseclient.Event) {
		if ev.Type != "message" || !strings.HasPrefix(ev.LastEventID, "u-") {
			ta.errs = append(ta.errs, fmt.Sprintf("unexpected %s event %q id %q", ev.Type, ev.Data, ev.LastEventID))
			return
		}
		ta.add(ev)
		total++
	}
	opened := make(chan struct{})
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		<-opened
		n := 0
		for i := range updates {
			f := url.Values{"id": {fmt.Sprintf("u-%d", i)}}
			switch {
			case i%3 == 0: // another topic
				f["topic"] = []string{fmt.Sprintf("https://example.com/authors/%d", i)}
				f.Set("data", fmt.Sprintf("authors:%d", i))
			case i%5 == 0: // matching, but private
				f["topic"] = []string{fmt.Sprintf("https://example.com/books/%d", i)}
				f.Set("data", fmt.Sprintf("private:%d", i))
				f.Set("private", "on")
			default:
				f["topic"] = []string{fmt.Sprintf("https://example.com/books/%d", i%7)}
				f.Set("data", fmt.Sprintf("books:%d", n))
				n++
			}
			if status, body := mercurePost(t, b, pub, f); status != http.StatusOK || body != f.Get("id") {
				t.Errorf("publish %d: %d %q", i, status, body)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	connCtx, cancelConn := context.WithCancel(context.Background())
	defer cancelConn()
	var cutOnce sync.Once
	last, err := readUntil(connCtx, hubURL(a, selector), "", func(ev sseclient.Event) {
		handle(ev)
		if total >= want/3 {
			cutOnce.Do(func() { go cut() })
		}
	}, done, opened)
	t.Logf("left node a after %d updates (%v), last id %q", total, err, last)
	if !strings.HasPrefix(last, "u-") {
		t.Fatalf("the last id seen on node a is %q, not a publisher's", last)
	}
	time.Sleep(50 * time.Millisecond) // an EventSource's retry: updates go on meanwhile
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for !done() && ctx.Err() == nil {
		last, err = readUntil(ctx, hubURL(b, selector), last, handle, done)
		if err != nil && !done() {
			time.Sleep(10 * time.Millisecond)
		}
	}
	<-pubDone
	if len(ta.errs) > 0 {
		t.Fatalf("%d problems, first: %v", len(ta.errs), ta.errs[:min(5, len(ta.errs))])
	}
	if ta.next["books"] != want || len(ta.next) != 1 {
		t.Fatalf("received %v, want books:0..%d and nothing else", ta.next, want-1)
	}
}

// hubEvents follows a subscription until the test ends, sending its events
// to the returned channel; opened is closed at its checkpoint.
func hubEvents(t *testing.T, rawURL string) (events chan sseclient.Event, opened chan struct{}) {
	t.Helper()
	events, opened = make(chan sseclient.Event, 100), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = readUntil(ctx, rawURL, "", func(ev sseclient.Event) { events <- ev }, func() bool { return false }, opened)
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-opened:
	case <-time.After(15 * time.Second):
		t.Fatalf("%s did not open", rawURL)
	}
	return events, opened
}

// nextEvent waits for an event, for up to 30 seconds.
func nextEvent(t *testing.T, events chan sseclient.Event) sseclient.Event {
	t.Helper()
	select {
	case ev := <-events:
		return ev
	case <-time.After(30 * time.Second):
		t.Fatal("timed out waiting for an event")
	}
	return sseclient.Event{}
}

// listSubscriptions reads the subscriptions API's collection on base.
func listSubscriptions(t *testing.T, base, tok string) mercure.Collection {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+mercure.SubscriptionsPath, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var col mercure.Collection
	if err := json.NewDecoder(res.Body).Decode(&col); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", base+mercure.SubscriptionsPath, res.StatusCode, err)
	}
	return col
}

// subscribers maps the collection's subscriber ids to their topics.
func subscribers(col mercure.Collection) map[string][]string {
	out := map[string][]string{}
	for _, s := range col.Subscriptions {
		out[s.Subscriber] = append(out[s.Subscriber], s.Topic)
	}
	return out
}

// buildBinary builds the gateway command once per test.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gateway")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// startProcess runs the gateway binary with env (added to the test's own)
// and args, until the test ends or the returned kill; it returns its base
// URL once ready.
func startProcess(t *testing.T, bin string, env map[string]string, args ...string) (base string, kill func()) {
	t.Helper()
	port := redistest.FreePort(t)
	cmd := exec.Command(bin, append([]string{"--addr", fmt.Sprintf("127.0.0.1:%d", port), "--log-format", "json"}, args...)...)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	kill = sync.OnceFunc(func() { _ = cmd.Process.Kill(); <-exited })
	t.Cleanup(func() {
		kill()
		if t.Failed() {
			t.Logf("gateway process log:\n%s", logs.String())
		}
	})
	base = fmt.Sprintf("http://127.0.0.1:%d", port)
	waitReady(t, base)
	return base, kill
}

// TestRun_mercure_subscriptionsAcrossNodes: with active subscriptions on,
// every node lists every node's subscribers, and subscription events cross
// nodes; when a node is killed (no chance to say goodbye), its subscribers
// expire after its lease: another node publishes the end of their
// subscriptions and stops listing them.
func TestRun_mercure_subscriptionsAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	env := mercureEnv(srv.URL())
	args := []string{"--mercure-subscriptions", "--mercure-subscriptions-lease", "2s"}
	bin := buildBinary(t)
	a, killA := startProcess(t, bin, env, args...)
	b := startRun(t, env, args...).url

	reader := testutil.MercureToken(t, mercureSubKey, map[string]any{"subscribe": []string{subscriptionsTpl}}, time.Time{})
	// The watcher, on b, with its token in the query.
	watch, _ := hubEvents(t, hubURL(b, []string{subscriptionsTpl}, "authorization", reader))
	// Alice, on a, with her token in the cookie.
	const topic = "https://example.com/alice"
	aliceTok := testutil.MercureToken(t, mercureSubKey, map[string]any{"subscribe": []string{topic}, "payload": map[string]string{"who": "alice"}}, time.Time{})
	aliceCtx, aliceGone := context.WithCancel(context.Background())
	defer aliceGone()
	req, _ := http.NewRequestWithContext(aliceCtx, http.MethodGet, hubURL(a, []string{topic}), nil)
	req.AddCookie(&http.Cookie{Name: mercure.DefaultCookieName, Value: aliceTok})
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("alice on node a: %v %v", res, err)
	}
	defer res.Body.Close()

	// Published by a, received on b.
	var on mercure.Subscription
	if err := json.Unmarshal([]byte(nextEvent(t, watch).Data), &on); err != nil || on.Topic != topic || !on.Active ||
		!bytes.Contains(on.Payload, []byte(`"alice"`)) {
		t.Fatalf("alice's connection event: %+v %v", on, err)
	}
	// Both nodes list both subscribers.
	for name, base := range map[string]string{"a": a, "b": b} {
		subs := subscribers(listSubscriptions(t, base, reader))
		if len(subs) != 2 || !slices.Equal(subs[on.Subscriber], []string{topic}) {
			t.Fatalf("node %s lists %v, want alice (%s) and the watcher", name, subs, on.Subscriber)
		}
	}

	killA()
	_, _ = io.Copy(io.Discard, res.Body) // alice's connection died with node a
	var off mercure.Subscription
	if err := json.Unmarshal([]byte(nextEvent(t, watch).Data), &off); err != nil || off.Active || off.Subscriber != on.Subscriber ||
		off.Topic != topic {
		t.Fatalf("alice's disconnection event: %+v %v", off, err)
	}
	if subs := subscribers(listSubscriptions(t, b, reader)); len(subs) != 1 || subs[on.Subscriber] != nil {
		t.Fatalf("after node a died, node b lists %v", subs)
	}
}

// TestRun_mercure_realRedis: on real Redis the Mercure keys count as
// configured authentication (/events then serves public topics only);
// private updates reach subscribers whose token — from the header, the
// query or the cookie — allows them; refusals get their statuses.
func TestRun_mercure_realRedis(t *testing.T) {
	srv := redistest.Start(t)
	n := startRun(t, mercureEnv(srv.URL()), "--max-event-bytes", "100").url

	if res, err := http.Get(eventsURL(n, "x")); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/events without auth configured beside Mercure: %v %v", res, err)
	} else {
		res.Body.Close()
	}

	const topic = "https://example.com/secret"
	allowed := testutil.MercureToken(t, mercureSubKey, map[string]any{"subscribe": []string{"https://example.com/{x}"}}, time.Time{})
	byQuery, _ := hubEvents(t, hubURL(n, []string{topic, "ctl"}, "authorization", allowed))
	anonymous, _ := hubEvents(t, hubURL(n, []string{topic, "ctl"}))
	// The cookie, through a client that sends it.
	cookieEvents := make(chan sseclient.Event, 10)
	cookieOpen := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cl := &sseclient.Client{URL: hubURL(n, []string{topic, "ctl"}), Header: http.Header{"Cookie": {mercure.DefaultCookieName + "=" + allowed}},
		OnOpen: func() { cookieOpen <- struct{}{} }}
	clDone := make(chan error, 1)
	go func() { clDone <- cl.Run(ctx, func(ev sseclient.Event) error { cookieEvents <- ev; return nil }) }()
	defer func() {
		cancel()
		if err := <-clDone; err != nil {
			t.Errorf("cookie client: %v", err)
		}
	}()
	<-cookieOpen

	pub := testutil.MercureToken(t, mercurePubKey, map[string]any{"publish": []string{"https://example.com/{x}", "ctl"}}, time.Time{})
	post := func(f url.Values) (int, string) { return mercurePost(t, n, pub, f) }
	if status, body := post(url.Values{"topic": {topic}, "id": {"secret-1"}, "data": {"s"}, "private": {"on"}}); status != 200 || body != "secret-1" {
		t.Fatalf("private publish: %d %q", status, body)
	}
	if status, _ := post(url.Values{"topic": {"ctl"}, "id": {"ctl-1"}, "data": {"c"}}); status != 200 {
		t.Fatalf("control publish: %d", status)
	}
	for name, events := range map[string]chan sseclient.Event{"query": byQuery, "cookie": cookieEvents, "anonymous": anonymous} {
		want := []string{"secret-1", "ctl-1"}
		if name == "anonymous" {
			want = want[1:]
		}
		for _, id := range want {
			if ev := nextEvent(t, events); ev.LastEventID != id {
				t.Fatalf("%s subscriber: got %+v, want %s", name, ev, id)
			}
		}
	}

	for _, c := range []struct {
		name   string
		form   url.Values
		status int
	}{
		{"outside mercure.publish", url.Values{"topic": {"https://other.example/x"}}, 403},
		{"an alternate outside mercure.publish", url.Values{"topic": {topic, "https://other.example/x"}}, 403},
		{"no topic", url.Values{"data": {"x"}}, 400},
		{"id starting with #", url.Values{"topic": {topic}, "id": {"#x"}}, 400},
		{"a hub cursor as id", url.Values{"topic": {topic}, "id": {"urn:ssegateway:cursor:1-0"}}, 400},
		{"data over --max-event-bytes", url.Values{"topic": {topic}, "data": {strings.Repeat("x", 101)}}, 413},
		{"data at --max-event-bytes, with its topic over", url.Values{"topic": {topic}, "data": {strings.Repeat("x", 100)}}, 413},
		{"bad retry", url.Values{"topic": {topic}, "retry": {"1.5"}}, 400},
	} {
		if status, body := post(c.form); status != c.status {
			t.Errorf("%s: %d %q, want %d", c.name, status, body, c.status)
		}
	}
	tooManyVars := "https://example.com/" + strings.Repeat("{a}", mercure.MaxTemplateVariables+1)
	for _, q := range []string{"", "?topic=" + url.QueryEscape(tooManyVars)} {
		res, err := http.Get(n + mercure.HubPath + q)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 400 {
			t.Errorf("subscribe %q: %d, want 400", q, res.StatusCode)
		}
	}
}

// TestRun_mercure_embedded: with no Redis, a Mercure key (even one shorter
// than 32 bytes, as Mercure accepts, with a warning) serves the hub on the
// embedded Redis.
func TestRun_mercure_embedded(t *testing.T) {
	const short = "short-mercure-key"
	n := startRun(t, map[string]string{"MERCURE_PUBLISHER_JWT_KEY": short}, "--mercure-anonymous")
	logs := n.logs.String()
	if !strings.Contains(logs, "SINGLE-NODE MODE") || !strings.Contains(logs, "shorter than 32 bytes") || strings.Contains(logs, short) {
		t.Fatalf("log lacks the single-node or short key warning, or shows the key:\n%s", logs)
	}
	events, _ := hubEvents(t, hubURL(n.url, []string{"https://example.com/{x}"}))
	tok := testutil.MercureToken(t, short, map[string]any{"publish": []string{"*"}}, time.Time{})
	if status, body := mercurePost(t, n.url, tok, url.Values{"topic": {"https://example.com/1"}, "id": {"e-1"}, "data": {"hello"}}); status != 200 || body != "e-1" {
		t.Fatalf("publish: %d %q", status, body)
	}
	if ev := nextEvent(t, events); ev.LastEventID != "e-1" || ev.Data != "hello" {
		t.Fatalf("got %+v", ev)
	}
	// Resumes by that id.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if status, _ := mercurePost(t, n.url, tok, url.Values{"topic": {"https://example.com/2"}, "id": {"e-2"}, "data": {"again"}}); status != 200 {
		t.Fatal("second publish failed")
	}
	var got sseclient.Event
	_, _ = readUntil(ctx, hubURL(n.url, []string{"https://example.com/{x}"}), "e-1", func(ev sseclient.Event) { got = ev },
		func() bool { return got.LastEventID != "" })
	if got.LastEventID != "e-2" || got.Data != "again" {
		t.Fatalf("resumed with %+v", got)
	}
}

// TestParseServe_mercure: Mercure's own variables are fallbacks of ours,
// and a bad algorithm or key stops the node at start.
func TestParseServe_mercure(t *testing.T) {
	env := map[string]string{"MERCURE_PUBLISHER_JWT_KEY": "from-mercure", "GATEWAY_MERCURE_SUBSCRIBER_JWT_KEY": "ours",
		"MERCURE_SUBSCRIBER_JWT_KEY": "theirs", "MERCURE_PUBLISHER_JWT_ALG": "HS512"}
	c, err := parseServe(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if m := c.mercure; m.pubKey != "from-mercure" || m.pubAlg != "HS512" || m.subKey != "ours" || m.subAlg != "HS256" {
		t.Fatalf("got %+v", m)
	}
	c, err = parseServe([]string{"--mercure-publisher-jwt-key", "flag"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil || c.mercure.pubKey != "flag" {
		t.Fatalf("the flag does not win: %+v %v", c.mercure, err)
	}
	for _, args := range [][]string{
		{"--mercure-publisher-jwt-key", "k", "--mercure-publisher-jwt-alg", "none"},
		{"--mercure-publisher-jwt-key", "not a PEM key", "--mercure-publisher-jwt-alg", "RS256"},
		{"--mercure-publisher-jwt-key", strings.Repeat("k", 32), "--mercure-cors-origins", "https://app.example/path"},
		{"--mercure-publisher-jwt-key", strings.Repeat("k", 32), "--mercure-subscriptions", "--mercure-subscriptions-lease", "10ms"},
	} {
		err := run(context.Background(), append([]string{"--addr", "127.0.0.1:0"}, args...), func(string) string { return "" }, io.Discard, io.Discard)
		if err == nil {
			t.Errorf("run %v started", args)
		}
	}
}
