package gateway

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ssegateway/ssegateway/auth"
	"github.com/ssegateway/ssegateway/pubsub"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func testVerifier(t *testing.T) auth.Verifier {
	v, err := auth.NewJWTVerifier(context.Background(), auth.JWTConfig{HMACSecrets: [][]byte{testSecret}})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// signToken signs c with testSecret (HS256).
func signToken(t *testing.T, c auth.Claims) string {
	t.Helper()
	s, err := auth.NewSigner(auth.SignerConfig{HMACSecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// token grants subscribe and publish to subject "u", until exp (zero: no
// exp).
func token(t *testing.T, subscribe, publish []string, exp time.Time) string {
	t.Helper()
	c := auth.Claims{Subject: "u", SSE: &auth.SSEClaim{Subscribe: subscribe, Publish: publish}}
	if !exp.IsZero() {
		c.Expires = exp.Unix()
	}
	return signToken(t, c)
}

func mustPatterns(t *testing.T, ss ...string) auth.Patterns {
	ps, err := auth.ParsePatterns(ss)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// request describes one request and what must come back.
type request struct {
	name    string
	method  string
	path    string
	body    string
	header  map[string]string
	cookie  string
	status  int
	mention string
}

func (r request) do(t *testing.T, base string) {
	t.Helper()
	method := r.method
	if method == "" {
		method = http.MethodGet
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, base+r.path, strings.NewReader(r.body))
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	if r.cookie != "" {
		req.AddCookie(&http.Cookie{Name: "sse_token", Value: r.cookie})
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != r.status {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		t.Fatalf("%s %s: %d %s, want %d", method, r.path, res.StatusCode, b, r.status)
	}
	if res.StatusCode == http.StatusOK && method == http.MethodGet {
		return // a stream: it is open, which is all this checks
	}
	b, _ := io.ReadAll(res.Body)
	if !strings.Contains(string(b), r.mention) {
		t.Fatalf("%s %s: body %s, want it to mention %q", method, r.path, b, r.mention)
	}
	if res.StatusCode == http.StatusUnauthorized && !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer realm=") {
		t.Fatalf("401 without WWW-Authenticate: %v", res.Header)
	}
}

func bearerHeader(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tok}
}

func TestServer_authorization(t *testing.T) {
	n := startNode(t, Config{Auth: testVerifier(t), PublicTopics: mustPatterns(t, "public/*"), TokenCookie: "sse_token"},
		pubsub.PublisherConfig{})
	hour := time.Now().Add(time.Hour)
	forA := token(t, []string{"a", "news/*"}, nil, hour)
	forC := token(t, []string{"c"}, nil, hour)
	forOrders := token(t, []string{"orders/**", "shop/42"}, nil, hour)
	pub := token(t, nil, []string{"orders/**"}, hour)
	expired := token(t, []string{"a"}, nil, time.Now().Add(-time.Hour))
	cases := []request{
		{name: "no token", path: "/events?topic=a", status: 401, mention: "a token is required for: a"},
		{name: "public topic, no token", path: "/events?topic=public/x", status: 200},
		{name: "public pattern is one segment", path: "/events?topic=public/x/y", status: 401, mention: "public/x/y"},
		{name: "granted", path: "/events?topic=a", header: bearerHeader(forA), status: 200},
		{name: "token for a, asking a/b", path: "/events?topic=a/b", header: bearerHeader(forA), status: 403, mention: "a/b"},
		{name: "token for a, asking ab", path: "/events?topic=ab", header: bearerHeader(forA), status: 403, mention: "ab"},
		{name: "news/* covers news/world", path: "/events?topic=news/world", header: bearerHeader(forA), status: 200},
		{name: "news/* not news/world/eu", path: "/events?topic=news/world/eu", header: bearerHeader(forA), status: 403, mention: "news/world/eu"},
		{name: "mixed grant and public", path: "/events?topic=a&topic=public/x", header: bearerHeader(forA), status: 200},
		{name: "only the ungranted are named", path: "/events?topic=a&topic=secret", header: bearerHeader(forA), status: 403, mention: "subscribing to: secret"},
		{name: "bad token", path: "/events?topic=a", header: bearerHeader("nope"), status: 401, mention: "invalid token: malformed"},
		{name: "expired token", path: "/events?topic=a", header: bearerHeader(expired), status: 401, mention: "expired"},
		{name: "not a bearer header", path: "/events?topic=a", header: map[string]string{"Authorization": "Basic dTpw"}, status: 401, mention: "must be"},
		{name: "cookie", path: "/events?topic=c", cookie: forC, status: 200},
		{name: "pattern covered by a pattern grant", path: "/events?topic=orders/*", header: bearerHeader(forOrders), status: 200},
		{name: "pattern covered, deeper", path: "/events?topic=orders/*/items", header: bearerHeader(forOrders), status: 200},
		{name: "pattern the grant of one topic does not cover", path: "/events?topic=shop/*", header: bearerHeader(forOrders), status: 403, mention: "shop/*"},
		{name: "pattern wider than its grant", path: "/events?topic=news/**", header: bearerHeader(forA), status: 403, mention: "news/**"},
		{name: "pattern as wide as its grant", path: "/events?topic=news/*", header: bearerHeader(forA), status: 200},
		{name: "public pattern", path: "/events?topic=public/*", status: 200},
		{name: "pattern wider than public", path: "/events?topic=public/**", status: 401, mention: "public/**"},
		{name: "header wins over cookie", path: "/events?topic=c", header: bearerHeader(forA), cookie: forC, status: 403, mention: "c"},
		{name: "query token is off by default", path: "/events?topic=a&access_token=" + forA, status: 401},
		{name: "publish without token", method: "POST", path: "/publish", body: `{"topic":"orders/1","data":"x"}`, status: 401, mention: "bearer token"},
		{name: "publish with a subscribe token", method: "POST", path: "/publish", body: `{"topic":"orders/1","data":"x"}`, header: bearerHeader(forA), status: 403, mention: "does not allow publishing"},
		{name: "publish outside the grant", method: "POST", path: "/publish", body: `{"topic":"news/1","data":"x"}`, header: bearerHeader(pub), status: 403, mention: "publishing to: news/1"},
		{name: "publish granted", method: "POST", path: "/publish", body: `{"topic":"orders/1/x","data":"x"}`, header: bearerHeader(pub), status: 200, mention: `"id"`},
		{name: "publish cookie is not accepted", method: "POST", path: "/publish", body: `{"topic":"orders/1","data":"x"}`, cookie: pub, status: 401},
		// A browser sends its cookie on every reconnect and EventSource never
		// retries after a 401: a stale cookie must not lock it out of public
		// topics. An explicit Authorization header still gets its 401.
		{name: "expired cookie, public topic", path: "/events?topic=public/x", cookie: expired, status: 200},
		{name: "garbage cookie, public topics", path: "/events?topic=public/x&topic=public/y", cookie: "garbage", status: 200},
		{name: "expired cookie, public pattern", path: "/events?topic=public/*", cookie: expired, status: 200},
		{name: "expired cookie, public and private topics", path: "/events?topic=public/x&topic=a", cookie: expired, status: 401, mention: "expired"},
		{name: "expired bearer header, public topic", path: "/events?topic=public/x", header: bearerHeader(expired), status: 401, mention: "expired"},
		{name: "expired header wins over a good cookie", path: "/events?topic=public/x", header: bearerHeader(expired), cookie: forC, status: 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.do(t, n.url) })
	}
	if got := testGauge(n.srv.m.authRefused.WithLabelValues("403")); got < 5 {
		t.Fatalf("auth_refused_total{status=403} = %v", got)
	}
	if got := testGauge(n.srv.m.tokensIgnored.WithLabelValues("cookie")); got != 3 {
		t.Fatalf("auth_ignored_tokens_total{source=cookie} = %v, want 3", got)
	}
}

func TestServer_authorization_queryToken(t *testing.T) {
	n := startNode(t, Config{Auth: testVerifier(t), TokenQueryParam: "access_token", PublicTopics: mustPatterns(t, "public/*")},
		pubsub.PublisherConfig{})
	tok := token(t, []string{"a"}, nil, time.Now().Add(time.Hour))
	request{path: "/events?topic=a&access_token=" + tok, status: 200}.do(t, n.url)
	// An EventSource reconnects with the same URL: an expired query token
	// is like a stale cookie.
	expired := token(t, []string{"a"}, nil, time.Now().Add(-time.Hour))
	request{path: "/events?topic=public/x&access_token=" + expired, status: 200}.do(t, n.url)
	request{path: "/events?topic=a&access_token=" + expired, status: 401, mention: "expired"}.do(t, n.url)
	if got := testGauge(n.srv.m.tokensIgnored.WithLabelValues("query")); got != 1 {
		t.Fatalf("auth_ignored_tokens_total{source=query} = %v, want 1", got)
	}
}

func TestServer_tokenExpiryEndsStream(t *testing.T) {
	n := startNode(t, Config{Auth: testVerifier(t), Retry: 50 * time.Millisecond}, pubsub.PublisherConfig{})
	tok := token(t, []string{"a"}, nil, time.Now().Add(1500*time.Millisecond))
	req, _ := http.NewRequest(http.MethodGet, n.url+"/events?topic=a", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body) // ends when the token expires
	if !strings.Contains(string(body), "\nretry: ") {
		t.Fatalf("stream ended without a retry hint: %q", body)
	}
	if got := testGauge(n.srv.m.closed.WithLabelValues(closeTokenExpired.String())); got != 1 {
		t.Fatalf("closed{token_expired} = %v", got)
	}
}

func TestServer_CORS(t *testing.T) {
	n := startNode(t, Config{CORSOrigins: []string{"https://app.example"}, CORSCredentials: true}, pubsub.PublisherConfig{})
	preflight := func(origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, n.url+"/events?topic=a", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "GET")
		req.Header.Set("Access-Control-Request-Headers", "last-event-id,authorization")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	res := preflight("https://app.example")
	allow := strings.ToLower(res.Header.Get("Access-Control-Allow-Headers"))
	if res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		res.Header.Get("Access-Control-Allow-Credentials") != "true" || !strings.Contains(allow, "last-event-id") ||
		!strings.Contains(allow, "authorization") {
		t.Fatalf("preflight: %d %v", res.StatusCode, res.Header)
	}
	if res := preflight("https://evil.example"); res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("a foreign origin was allowed: %v", res.Header)
	}
	if _, err := NewServer(Config{AllowAnonymous: true, CORSOrigins: []string{"*"}, CORSCredentials: true}, Deps{}); err == nil ||
		!strings.Contains(err.Error(), "credentials") {
		t.Fatalf("credentials with * accepted: %v", err)
	}
}
