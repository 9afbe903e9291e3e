package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/gateway/sseclient"
	"github.com/ssegateway/ssegateway/internal/testutil"
	"github.com/ssegateway/ssegateway/pubsub"
	"github.com/ssegateway/ssegateway/replay"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type testNode struct {
	url  string
	srv  *Server
	mr   *miniredis.Miniredis
	rdb  *redis.Client
	pub  *pubsub.Publisher
	stop func() // cancels Serve and waits for it; also run at cleanup
}

// nodeOptions are buildNode's less common settings.
type nodeOptions struct {
	logger       zerolog.Logger
	pingInterval time.Duration // the subscriber's; 50ms
	// publisher, if set, wraps the node's publisher.
	publisher func(*pubsub.Publisher) Publisher
	// mercure, if set, turns the Mercure endpoint on with its result,
	// given the node's Redis (for a subscriptions registry).
	mercure func(rdb redis.Cmdable) *MercureConfig
}

// buildNode builds a Server on miniredis with the real publisher, subscriber
// and store.
func buildNode(t testing.TB, cfg Config, pcfg pubsub.PublisherConfig, opts ...func(*nodeOptions)) *testNode {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	keys, _ := contract.NewKeys("t:")
	pcfg.Keys = keys
	pub := pubsub.NewPublisher(rdb, pcfg)
	o := nodeOptions{logger: zerolog.Nop(), pingInterval: 50 * time.Millisecond}
	for _, f := range opts {
		f(&o)
	}
	cfg.AllowAnonymous = cfg.Auth == nil
	if o.mercure != nil {
		cfg.Mercure = o.mercure(rdb)
	}
	if cfg.UnsubscribeGrace == 0 {
		cfg.UnsubscribeGrace = 50 * time.Millisecond
	}
	if cfg.DrainPeriod == 0 {
		cfg.DrainPeriod = 20 * time.Millisecond
	}
	var p Publisher = pub
	if o.publisher != nil {
		p = o.publisher(pub)
	}
	srv, err := NewServer(cfg, Deps{
		Publisher: p,
		Subscriber: pubsub.NewSubscriber(rdb, pubsub.SubscriberConfig{Keys: keys, Logger: zerolog.Nop(),
			PingInterval: o.pingInterval}),
		History: replay.NewRedisStore(rdb, keys),
		Ping:    func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		Logger:  o.logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &testNode{srv: srv, mr: mr, rdb: rdb, pub: pub}
}

// serveNode runs n's Server until n.stop or the end of the test.
func serveNode(t *testing.T, n *testNode) *testNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.url = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.srv.Serve(ctx, ln) }()
	var once sync.Once
	n.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(n.stop)
	return n
}

// startNode builds and serves a node until the test ends.
func startNode(t *testing.T, cfg Config, pcfg pubsub.PublisherConfig) *testNode {
	t.Helper()
	return serveNode(t, buildNode(t, cfg, pcfg))
}

func (n *testNode) publish(t *testing.T, topic, data string) string {
	t.Helper()
	id, err := n.pub.Publish(context.Background(), pubsub.Message{Topic: topic, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// collector runs an sseclient until the test ends (or stop) and records
// its events.
type collector struct {
	events chan sseclient.Event
	opens  chan struct{}
	done   chan struct{} // closed when the client has returned, with err
	err    error
	stop   func() // ends the client and waits for it; idempotent
}

func subscribe(t *testing.T, rawURL, lastEventID string) *collector {
	t.Helper()
	return subscribeWith(t, &sseclient.Client{URL: rawURL, LastEventID: lastEventID})
}

// subscribeWith runs cl (its Retry defaults to 20ms; OnOpen is the
// collector's).
func subscribeWith(t *testing.T, cl *sseclient.Client) *collector {
	t.Helper()
	c := &collector{events: make(chan sseclient.Event, 10000), opens: make(chan struct{}, 100), done: make(chan struct{})}
	if cl.Retry == 0 {
		cl.Retry = 20 * time.Millisecond
	}
	cl.OnOpen = func() { c.opens <- struct{}{} }
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(c.done)
		c.err = cl.Run(ctx, func(ev sseclient.Event) error { c.events <- ev; return nil })
	}()
	c.stop = sync.OnceFunc(func() {
		cancel()
		<-c.done
		if c.err != nil {
			t.Errorf("client: %v", c.err)
		}
	})
	t.Cleanup(c.stop)
	return c
}

func (c *collector) next(t *testing.T) sseclient.Event {
	t.Helper()
	select {
	case ev := <-c.events:
		return ev
	case <-c.done:
		t.Fatalf("client stopped: %v", c.err)
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for an event")
	}
	return sseclient.Event{}
}

// ready waits until the stream is open and its checkpoint written, so live
// events published after this are the stream's.
func (n *testNode) waitStreams(t *testing.T, want int) {
	t.Helper()
	testutil.WaitFor(t, "streams live", func() bool {
		return int(testGauge(n.srv.m.open)) == want && n.srv.hub.AllLive()
	})
}

func eventsURL(base string, topics ...string) string {
	q := url.Values{"topic": topics}
	return base + "/events?" + q.Encode()
}

func TestServer_events_liveDelivery(t *testing.T) {
	n := startNode(t, Config{}, pubsub.PublisherConfig{})
	res, err := http.Get(eventsURL(n.url, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	for k, want := range map[string]string{"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	p := sseclient.NewParser(res.Body, "")
	n.waitStreams(t, 1)
	id := n.publish(t, "a", "line1\nline2")
	ev, err := p.Next()
	if err != nil {
		t.Fatal(err)
	}
	if ev.Data != "line1\nline2" || ev.LastEventID != id || ev.Type != "message" {
		t.Fatalf("got %+v, want id %s", ev, id)
	}
	if p.Retry != 2*time.Second {
		t.Fatalf("retry %v", p.Retry)
	}
}

func TestServer_events_resumeFromCursor(t *testing.T) {
	n := startNode(t, Config{}, pubsub.PublisherConfig{})
	var idsA []string
	for i := range 5 {
		idsA = append(idsA, n.publish(t, "a", fmt.Sprint(i)))
	}
	for _, how := range []string{"header", "query"} {
		t.Run(how, func(t *testing.T) {
			u, last := eventsURL(n.url, "a"), idsA[1]
			if how == "query" {
				u, last = u+"&lastEventId="+idsA[1], ""
			}
			c := subscribe(t, u, last)
			for i := 2; i < 5; i++ {
				if ev := c.next(t); ev.Data != fmt.Sprint(i) || ev.LastEventID != idsA[i] {
					t.Fatalf("replay %d: got %+v", i, ev)
				}
			}
		})
	}
}

func TestServer_events_multiTopicResume(t *testing.T) {
	n := startNode(t, Config{}, pubsub.PublisherConfig{})
	c := subscribe(t, eventsURL(n.url, "a", "b", "c"), "")
	n.waitStreams(t, 1)
	n.publish(t, "a", "a0")
	n.publish(t, "b", "b0")
	ev := c.next(t)
	ev2 := c.next(t)
	if ev.Data != "a0" || ev2.Data != "b0" {
		t.Fatalf("got %+v %+v", ev, ev2)
	}
	// Published while the client is away: a1 and c0.
	n.publish(t, "a", "a1")
	n.publish(t, "c", "c0")
	r := subscribe(t, eventsURL(n.url, "c", "b", "a"), ev2.LastEventID)
	got := map[string]bool{}
	for range 2 {
		got[r.next(t).Data] = true
	}
	if !got["a1"] || !got["c0"] {
		t.Fatalf("resume got %v, want a1 and c0", got)
	}
	select {
	case ev := <-r.events:
		t.Fatalf("unexpected extra event %+v", ev)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestServer_events_invalidCursorGivesHistoryLost(t *testing.T) {
	n := startNode(t, Config{}, pubsub.PublisherConfig{})
	n.publish(t, "a", "old")
	c := subscribe(t, eventsURL(n.url, "a", "b"), "not-a-cursor")
	ev := c.next(t)
	var hl historyLost
	if ev.Type != "history-lost" || json.Unmarshal([]byte(ev.Data), &hl) != nil ||
		strings.Join(hl.Topics, ",") != "a,b" || hl.Reason != "invalid-cursor" {
		t.Fatalf("got %+v", ev)
	}
	n.waitStreams(t, 1)
	n.publish(t, "b", "new")
	if ev := c.next(t); ev.Data != "new" {
		t.Fatalf("after history-lost got %+v", ev)
	}
}

func TestServer_events_trimmedCursorGivesHistoryLost(t *testing.T) {
	n := startNode(t, Config{}, pubsub.PublisherConfig{MaxLen: 1})
	first := n.publish(t, "a", "0")
	for i := 1; i < 300; i++ { // MAXLEN ~ trims whole macro nodes: publish well past one
		n.publish(t, "a", fmt.Sprint(i))
	}
	kept, _ := n.rdb.XRange(context.Background(), "t:{a}:stream", "-", "+").Result()
	c := subscribe(t, eventsURL(n.url, "a"), first)
	ev := c.next(t)
	if ev.Type != "history-lost" || !strings.Contains(ev.Data, `"reason":"trimmed"`) ||
		ev.LastEventID != kept[0].Values["p"] {
		t.Fatalf("got %+v, want history-lost placed before the oldest retained event (%v)", ev, kept[0])
	}
	// Every retained event follows the loss: none that survived is skipped.
	for _, k := range kept {
		if ev := c.next(t); ev.LastEventID != k.ID || ev.Data != k.Values["d"] {
			t.Fatalf("after history-lost got %+v, want retained %v", ev, k)
		}
	}
	n.waitStreams(t, 1)
	n.publish(t, "a", "live")
	if ev := c.next(t); ev.Data != "live" {
		t.Fatalf("after history-lost got %+v", ev)
	}
}

func TestServer_events_badRequests(t *testing.T) {
	n := startNode(t, Config{MaxTopics: 2}, pubsub.PublisherConfig{})
	cases := map[string]string{
		"/events":                                   "at least one topic",
		"/events?topic=":                            "topic is empty",
		"/events?topic=a%7Bb":                       "'{'",
		"/events?topic=a&topic=b&topic=c":           "at most 2",
		"/events?topic=" + strings.Repeat("x", 300): "at most 256",
		"/events?topic=a%00b":                       "at byte 1",
	}
	for path, want := range cases {
		res, err := http.Get(n.url + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), want) ||
			!strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
			t.Errorf("GET %s: %d %s, want 400 mentioning %s", path, res.StatusCode, body, want)
		}
	}
}

func TestServer_publish(t *testing.T) {
	n := startNode(t, Config{MaxPublishBytes: 2048}, pubsub.PublisherConfig{MaxDataBytes: 100})
	cases := []struct {
		name, body string
		status     int
		want       string
	}{
		{"string data", `{"topic":"a","data":"hi\nthere"}`, 200, "hi\nthere"},
		{"object data", `{"topic":"a","data": {"x": [1, 2]} }`, 200, `{"x":[1,2]}`},
		{"number data", `{"topic":"a","type":"n","data":42}`, 200, "42"},
		{"null data", `{"topic":"a","data":null}`, 200, "null"},
		{"empty body", ``, 400, "body is empty"},
		{"not json", `topic=a`, 400, "not valid JSON"},
		{"truncated", `{"topic":"a"`, 400, "not valid JSON"},
		{"unknown field", `{"topic":"a","data":"x","extra":1}`, 400, `unknown field "extra"`},
		{"no data", `{"topic":"a"}`, 400, `"data" is required`},
		{"no topic", `{"data":"x"}`, 400, "topic is empty"},
		{"bad topic", `{"topic":"a}b","data":"x"}`, 400, "'}'"},
		{"topic not string", `{"topic":5,"data":"x"}`, 400, `"topic" must be a JSON string`},
		{"array body", `[1]`, 400, "JSON object"},
		{"two objects", `{"topic":"a","data":"x"}{}`, 400, "single JSON object"},
		{"reserved type", `{"topic":"a","type":"history-lost","data":"x"}`, 400, "reserved"},
		{"type with newline", `{"topic":"a","type":"a\nb","data":"x"}`, 400, "control characters"},
		{"data too large", `{"topic":"a","data":"` + strings.Repeat("x", 101) + `"}`, 413, "at most 100"},
		{"body too large", `{"topic":"a","data":"` + strings.Repeat("x", 3000) + `"}`, 413, "larger than 2048"},
		// SSE is UTF-8: what is not UTF-8 text is refused, saying where,
		// never replaced with U+FFFD.
		{"invalid bytes in data", "{\"topic\":\"a\",\"data\":\"\xff\xfe bad\"}", 400, `"data" is not valid UTF-8: byte 0xff at offset 0`},
		{"truncated sequence in data", "{\"topic\":\"a\",\"data\":\"ok \xe2\x82\"}", 400, `"data" is not valid UTF-8: byte 0xe2 at offset 3`},
		{"lone high surrogate in data", `{"topic":"a","data":"\ud800"}`, 400, `"data" holds a lone UTF-16 surrogate (\ud800 at offset 0`},
		{"high surrogate before a letter", `{"topic":"a","data":"\ud800\u0041"}`, 400, `lone UTF-16 surrogate`},
		{"lone low surrogate in data", `{"topic":"a","data":"x\\\udc00"}`, 400, `(\udc00 at offset 3`},
		{"escaped backslash then u", `{"topic":"a","data":"\\ud800"}`, 200, `\ud800`},
		{"surrogate pair", `{"topic":"a","data":"\ud83d\ude00 \u00e9"}`, 200, "😀 é"},
		{"escaped U+FFFD is a character", `{"topic":"a","data":"\ufffd"}`, 200, "\ufffd"},
		{"invalid bytes in type", "{\"topic\":\"a\",\"type\":\"t\xff\",\"data\":\"x\"}", 400, `"type" is not valid UTF-8: byte 0xff at offset 1`},
		{"lone surrogate in type", `{"topic":"a","type":"\udbff","data":"x"}`, 400, `"type" holds a lone UTF-16 surrogate`},
		{"null type", `{"topic":"a","type":null,"data":"x"}`, 200, "x"},
		{"invalid bytes in topic", "{\"topic\":\"a\xff\",\"data\":\"x\"}", 400, `"topic" is not valid UTF-8`},
		{"invalid bytes in object data", "{\"topic\":\"a\",\"data\":{\"k\":\"\xff\"}}", 400, `"data" is not valid UTF-8: byte 0xff at offset 6 of the value`},
		{"type not a string", `{"topic":"a","type":1,"data":"x"}`, 400, `"type" must be a JSON string`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := http.Post(n.url+"/publish", "application/json", strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var out struct{ ID, Error string }
			if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if res.StatusCode != c.status {
				t.Fatalf("status %d (%+v), want %d", res.StatusCode, out, c.status)
			}
			if c.status != 200 {
				if !strings.Contains(out.Error, c.want) {
					t.Fatalf("error %q, want it to mention %q", out.Error, c.want)
				}
				return
			}
			msgs, err := n.rdb.XRevRangeN(context.Background(), "t:{a}:stream", "+", "-", 1).Result()
			if err != nil || len(msgs) != 1 || msgs[0].ID != out.ID || msgs[0].Values["d"] != c.want {
				t.Fatalf("stored %+v (%v), want id %s data %q", msgs, err, out.ID, c.want)
			}
		})
	}
}

func testGauge(c prometheus.Collector) float64 { return promtest.ToFloat64(c) }

func TestServer_Serve_shutdownEndsStreamsWithRetry(t *testing.T) {
	n := startNode(t, Config{Retry: time.Second}, pubsub.PublisherConfig{})
	res, err := http.Get(eventsURL(n.url, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	n.waitStreams(t, 1)
	go n.stop()
	body, _ := io.ReadAll(res.Body) // ends: the node closed the stream
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	last := lines[len(lines)-1]
	ms, ok := strings.CutPrefix(last, "retry: ")
	if !ok {
		t.Fatalf("stream ended with %q, want a retry: hint", last)
	}
	if d, err := time.ParseDuration(ms + "ms"); err != nil || d < time.Second || d > 2*time.Second {
		t.Fatalf("retry hint %q, want 1x to 2x the configured 1s", ms)
	}
	n.stop()
	if got := testGauge(n.srv.m.closed.WithLabelValues(closeShutdown.String())); got != 1 {
		t.Fatalf("closed{shutdown} = %v", got)
	}
}

func TestServer_readyz(t *testing.T) {
	n := startNode(t, Config{}, pubsub.PublisherConfig{})
	base, mr := n.url, n.mr
	status := func(path string) (int, string) {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	testutil.WaitFor(t, "ready", func() bool { c, _ := status("/readyz"); return c == 200 })
	mr.Close()
	testutil.WaitFor(t, "unready", func() bool { c, b := status("/readyz"); return c == 503 && strings.Contains(b, "unreach") })
	if c, _ := status("/healthz"); c != 200 {
		t.Fatalf("healthz %d while Redis is down: liveness must not depend on Redis", c)
	}
	res, err := http.Post(base+"/publish", "application/json", strings.NewReader(`{"topic":"a","data":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 503 || !strings.Contains(string(b), "Redis is unavailable") {
		t.Fatalf("publish with Redis down: %d %s", res.StatusCode, b)
	}
}

func TestServer_publish_idempotencyKey(t *testing.T) {
	n := startNode(t, Config{}, pubsub.PublisherConfig{})
	post := func(key string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, n.url+"/publish", strings.NewReader(`{"topic":"a","data":"x"}`))
		req.Header.Set("Idempotency-Key", key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	c1, b1 := post("k-1")
	c2, b2 := post("k-1")
	if c1 != 200 || c2 != 200 || b1 != b2 {
		t.Fatalf("same key: %d %s, then %d %s; want the same id twice", c1, b1, c2, b2)
	}
	if n := n.rdb.XLen(context.Background(), "t:{a}:stream").Val(); n != 1 {
		t.Fatalf("%d events stored, want 1", n)
	}
	if c, b := post("no spaces"); c != 400 || !strings.Contains(b, "idempotency key") {
		t.Fatalf("bad key: %d %s", c, b)
	}
}

// TestServer_events_takenOverConnection: an HTTP/1.1 stream is written
// straight to the socket: no chunked framing, Connection: close, the
// response's headers as set (CORS included); and a client that goes away
// is noticed at once, though net/http no longer watches the connection.
func TestServer_events_takenOverConnection(t *testing.T) {
	n := startNode(t, Config{CORSOrigins: []string{"https://app.example"}}, pubsub.PublisherConfig{})
	u, _ := url.Parse(eventsURL(n.url, "raw"))
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nOrigin: https://app.example\r\n\r\n", u.RequestURI(), u.Host)
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || len(res.TransferEncoding) != 0 || !res.Close ||
		res.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" ||
		res.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || res.Header.Get("Date") == "" {
		t.Fatalf("response %d %v close=%v %v", res.StatusCode, res.TransferEncoding, res.Close, res.Header)
	}
	n.waitStreams(t, 1)
	id := n.publish(t, "raw", "hello")
	p := sseclient.NewParser(res.Body, "")
	if ev, err := p.Next(); err != nil || ev.Data != "hello" || ev.LastEventID != id {
		t.Fatalf("%+v %v", ev, err)
	}
	c.Close()
	testutil.WaitFor(t, "the stream to notice its client left", func() bool {
		return testGauge(n.srv.m.open) == 0 && testGauge(n.srv.m.closed.WithLabelValues("client")) == 1
	})
}

// TestServer_publish_concurrentBatched: concurrent POST /publish requests
// (gathered into pipelines) each get their own event, and every topic's
// history is a gap-free chain.
func TestServer_publish_concurrentBatched(t *testing.T) {
	n := startNode(t, Config{}, pubsub.PublisherConfig{})
	var wg sync.WaitGroup
	ids := make([]string, 200)
	for i := range ids {
		wg.Go(func() {
			body := fmt.Sprintf(`{"topic":"c%d","data":"%d"}`, i%4, i)
			res, err := http.Post(n.url+"/publish", "application/json", strings.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			defer res.Body.Close()
			var out struct{ ID string }
			if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != http.StatusOK {
				t.Errorf("publish %d: %d %v", i, res.StatusCode, err)
			}
			ids[i] = out.ID
		})
	}
	wg.Wait()
	ctx := context.Background()
	seen := map[string]bool{}
	for tp := range 4 {
		entries := n.rdb.XRange(ctx, "t:{c"+strconv.Itoa(tp)+"}:stream", "-", "+").Val()
		if len(entries) != 50 {
			t.Fatalf("c%d: %d entries", tp, len(entries))
		}
		prev := "0-0"
		for _, e := range entries {
			if e.Values["p"] != prev {
				t.Fatalf("c%d: %s names %v as previous, want %s", tp, e.ID, e.Values["p"], prev)
			}
			prev = e.ID
			seen[e.ID] = true
		}
	}
	for i, id := range ids {
		if !seen[id] {
			t.Errorf("request %d got id %q, not in its topic's stream", i, id)
		}
	}
}

// TestServer_events_publishOnOpen: an event published as soon as the
// stream is open (its response headers: EventSource's open event), with no
// other wait, reaches it — again and again, on a fresh topic and on a topic
// the node already follows.
func TestServer_events_publishOnOpen(t *testing.T) {
	n := startNode(t, Config{}, pubsub.PublisherConfig{})
	busy := subscribe(t, eventsURL(n.url, "busy"), "")
	<-busy.opens
	for i := range 30 {
		for _, topic := range []string{fmt.Sprint("fresh-", i), "busy"} {
			c := subscribe(t, eventsURL(n.url, topic), "")
			select {
			case <-c.opens:
			case <-time.After(10 * time.Second):
				t.Fatal("the stream did not open")
			}
			id := n.publish(t, topic, fmt.Sprint(i))
			if ev := c.next(t); ev.LastEventID != id || ev.Data != fmt.Sprint(i) {
				t.Fatalf("%s: got %+v, want %s", topic, ev, id)
			}
			c.stop()
			if topic == "busy" {
				if ev := busy.next(t); ev.Data != fmt.Sprint(i) {
					t.Fatalf("busy: %+v", ev)
				}
			}
		}
	}
}
