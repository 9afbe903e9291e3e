package gateway

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssegateway/ssegateway/auth"
	"github.com/ssegateway/ssegateway/gateway/sseclient"
	"github.com/ssegateway/ssegateway/internal/testutil"
	"github.com/ssegateway/ssegateway/mercure"
	"github.com/ssegateway/ssegateway/pubsub"
)

// The Mercure endpoint through the handler, on miniredis, as a Mercure
// client sees it: Mercure's conformance cases, private updates, the
// publish statuses, resumption, where tokens come from, CORS, and active
// subscriptions.
//
// A check that an update does NOT reach a subscriber publishes, after it, a
// control update the subscriber does match, and waits for that: every
// update of the hub goes through one feed, delivered to each stream in the
// feed's order, so once the control has arrived an update published before
// it that has not arrived never will. No timed window is involved.

const (
	mercurePubKey = "the Mercure publishers' key, 32+ bytes"
	mercureSubKey = "the Mercure subscribers' key, 32+ bytes"
)

func keyVerifier(t testing.TB, key string) *auth.KeyVerifier {
	t.Helper()
	v, err := auth.NewKeyVerifier(auth.KeyConfig{Alg: "HS256", Key: []byte(key)})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// pubToken may publish to the selectors given.
func pubToken(t testing.TB, publish ...string) string {
	return testutil.MercureToken(t, mercurePubKey, map[string]any{"publish": publish}, time.Time{})
}

// subToken may receive the private updates of the selectors given.
func subToken(t testing.TB, subscribe ...string) string {
	return testutil.MercureToken(t, mercureSubKey, map[string]any{"subscribe": subscribe}, time.Time{})
}

// startMercure runs a node with the Mercure endpoint: a publisher key, a
// subscriber key, anonymous subscribers allowed; edit changes that.
func startMercure(t *testing.T, cfg Config, edit func(mc *MercureConfig, rdb redis.Cmdable)) *testNode {
	t.Helper()
	return startMercureWith(t, cfg, pubsub.PublisherConfig{}, edit)
}

// startMercureWith is startMercure with the node's publisher configured.
func startMercureWith(t *testing.T, cfg Config, pcfg pubsub.PublisherConfig, edit func(mc *MercureConfig, rdb redis.Cmdable)) *testNode {
	t.Helper()
	return serveNode(t, buildNode(t, cfg, pcfg, func(o *nodeOptions) {
		o.mercure = func(rdb redis.Cmdable) *MercureConfig {
			mc := &MercureConfig{Publisher: keyVerifier(t, mercurePubKey), Subscriber: keyVerifier(t, mercureSubKey), Anonymous: true}
			if edit != nil {
				edit(mc, rdb)
			}
			return mc
		}
	}))
}

// hubURL is the hub's subscribe URL for the topic selectors.
func hubURL(base string, topics ...string) string {
	return base + mercure.HubPath + "?" + url.Values{"topic": topics}.Encode()
}

// update is a publish form.
func update(id, data string, topics ...string) url.Values {
	v := url.Values{"topic": topics, "data": {data}}
	if id != "" {
		v.Set("id", id)
	}
	return v
}

// posted is the hub's answer to a publish.
type posted struct {
	status      int
	contentType string
	body        string
}

// mercurePost posts form to the hub with the bearer token tok (none if
// ""), and extra headers as name, value pairs.
func (n *testNode) mercurePost(t testing.TB, tok string, form url.Values, header ...string) posted {
	t.Helper()
	return n.mercurePostBody(t, tok, "application/x-www-form-urlencoded", form.Encode(), header...)
}

func (n *testNode) mercurePostBody(t testing.TB, tok, contentType, body string, header ...string) posted {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.url+mercure.HubPath, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return posted{status: res.StatusCode, contentType: res.Header.Get("Content-Type"), body: string(b)}
}

// mercurePublish publishes form with a token allowed everything and returns
// the update's id.
func (n *testNode) mercurePublish(t testing.TB, form url.Values) string {
	t.Helper()
	p := n.mercurePost(t, pubToken(t, "*"), form)
	if p.status != http.StatusOK {
		t.Fatalf("publish %v: %d %q", form, p.status, p.body)
	}
	return p.body
}

// open waits for the collector's stream to open (its response headers).
func (c *collector) open(t *testing.T) {
	t.Helper()
	select {
	case <-c.opens:
	case <-c.done:
		t.Fatalf("client stopped: %v", c.err)
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the stream to open")
	}
}

// expect reads the collector's next events and checks their ids and data
// (as "id=data").
func (c *collector) expect(t *testing.T, want ...string) {
	t.Helper()
	for _, w := range want {
		ev := c.next(t)
		if got := ev.LastEventID + "=" + ev.Data; got != w || ev.Type != "message" {
			t.Fatalf("got %s event %s, want %s", ev.Type, got, w)
		}
	}
}

func randomHex(t testing.TB) string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TestMercure_conformanceCases runs the cases of Mercure's conformance
// suite with Go clients: an anonymous subscriber opens a stream and, as
// soon as it is open (the response headers; EventSource's open event), an
// update with a publisher-chosen id is published. A matching update must
// arrive once, with that id and data; a non-matching or private one must
// not (checked with a control update, see the top of this file). The
// publish is answered 200 text/plain with the id.
func TestMercure_conformanceCases(t *testing.T) {
	n := startMercure(t, Config{}, nil)
	r := make([]string, 5)
	for i := range r {
		r[i] = randomHex(t)
	}
	cases := []struct {
		name      string
		topics    []string // the update's
		selectors []string // the subscriber's
		private   bool
		received  bool
		control   string // a topic the selectors match
	}{
		{"raw string", []string{r[0]}, []string{r[0]}, false, true, r[0]},
		{"multiple topics", []string{randomHex(t), r[1]}, []string{r[1]}, false, true, r[1]},
		{"multiple topic selectors", []string{r[2]}, []string{"foo", r[2]}, false, true, "foo"},
		{"URI", []string{"https://example.net/foo/" + r[3]}, []string{"https://example.net/foo/" + r[3]}, false, true,
			"https://example.net/foo/" + r[3]},
		{"URI template", []string{"https://example.net/foo/" + r[4]}, []string{"https://example.net/foo/{random}"}, false, true,
			"https://example.net/foo/control"},
		{"nonmatching raw string", []string{"will-not-match}"}, []string{"another-name"}, false, false, "another-name"},
		{"nonmatching URI", []string{"https://example.net/foo/will-not-match}"}, []string{"https://example.net/foo/another-name"}, false, false,
			"https://example.net/foo/another-name"},
		{"nonmatching URI template", []string{"https://example.net/foo/will-not-match}"}, []string{"https://example.net/bar/{var}"}, false, false,
			"https://example.net/bar/control"},
		{"private raw string", []string{r[0]}, []string{r[0]}, true, false, r[0]},
		{"private URI", []string{"https://example.net/foo/" + r[3]}, []string{"https://example.net/foo/" + r[3]}, true, false,
			"https://example.net/foo/" + r[3]},
		{"private URI template", []string{"https://example.net/foo/" + r[4]}, []string{"https://example.net/foo/{random}"}, true, false,
			"https://example.net/foo/control"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := subscribe(t, hubURL(n.url, tc.selectors...), "")
			c.open(t) // no other wait: the stream is the hub's once open
			topicsJSON, _ := json.Marshal(tc.topics)
			id := "id-" + string(topicsJSON)
			data := "data for\n\n        " + tc.name
			form := update(id, data, tc.topics...)
			if tc.private {
				form.Set("private", "on")
			}
			p := n.mercurePost(t, pubToken(t, "*"), form)
			if p.status != http.StatusOK || !strings.HasPrefix(p.contentType, "text/plain") || p.body != id {
				t.Fatalf("publish: %d %q %q, want 200 text/plain %q", p.status, p.contentType, p.body, id)
			}
			if tc.received {
				c.expect(t, id+"="+data)
			}
			// Nothing else (not the update again, not a non-matching one)
			// arrives before a control published after it.
			ctl := n.mercurePublish(t, update("control-"+tc.name, "control", tc.control))
			c.expect(t, ctl+"=control")
		})
	}
}

// TestMercure_privateUpdates: a private update reaches only subscribers
// whose topic selectors match one of its topics and whose token's
// mercure.subscribe matches one of its topics — canonical or alternate,
// not necessarily the same one; anonymous subscribers never get it.
func TestMercure_privateUpdates(t *testing.T) {
	n := startMercure(t, Config{}, nil)
	const books = "https://example.com/books/{id}"
	sub := func(tok string) *collector {
		cl := &sseclient.Client{URL: hubURL(n.url, books)}
		if tok != "" {
			cl.Header = http.Header{"Authorization": {"Bearer " + tok}}
		}
		return subscribeWith(t, cl)
	}
	subs := map[string]*collector{
		"book1":   sub(subToken(t, "https://example.com/books/1")),
		"authors": sub(subToken(t, "https://example.com/authors/{id}")),
		"all":     sub(subToken(t, "*")),
		"anon":    sub(""),
	}
	n.waitStreams(t, len(subs))
	private := func(id string, topics ...string) {
		f := update(id, id, topics...)
		f.Set("private", "")
		n.mercurePublish(t, f)
	}
	private("p1", "https://example.com/books/1")                                  // canonical matches book1's claim
	private("p2", "https://example.com/books/2", "https://example.com/authors/7") // alternate matches authors' claim
	private("p3", "https://example.com/other", "https://example.com/books/1")     // selector and claim match the alternate
	private("p4", "https://example.com/books/3")                                  // only "*"
	private("p5", "https://example.com/authors/7")                                // a claim alone is not enough
	n.mercurePublish(t, update("public", "public", "https://example.com/books/9"))
	want := map[string][]string{
		"book1":   {"p1=p1", "p3=p3", "public=public"},
		"authors": {"p2=p2", "public=public"},
		"all":     {"p1=p1", "p2=p2", "p3=p3", "p4=p4", "public=public"},
		"anon":    {"public=public"},
	}
	for name, c := range subs {
		t.Run(name, func(t *testing.T) { c.expect(t, want[name]...) })
	}
}

// TestMercure_publishStatuses: every refusal gets its status and a
// text/plain body saying why, is counted in
// ssegateway_mercure_publish_total{result}, and publishes nothing.
func TestMercure_publishStatuses(t *testing.T) {
	// As the gateway command configures it: one limit on events, for the
	// update's data and for what the engine stores.
	n := startMercureWith(t, Config{MaxPublishBytes: 64 << 10}, pubsub.PublisherConfig{MaxDataBytes: 1024},
		func(mc *MercureConfig, _ redis.Cmdable) { mc.MaxDataBytes = 1024 })
	all := subscribeWith(t, &sseclient.Client{URL: hubURL(n.url, "*"),
		Header: http.Header{"Authorization": {"Bearer " + subToken(t, "*")}}})
	n.waitStreams(t, 1)

	star := pubToken(t, "*")
	books := pubToken(t, "https://example.com/books/{id}")
	form := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	manyTopics := url.Values{"topic": slices.Repeat([]string{"t"}, mercure.MaxPublishTopics+1)}.Encode()
	type tc struct {
		name        string
		tok         string
		contentType string // form if empty
		body        string
		header      []string
		status      int
		mention     string
		result      string // the metric's label
	}
	cases := []tc{
		{name: "no token", body: form("topic", "a"), status: 401, mention: "Unauthorized", result: "unauthorized"},
		{name: "garbage token", tok: "not.a.jwt", body: form("topic", "a"), status: 401, result: "unauthorized"},
		{name: "subscriber's key", tok: subToken(t, "*"), body: form("topic", "a"), status: 401, result: "unauthorized"},
		{name: "no mercure claim", tok: testutil.MercureToken(t, mercurePubKey, nil, time.Time{}), body: form("topic", "a"), status: 401, result: "unauthorized"},
		{name: "expired", tok: testutil.MercureToken(t, mercurePubKey, map[string]any{"publish": []string{"*"}}, time.Now().Add(-time.Minute)),
			body: form("topic", "a"), status: 401, result: "unauthorized"},
		{name: "two Authorization headers", tok: star, header: []string{"Authorization", "Bearer " + star}, body: form("topic", "a"),
			status: 401, result: "unauthorized"},
		{name: "topic outside mercure.publish", tok: books, body: form("topic", "https://example.com/authors/1"),
			status: 403, mention: "not allow", result: "forbidden"},
		{name: "an alternate outside mercure.publish", tok: books,
			body: form("topic", "https://example.com/books/1", "topic", "https://example.com/authors/1"), status: 403, result: "forbidden"},
		{name: "empty mercure.publish", tok: testutil.MercureToken(t, mercurePubKey, map[string]any{"publish": []string{}}, time.Time{}), body: form("topic", "a"), status: 403, result: "forbidden"},
		{name: "no topic", tok: star, body: form("data", "x"), status: 400, mention: `Missing "topic" parameter`, result: "invalid"},
		{name: "JSON body", tok: star, contentType: "application/json", body: `{"topic":"a"}`, status: 400, mention: `"topic"`, result: "invalid"},
		{name: "bad Content-Type", tok: star, contentType: "a/b; ;", body: form("topic", "a"), status: 400, result: "invalid"},
		{name: "bad form", tok: star, body: "topic=a&data=%zz", status: 400, result: "invalid"},
		{name: "too many topics", tok: star, body: manyTopics, status: 400, mention: "too many topics", result: "invalid"},
		{name: "id starting with #", tok: star, body: form("topic", "a", "id", "#frag"), status: 400, mention: `"#"`, result: "invalid"},
		{name: "a hub cursor as id", tok: star, body: form("topic", "a", "id", "urn:ssegateway:cursor:1-0"), status: 400,
			mention: "urn:ssegateway:cursor:", result: "invalid"},
		{name: "earliest as id", tok: star, body: form("topic", "a", "id", "earliest"), status: 400, mention: "earliest", result: "invalid"},
		{name: "newline in id", tok: star, body: form("topic", "a", "id", "a\nid: b"), status: 400, mention: "control character", result: "invalid"},
		{name: "newline in type", tok: star, body: form("topic", "a", "type", "a\rdata: x"), status: 400, mention: "control character", result: "invalid"},
		{name: "bad retry", tok: star, body: form("topic", "a", "retry", "soon"), status: 400, mention: `Invalid "retry"`, result: "invalid"},
		{name: "negative retry", tok: star, body: form("topic", "a", "retry", "-1"), status: 400, result: "invalid"},
		{name: "reserved topic", tok: star, body: form("topic", "https://example.com/.well-known/mercure/subscriptions/x"), status: 403,
			mention: "reserved", result: "invalid"},
		{name: "data too large", tok: star, body: form("topic", "a", "data", strings.Repeat("x", 1025)), status: 413, mention: "1024", result: "invalid"},
		{name: "update too large with its topic", tok: star, body: form("topic", strings.Repeat("t", 100), "data", strings.Repeat("x", 1000)),
			status: 413, mention: "with its topics", result: "invalid"},
		{name: "body too large", tok: star, body: form("topic", "a", "filler", strings.Repeat("x", 64<<10)), status: 413, result: "invalid"},
		{name: "ok", tok: star, body: form("topic", "a", "id", "ok-1", "data", "one", "retry", "5000", "type", "t"), status: 200, mention: "ok-1", result: "ok"},
		{name: "ok by template", tok: books, body: form("topic", "https://example.com/books/1", "id", "ok-2", "data", "two"), status: 200,
			mention: "ok-2", result: "ok"},
		{name: "ok without id", tok: star, body: form("topic", "a", "data", "three"), status: 200, mention: "urn:uuid:", result: "ok"},
	}
	counts := map[string]float64{}
	var generated string
	for _, c := range cases {
		ct := c.contentType
		if ct == "" {
			ct = "application/x-www-form-urlencoded"
		}
		p := n.mercurePostBody(t, c.tok, ct, c.body, c.header...)
		if p.status != c.status || !strings.HasPrefix(p.contentType, "text/plain") || !strings.Contains(p.body, c.mention) {
			t.Errorf("%s: %d %q %q, want %d text/plain mentioning %q", c.name, p.status, p.contentType, p.body, c.status, c.mention)
		}
		counts[c.result]++
		if c.name == "ok without id" {
			generated = p.body
		}
	}
	if !regexp.MustCompile(`^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(generated) {
		t.Errorf("generated id %q is not a version 4 UUID URN", generated)
	}
	for result, want := range counts {
		if got := testGauge(n.srv.m.mercurePublished.WithLabelValues(result)); got != want {
			t.Errorf("mercure_publish_total{result=%q} = %v, want %v", result, got, want)
		}
	}
	// Only the accepted updates went out.
	ctl := n.mercurePublish(t, update("control", "control", "a"))
	ev := all.next(t)
	if ev.Type != "t" || ev.LastEventID != "ok-1" || ev.Data != "one" {
		t.Fatalf("first update: %+v", ev)
	}
	all.expect(t, "ok-2=two", generated+"=three", ctl+"=control")
}

// TestMercure_subscribeRefusals: a subscription that can never succeed
// gets its status and a text/plain body; a selector that is not a valid
// URI template is no error (Mercure matches it as a plain string, and so
// do we).
func TestMercure_subscribeRefusals(t *testing.T) {
	n := startMercure(t, Config{}, nil)
	tooManyVars := "https://example.com/" + strings.Repeat("{a}", mercure.MaxTemplateVariables+1)
	cases := []struct {
		name    string
		query   url.Values
		tok     string
		status  int
		mention string
	}{
		{"no topic", url.Values{}, "", 400, `Missing "topic" parameter`},
		{"too many topics", url.Values{"topic": slices.Repeat([]string{"t"}, mercure.MaxSubscribeTopics+1)}, "", 400, "Too many"},
		{"selector too long", url.Values{"topic": {strings.Repeat("x", mercure.MaxTopicBytes+1)}}, "", 400, "at most"},
		{"template with too many variables", url.Values{"topic": {tooManyVars}}, "", 400, "variables"},
		{"garbage token", url.Values{"topic": {"a"}}, "garbage", 401, "Unauthorized"},
		{"publisher's key", url.Values{"topic": {"a"}}, pubToken(t, "*"), 401, "Unauthorized"},
		{"too many claim selectors", url.Values{"topic": {"a"}},
			subToken(t, slices.Repeat([]string{"s"}, mercure.MaxClaimSelectors+1)...), 401, "too many"},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(http.MethodGet, n.url+mercure.HubPath+"?"+c.query.Encode(), nil)
		if c.tok != "" {
			req.Header.Set("Authorization", "Bearer "+c.tok)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != c.status || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") || !strings.Contains(string(b), c.mention) {
			t.Errorf("%s: %d %q %q, want %d text/plain mentioning %q", c.name, res.StatusCode, res.Header.Get("Content-Type"), b, c.status, c.mention)
		}
	}

	t.Run("malformed template", func(t *testing.T) {
		const bad = "https://example.com/{oops"
		c := subscribe(t, hubURL(n.url, bad, "control"), "")
		n.waitStreams(t, 1)
		n.mercurePublish(t, update("x", "x", "https://example.com/x"))
		n.mercurePublish(t, update("exact", "exact", bad))
		n.mercurePublish(t, update("ctl", "ctl", "control"))
		c.expect(t, "exact=exact", "ctl=ctl")
	})

	t.Run("anonymous not allowed", func(t *testing.T) {
		n := startMercure(t, Config{}, func(mc *MercureConfig, _ redis.Cmdable) { mc.Anonymous = false })
		for tok, want := range map[string]int{"": 401, subToken(t): 200} {
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, hubURL(n.url, "a"), nil)
			if tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != want {
				t.Errorf("token %v: %d, want %d", tok != "", res.StatusCode, want)
			}
			cancel()
			res.Body.Close()
		}
	})

	t.Run("no subscriber key, not anonymous", func(t *testing.T) {
		n := startMercure(t, Config{}, func(mc *MercureConfig, _ redis.Cmdable) { mc.Subscriber, mc.Anonymous = nil, false })
		for _, tok := range []string{"", subToken(t, "*")} {
			req, _ := http.NewRequest(http.MethodGet, hubURL(n.url, "a"), nil)
			if tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 401 {
				t.Errorf("token %v: %d, want 401", tok != "", res.StatusCode)
			}
		}
	})
}

// rawStream opens a subscription by hand, for what an EventSource does not
// show: the response headers and the stream's own ids.
type rawStream struct {
	res *http.Response
	br  *bufio.Reader
}

func openRaw(t *testing.T, rawURL string, header ...string) *rawStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); res.Body.Close() })
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", rawURL, res.StatusCode)
	}
	return &rawStream{res: res, br: bufio.NewReader(res.Body)}
}

// checkpoint reads up to the stream's first id line and returns the id.
func (s *rawStream) checkpoint(t *testing.T) string {
	t.Helper()
	for {
		line, err := s.br.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended before its checkpoint: %v", err)
		}
		if id, ok := strings.CutPrefix(line, "id: "); ok {
			return strings.TrimSuffix(id, "\n")
		}
	}
}

// TestMercure_resume: a subscriber resumes by the last update id it saw
// (the Last-Event-ID header or the lastEventID query parameter, echoed in
// the Last-Event-ID response header), from "earliest", or from one of the
// hub's own cursor ids; an id the hub does not know gets an in-band
// history-lost event, then live updates.
func TestMercure_resume(t *testing.T) {
	n := startMercure(t, Config{}, nil)
	const topic = "https://example.com/r"
	pub := func(id string) { n.mercurePublish(t, update(id, "d"+id, topic)) }
	for _, id := range []string{"r1", "r2", "r3", "r4", "r5"} {
		pub(id)
	}

	t.Run("Last-Event-ID header", func(t *testing.T) {
		s := openRaw(t, hubURL(n.url, topic), "Last-Event-ID", "r2")
		if got := s.res.Header.Get("Last-Event-ID"); got != "r2" {
			t.Fatalf("Last-Event-ID response header %q", got)
		}
		if ct := s.res.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Fatalf("Content-Type %q", ct)
		}
		p := sseclient.NewParser(s.br, "r2")
		for _, id := range []string{"r3", "r4", "r5"} {
			if ev, err := p.Next(); err != nil || ev.LastEventID != id || ev.Data != "d"+id {
				t.Fatalf("got %+v %v, want %s", ev, err, id)
			}
		}
	})

	t.Run("lastEventID query parameter, then live", func(t *testing.T) {
		s := openRaw(t, hubURL(n.url, topic)+"&lastEventID=r4")
		if got := s.res.Header.Get("Last-Event-ID"); got != "r4" {
			t.Fatalf("Last-Event-ID response header %q", got)
		}
		p := sseclient.NewParser(s.br, "")
		if ev, err := p.Next(); err != nil || ev.LastEventID != "r5" {
			t.Fatalf("got %+v %v, want r5", ev, err)
		}
		pub("r6")
		if ev, err := p.Next(); err != nil || ev.LastEventID != "r6" {
			t.Fatalf("got %+v %v, want r6 live", ev, err)
		}
	})

	t.Run("earliest", func(t *testing.T) {
		s := openRaw(t, hubURL(n.url, topic)+"&lastEventID=earliest")
		if got := s.res.Header.Get("Last-Event-ID"); got != "earliest" {
			t.Fatalf("Last-Event-ID response header %q", got)
		}
		p := sseclient.NewParser(s.br, "")
		for _, id := range []string{"r1", "r2", "r3", "r4", "r5", "r6"} {
			if ev, err := p.Next(); err != nil || ev.LastEventID != id {
				t.Fatalf("got %+v %v, want %s", ev, err, id)
			}
		}
	})

	t.Run("the hub's checkpoint", func(t *testing.T) {
		s := openRaw(t, hubURL(n.url, topic))
		if got, ok := s.res.Header["Last-Event-Id"]; ok {
			t.Fatalf("a fresh subscription has a Last-Event-ID response header: %q", got)
		}
		cp := s.checkpoint(t)
		if !strings.HasPrefix(cp, "urn:ssegateway:cursor:") {
			t.Fatalf("checkpoint id %q", cp)
		}
		pub("r7")
		c := subscribe(t, hubURL(n.url, topic), cp)
		c.expect(t, "r7=dr7")
	})

	t.Run("reused id", func(t *testing.T) {
		n.mercurePublish(t, update("dup", "first", topic))
		n.mercurePublish(t, update("dup", "second", topic))
		pub("r8")
		// The newest update with the id is where the subscriber was.
		c := subscribe(t, hubURL(n.url, topic), "dup")
		c.expect(t, "r8=dr8")
	})

	t.Run("id of an update the subscriber does not match", func(t *testing.T) {
		n.mercurePublish(t, update("other", "other", "https://example.com/other"))
		pub("r9")
		c := subscribe(t, hubURL(n.url, topic), "other")
		c.expect(t, "r9=dr9")
	})

	for _, cursor := range []string{"never-published", "urn:ssegateway:cursor:zzz", "urn:ssegateway:cursor:"} {
		t.Run("unknown id "+cursor, func(t *testing.T) {
			// The protocol's Last-Event-ID for an id the hub does not know.
			if got := openRaw(t, hubURL(n.url, topic), "Last-Event-ID", cursor).res.Header.Get("Last-Event-ID"); got != "earliest" {
				t.Fatalf("Last-Event-ID response header %q, want earliest", got)
			}
			c := subscribe(t, hubURL(n.url, topic, "x"), cursor)
			ev := c.next(t)
			var hl historyLost
			if ev.Type != "history-lost" || json.Unmarshal([]byte(ev.Data), &hl) != nil || hl.Reason != "invalid-cursor" ||
				!slices.Equal(hl.Topics, []string{topic, "x"}) || !strings.HasPrefix(ev.LastEventID, "urn:ssegateway:cursor:") {
				t.Fatalf("got %+v, want a history-lost event for both selectors with a cursor id", ev)
			}
			// Live from there; and its id resumes exactly.
			id := "live-" + randomHex(t)
			n.mercurePublish(t, update(id, "live", topic))
			c.expect(t, id+"=live")
			c.stop()
			r := subscribe(t, hubURL(n.url, topic), ev.LastEventID)
			r.expect(t, id+"=live")
		})
	}
}

// TestMercure_eventFormat: an update goes on the wire as Mercure writes
// it, byte for byte: event, retry, id, one data line per line.
func TestMercure_eventFormat(t *testing.T) {
	n := startMercure(t, Config{}, nil)
	s := openRaw(t, hubURL(n.url, "f"))
	s.checkpoint(t)
	if line, _ := s.br.ReadString('\n'); line != "\n" {
		t.Fatalf("checkpoint not ended by a blank line: %q", line)
	}
	f := update("fmt-1", "a\r\nb\rc\nd", "f")
	f.Set("type", "greeting")
	f.Set("retry", "5000")
	n.mercurePublish(t, f)
	want := "event: greeting\nretry: 5000\nid: fmt-1\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(s.br, got); err != nil || string(got) != want {
		t.Fatalf("wire %q %v, want %q", got, err, want)
	}
}

// TestMercure_tokenSources: a subscriber's token comes from the
// Authorization header, the "authorization" query parameter or the
// mercureAuthorization cookie, the first present being the only one read;
// a publisher may use the cookie only from an Origin (or Referer) among the
// publish origins.
func TestMercure_tokenSources(t *testing.T) {
	n := startMercure(t, Config{}, func(mc *MercureConfig, _ redis.Cmdable) {
		mc.PublishOrigins = []string{"https://app.example"}
	})
	const topic = "https://example.com/secret"
	good := subToken(t, topic)
	cookie := func(tok string) string { return mercure.DefaultCookieName + "=" + tok }
	subs := map[string]*sseclient.Client{
		"header": {URL: hubURL(n.url, topic, "ctl"), Header: http.Header{"Authorization": {"Bearer " + good}}},
		"query":  {URL: hubURL(n.url, topic, "ctl") + "&authorization=" + good},
		"cookie": {URL: hubURL(n.url, topic, "ctl"), Header: http.Header{"Cookie": {cookie(good)}}},
		// A header without the right claim: the cookie's is not read.
		"header wins": {URL: hubURL(n.url, topic, "ctl"), Header: http.Header{"Authorization": {"Bearer " + subToken(t, "ctl")},
			"Cookie": {cookie(good)}}},
	}
	cs := map[string]*collector{}
	for name, cl := range subs {
		cs[name] = subscribeWith(t, cl)
	}
	n.waitStreams(t, len(cs))
	f := update("secret", "s", topic)
	f.Set("private", "on")
	n.mercurePublish(t, f)
	n.mercurePublish(t, update("ctl", "c", "ctl"))
	for name, c := range cs {
		t.Run(name, func(t *testing.T) {
			if name == "header wins" {
				c.expect(t, "ctl=c")
			} else {
				c.expect(t, "secret=s", "ctl=c")
			}
		})
	}

	t.Run("invalid header, valid cookie", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, hubURL(n.url, topic), nil)
		req.Header.Set("Authorization", "Bearer garbage")
		req.Header.Set("Cookie", cookie(good))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 401 {
			t.Fatalf("%d, want 401", res.StatusCode)
		}
	})

	t.Run("publishing with the cookie", func(t *testing.T) {
		pc := cookie(pubToken(t, "*"))
		for _, c := range []struct {
			name   string
			header []string
			status int
		}{
			{"allowed Origin", []string{"Origin", "https://app.example"}, 200},
			{"allowed Referer", []string{"Referer", "https://app.example/page?x=1"}, 200},
			{"Origin wins over Referer", []string{"Origin", "https://evil.example", "Referer", "https://app.example/"}, 401},
			{"foreign Origin", []string{"Origin", "https://evil.example"}, 401},
			{"foreign Referer", []string{"Referer", "https://evil.example/"}, 401},
			{"neither", nil, 401},
		} {
			p := n.mercurePost(t, "", update("", "x", "a"), append([]string{"Cookie", pc}, c.header...)...)
			if p.status != c.status {
				t.Errorf("%s: %d %q, want %d", c.name, p.status, p.body, c.status)
			}
		}
		// The query parameter works for publishers too, with no origin check.
		res, err := http.Post(n.url+mercure.HubPath+"?authorization="+pubToken(t, "*"), "application/x-www-form-urlencoded",
			strings.NewReader(update("", "x", "a").Encode()))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("query token publish: %d", res.StatusCode)
		}
	})
}

// TestMercure_subscriberTokenExpiry: the stream ends, with a retry hint,
// when its token expires.
func TestMercure_subscriberTokenExpiry(t *testing.T) {
	n := startMercure(t, Config{Retry: 50 * time.Millisecond}, nil)
	tok := testutil.MercureToken(t, mercureSubKey, map[string]any{"subscribe": []string{"*"}}, time.Now().Add(2*time.Second))
	s := openRaw(t, hubURL(n.url, "a"), "Authorization", "Bearer "+tok)
	body, _ := io.ReadAll(s.br) // ends when the token expires
	if !strings.Contains(string(body), "\nretry: ") {
		t.Fatalf("stream ended without a retry hint: %q", body)
	}
	if got := testGauge(n.srv.m.closed.WithLabelValues(closeTokenExpired.String())); got != 1 {
		t.Fatalf("closed{token_expired} = %v", got)
	}
}

// TestMercure_CORSandHEAD: preflights of allowed origins are answered
// with credentials allowed and the headers an EventSource polyfill sends;
// other origins get nothing; HEAD answers a subscription's headers without
// opening a stream.
func TestMercure_CORSandHEAD(t *testing.T) {
	n := startMercure(t, Config{}, func(mc *MercureConfig, rdb redis.Cmdable) {
		mc.CORSOrigins = []string{"https://app.example"}
		mc.Subscriptions = true
		mc.Registry = testRegistry(t, rdb, "n1")
	})
	do := func(method, path string, header ...string) *http.Response {
		req, _ := http.NewRequest(method, n.url+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	for _, path := range []string{mercure.HubPath + "?topic=a", mercure.SubscriptionsPath, mercure.SubscriptionsPath + "/a/b"} {
		for _, m := range []string{"GET", "POST"} {
			res := do(http.MethodOptions, path, "Origin", "https://app.example", "Access-Control-Request-Method", m,
				"Access-Control-Request-Headers", "authorization,last-event-id,cache-control")
			allow := strings.ToLower(res.Header.Get("Access-Control-Allow-Headers"))
			if res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
				res.Header.Get("Access-Control-Allow-Credentials") != "true" || !strings.Contains(allow, "authorization") ||
				!strings.Contains(allow, "last-event-id") || !strings.Contains(allow, "cache-control") {
				t.Errorf("preflight %s %s: %d %v", m, path, res.StatusCode, res.Header)
			}
		}
		res := do(http.MethodOptions, path, "Origin", "https://evil.example", "Access-Control-Request-Method", "GET")
		if res.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight %s from a foreign origin allowed: %v", path, res.Header)
		}
	}
	res := do(http.MethodHead, mercure.HubPath+"?topic=a&lastEventID=x", "Origin", "https://app.example")
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" ||
		res.Header.Get("Last-Event-ID") != "earliest" || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(strings.ToLower(res.Header.Get("Access-Control-Expose-Headers")), "last-event-id") {
		t.Fatalf("HEAD: %d %v", res.StatusCode, res.Header)
	}
	if got := testGauge(n.srv.m.opened); got != 0 {
		t.Fatalf("HEAD opened %v streams", got)
	}
	// HEAD announces no subscriber either.
	regs, err := n.srv.mercure.cfg.Registry.List(context.Background())
	if err != nil || len(regs) != 0 {
		t.Fatalf("registry after HEAD: %v %v", regs, err)
	}
}

// testRegistry is a subscriptions registry on rdb for the node named node.
func testRegistry(t testing.TB, rdb redis.Cmdable, node string) *mercure.Registry {
	t.Helper()
	r, err := mercure.NewRegistry(rdb, mercure.RegistryConfig{Prefix: "t:", Node: node})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// samePayload reports whether a document's payload is the JSON want
// (documents are indented).
func samePayload(got json.RawMessage, want string) bool {
	var a, b any
	return json.Unmarshal(got, &a) == nil && json.Unmarshal([]byte(want), &b) == nil && reflect.DeepEqual(a, b)
}

// subscriptionEvent decodes a subscription event's data.
func subscriptionEvent(t *testing.T, ev sseclient.Event) mercure.Subscription {
	t.Helper()
	var s mercure.Subscription
	if err := json.Unmarshal([]byte(ev.Data), &s); err != nil || s.Type != "Subscription" {
		t.Fatalf("not a subscription event: %+v (%v)", ev, err)
	}
	return s
}

// TestMercure_subscriptions: with active subscriptions on, a subscriber's
// connection and disconnection are published as private updates that only
// subscribers allowed them receive, and the subscriptions API lists the
// active subscriptions (collection, by topic, one), for tokens allowed to
// read it.
func TestMercure_subscriptions(t *testing.T) {
	n := startMercure(t, Config{}, func(mc *MercureConfig, rdb redis.Cmdable) {
		mc.Subscriptions = true
		mc.Registry = testRegistry(t, rdb, "n1")
	})
	const subsTpl = "/.well-known/mercure/subscriptions{/topic}{/subscriber}"
	const book = "https://example.com/books/1"
	watch := func(tok string) *collector {
		return subscribeWith(t, &sseclient.Client{URL: hubURL(n.url, subsTpl, "ctl"), Header: http.Header{"Authorization": {"Bearer " + tok}}})
	}
	others := watch(subToken(t, "https://example.com/{x}")) // may not see subscriptions
	n.waitStreams(t, 1)
	watcher := watch(subToken(t, subsTpl))
	n.waitStreams(t, 2)
	alice := subscribeWith(t, &sseclient.Client{URL: hubURL(n.url, book),
		Header: http.Header{"Authorization": {"Bearer " + testutil.MercureToken(t, mercureSubKey,
			map[string]any{"subscribe": []string{book}, "payload": map[string]any{"name": "alice", "n": 1}}, time.Time{})}}})
	n.waitStreams(t, 3)

	ev := watcher.next(t)
	on := subscriptionEvent(t, ev)
	if on.Topic != book || !on.Active || on.Context != mercure.JSONLDContext || !samePayload(on.Payload, `{"n":1,"name":"alice"}`) ||
		on.ID != mercure.SubscriptionID(book, on.Subscriber) || !strings.HasPrefix(on.Subscriber, "urn:uuid:") ||
		!strings.HasPrefix(ev.LastEventID, "urn:uuid:") {
		t.Fatalf("connection event %+v: %s", ev, ev.Data)
	}

	api := func(path, tok string, header ...string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodGet, n.url+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, b
	}
	reader := subToken(t, subsTpl)
	t.Run("collection", func(t *testing.T) {
		res, b := api(mercure.SubscriptionsPath, reader)
		var col mercure.Collection
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/ld+json" || json.Unmarshal(b, &col) != nil {
			t.Fatalf("%d %q %s", res.StatusCode, res.Header.Get("Content-Type"), b)
		}
		// The newest update is alice's connection event.
		if col.ID != mercure.SubscriptionsPath || col.Type != "Subscriptions" || col.LastEventID != ev.LastEventID ||
			res.Header.Get("ETag") != ev.LastEventID {
			t.Fatalf("collection %s, ETag %q", b, res.Header.Get("ETag"))
		}
		var topics []string
		for _, s := range col.Subscriptions {
			topics = append(topics, s.Topic)
			if s.Topic == book && (s.Subscriber != on.Subscriber || !samePayload(s.Payload, `{"n":1,"name":"alice"}`) || !s.Active) {
				t.Fatalf("alice listed as %+v", s)
			}
		}
		slices.Sort(topics)
		if want := []string{subsTpl, subsTpl, "ctl", "ctl", book}; !slices.Equal(topics, want) {
			t.Fatalf("subscriptions of %v, want %v", topics, want)
		}
		if res, _ := api(mercure.SubscriptionsPath, reader, "If-None-Match", ev.LastEventID); res.StatusCode != http.StatusNotModified {
			t.Fatalf("If-None-Match: %d", res.StatusCode)
		}
	})
	t.Run("by topic", func(t *testing.T) {
		res, b := api(mercure.SubscriptionsPath+"/"+url.QueryEscape(book), reader)
		var col mercure.Collection
		if res.StatusCode != 200 || json.Unmarshal(b, &col) != nil || len(col.Subscriptions) != 1 || col.Subscriptions[0].Subscriber != on.Subscriber {
			t.Fatalf("%d %s", res.StatusCode, b)
		}
	})
	t.Run("one", func(t *testing.T) {
		res, b := api(on.ID, reader)
		var one mercure.Subscription
		if res.StatusCode != 200 || json.Unmarshal(b, &one) != nil || one.ID != on.ID || one.LastEventID != ev.LastEventID ||
			one.Context != mercure.JSONLDContext || !one.Active {
			t.Fatalf("%d %s", res.StatusCode, b)
		}
		if res, _ := api(mercure.SubscriptionID(book, "urn:uuid:nobody"), reader); res.StatusCode != 404 {
			t.Fatalf("unknown subscriber: %d", res.StatusCode)
		}
		if res, _ := api(mercure.SubscriptionsPath+"/a/b/c", subToken(t, "*")); res.StatusCode != 404 {
			t.Fatalf("bad path: %d", res.StatusCode)
		}
	})
	t.Run("refused", func(t *testing.T) {
		for name, tok := range map[string]string{"no token": "", "garbage": "garbage", "other claim": subToken(t, "https://example.com/{x}"),
			"no subscribe claim": testutil.MercureToken(t, mercureSubKey, map[string]any{}, time.Time{})} {
			if res, b := api(mercure.SubscriptionsPath, tok); res.StatusCode != 401 {
				t.Errorf("%s: %d %s", name, res.StatusCode, b)
			}
		}
	})

	alice.stop()
	off := subscriptionEvent(t, watcher.next(t))
	if off.Active || off.Subscriber != on.Subscriber || off.Topic != book {
		t.Fatalf("disconnection event %+v", off)
	}
	res, b := api(mercure.SubscriptionsPath+"/"+url.QueryEscape(book), reader)
	var col mercure.Collection
	if res.StatusCode != 200 || json.Unmarshal(b, &col) != nil || len(col.Subscriptions) != 0 {
		t.Fatalf("after alice left: %d %s", res.StatusCode, b)
	}
	// The subscriber whose claim does not cover subscriptions saw none of
	// it, though its selector matches.
	ctl := n.mercurePublish(t, update("ctl", "ctl", "ctl"))
	others.expect(t, ctl+"=ctl")
	watcher.expect(t, ctl+"=ctl")
}

// TestMercure_subscriptions_notOwnEvents: a subscriber never receives its
// own connection events, though they are published before it joins and the
// node may not have delivered them yet when it does (the feed is busy: other
// subscribers follow it); it receives those of every subscriber that
// connects after it, once per topic, in order.
func TestMercure_subscriptions_notOwnEvents(t *testing.T) {
	n := startMercure(t, Config{}, func(mc *MercureConfig, rdb redis.Cmdable) {
		mc.Subscriptions = true
		mc.Registry = testRegistry(t, rdb, "n1")
	})
	const subsTpl = "/.well-known/mercure/subscriptions{/topic}{/subscriber}"
	tok := subToken(t, subsTpl)
	const watchers = 15
	var cs []*collector
	for i := range watchers {
		cs = append(cs, subscribeWith(t, &sseclient.Client{URL: hubURL(n.url, subsTpl, "ctl"),
			Header: http.Header{"Authorization": {"Bearer " + tok}}}))
		n.waitStreams(t, i+1)
	}
	ctl := n.mercurePublish(t, update("ctl", "ctl", "ctl"))
	// seen[i]: the subscribers whose connections watcher i saw, in order.
	seen := make([][]string, watchers)
	for i, c := range cs {
		for {
			ev := c.next(t)
			if ev.LastEventID == ctl {
				break
			}
			s := subscriptionEvent(t, ev)
			if k := len(seen[i]); k > 0 && seen[i][k-1] == s.Subscriber {
				continue // its second topic
			}
			seen[i] = append(seen[i], s.Subscriber)
		}
	}
	// The watchers in the order they connected: the one watcher 0 did not
	// see (itself), then those it saw.
	regs, err := n.srv.mercure.cfg.Registry.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, r := range regs {
		if !slices.Contains(seen[0], r.ID) {
			order = append(order, r.ID)
		}
	}
	if len(order) != 1 {
		t.Fatalf("watcher 0 saw %d of the %d others", len(seen[0]), watchers-1)
	}
	order = append(order, seen[0]...)
	for i := range watchers {
		if want := order[i+1:]; !slices.Equal(seen[i], want) {
			t.Fatalf("watcher %d saw the connections of %v, want %v (those after it, not its own)", i, seen[i], want)
		}
	}
}
