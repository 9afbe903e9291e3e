package mercure_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ssegateway/ssegateway/auth"
	"github.com/ssegateway/ssegateway/mercure"
)

var testKey = []byte("!ChangeThisMercureHubJWTSecretKey!")

func token(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(testKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// claimOf verifies a token as the gateway will: auth.KeyVerifier decodes
// the claims into mercure.Claims.
func claimOf(t testing.TB, tok string) (*mercure.Claim, error) {
	t.Helper()
	v, err := auth.NewKeyVerifier(auth.KeyConfig{Alg: "HS256", Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	var c mercure.Claims
	if _, err := v.VerifyClaims(tok, &c); err != nil {
		return nil, err
	}
	return c.Claim()
}

func TestClaims_Claim(t *testing.T) {
	t.Parallel()
	many := make([]string, mercure.MaxClaimSelectors+1)
	for _, c := range []struct {
		name    string
		claims  jwt.MapClaims
		publish []string
		sub     []string
		payload string
		err     bool
	}{
		{"mercure", jwt.MapClaims{"mercure": map[string]any{"publish": []string{"a"}, "subscribe": []string{"b"}}}, []string{"a"}, []string{"b"}, "", false},
		{"namespaced wins", jwt.MapClaims{
			"mercure":                map[string]any{"publish": []string{"a"}},
			"https://mercure.rocks/": map[string]any{"publish": []string{"n"}, "subscribe": []string{"m"}},
		}, []string{"n"}, []string{"m"}, "", false},
		{"no claim", jwt.MapClaims{"sub": "x"}, nil, nil, "", false},
		{"null payload", jwt.MapClaims{"mercure": map[string]any{"payload": nil}}, nil, nil, "", false},
		// Mercure decodes the payload into Go values and encodes it again.
		{"payload rewritten as Mercure writes it", jwt.MapClaims{"mercure": map[string]any{
			"payload": json.RawMessage(`{"z": [1, 2.50, 12345678901234567890], "a": "<x>"}`)}},
			nil, nil, `{"a":"\u003cx\u003e","z":[1,2.5,12345678901234567000]}`, false},
		{"scalar payload", jwt.MapClaims{"mercure": map[string]any{"payload": "user-1"}}, nil, nil, `"user-1"`, false},
		{"too many publish selectors", jwt.MapClaims{"mercure": map[string]any{"publish": many}}, nil, nil, "", true},
		{"too many subscribe selectors", jwt.MapClaims{"mercure": map[string]any{"subscribe": many}}, nil, nil, "", true},
	} {
		cl, err := claimOf(t, token(t, c.claims))
		if c.err {
			if !errors.Is(err, mercure.ErrUnauthorized) {
				t.Errorf("%s: %v, want ErrUnauthorized", c.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if strings.Join(cl.Publish, ",") != strings.Join(c.publish, ",") || (cl.Publish == nil) != (c.publish == nil) ||
			strings.Join(cl.Subscribe, ",") != strings.Join(c.sub, ",") || string(cl.Payload) != c.payload {
			t.Errorf("%s: %+v (payload %s)", c.name, cl, cl.Payload)
		}
	}
	// The wrong type in the claim makes the token invalid, as in Mercure.
	if _, err := claimOf(t, token(t, jwt.MapClaims{"mercure": map[string]any{"publish": "*"}})); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("publish as a string: %v", err)
	}
	// An empty list is not nil: Mercure tells them apart (see Claim.Publish).
	cl, err := claimOf(t, token(t, jwt.MapClaims{"mercure": map[string]any{"publish": []string{}}}))
	if err != nil || cl.Publish == nil || len(cl.Publish) != 0 {
		t.Errorf("empty publish: %#v, %v", cl, err)
	}
}

func TestClaim_CanPublish(t *testing.T) {
	t.Parallel()
	cache := mercure.NewSelectorCache(0)
	for _, c := range []struct {
		publish []string
		topics  []string
		want    bool
	}{
		{[]string{"*"}, []string{"a", "b"}, true},
		{[]string{"x", "*"}, []string{"a"}, true},
		{[]string{"a"}, []string{"a"}, true},
		{[]string{"a"}, []string{"b"}, false},
		// Every topic, alternates included, must be allowed.
		{[]string{"https://example.com/books/{id}"}, []string{"https://example.com/books/1", "https://example.com/books/2"}, true},
		{[]string{"https://example.com/books/{id}"}, []string{"https://example.com/books/1", "https://example.com/users/1"}, false},
		{[]string{"https://example.com/books/{id}", "https://example.com/users/{id}"}, []string{"https://example.com/books/1", "https://example.com/users/1"}, true},
		{[]string{}, []string{"a"}, false},
		{nil, []string{"a"}, false},
		// A selector that does not compile still matches itself.
		{[]string{strings.Repeat("x", mercure.MaxTopicBytes+1)}, []string{strings.Repeat("x", mercure.MaxTopicBytes+1)}, true},
	} {
		cl := &mercure.Claim{Publish: c.publish}
		if got := cl.CanPublish(cache, c.topics); got != c.want {
			t.Errorf("publish %v, topics %v: %v, want %v", c.publish, c.topics, got, c.want)
		}
		if got := cl.CanPublish(nil, c.topics); got != c.want {
			t.Errorf("without a cache: publish %v, topics %v: %v, want %v", c.publish, c.topics, got, c.want)
		}
	}
}

func TestClaim_CanReceive(t *testing.T) {
	t.Parallel()
	cache := mercure.NewSelectorCache(0)
	for _, c := range []struct {
		subscribe []string
		topics    []string
		want      bool
	}{
		{[]string{"*"}, []string{"a"}, true},
		{[]string{"b"}, []string{"a", "b"}, true}, // an alternate suffices
		{[]string{"https://example.com/users/foo/{?topic}"}, []string{"https://example.com/books/1",
			"https://example.com/users/foo/?topic=https%3A%2F%2Fexample.com%2Fbooks%2F1"}, true},
		{[]string{"https://example.com/users/foo/{?topic}"}, []string{"https://example.com/books/1"}, false},
		{[]string{}, []string{"a"}, false},
		{[]string{"/.well-known/mercure/subscriptions{/topic}{/subscriber}"}, []string{"/.well-known/mercure/subscriptions/a/b"}, true},
		{[]string{"/.well-known/mercure/subscriptions{/topic}{/subscriber}"}, []string{"/.well-known/mercure/subscriptions?x=1"}, false},
	} {
		cl := &mercure.Claim{Subscribe: c.subscribe}
		if got := cl.CanReceive(cache, c.topics); got != c.want {
			t.Errorf("subscribe %v, topics %v: %v, want %v", c.subscribe, c.topics, got, c.want)
		}
	}
	var anonymous *mercure.Claim
	if anonymous.CanReceive(cache, []string{"a"}) {
		t.Error("an anonymous subscriber can receive private updates")
	}
}

func TestTokenRequest_Token(t *testing.T) {
	t.Parallel()
	origins, err := mercure.ParseOrigins([]string{"https://app.example.com", "https://*.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	const jwtA, jwtB, jwtC = "header.jwt.token", "query.jwt.token", "cookie.jwt.token"
	for _, c := range []struct {
		name string
		r    mercure.TokenRequest
		tok  string
		src  mercure.TokenSource
		err  string // part of the message; "" for none
	}{
		{"nothing: anonymous", mercure.TokenRequest{}, "", mercure.SourceNone, ""},
		{"header", mercure.TokenRequest{Header: []string{"Bearer " + jwtA}}, jwtA, mercure.SourceHeader, ""},
		{"header scheme case", mercure.TokenRequest{Header: []string{"bearer " + jwtA}}, jwtA, mercure.SourceHeader, ""},
		{"header wins over query and cookie", mercure.TokenRequest{Header: []string{"Bearer " + jwtA}, Query: []string{jwtB},
			Cookie: jwtC, HasCookie: true}, jwtA, mercure.SourceHeader, ""},
		{"bad header is not skipped", mercure.TokenRequest{Header: []string{"Basic abc"}, Query: []string{jwtB}}, "", mercure.SourceHeader, `invalid "Authorization" HTTP header`},
		{"empty bearer", mercure.TokenRequest{Header: []string{"Bearer "}}, "", mercure.SourceHeader, `invalid "Authorization" HTTP header`},
		{"two headers", mercure.TokenRequest{Header: []string{"Bearer " + jwtA, "Bearer " + jwtA}}, "", mercure.SourceHeader, `invalid "Authorization" HTTP header`},
		{"query wins over cookie", mercure.TokenRequest{Query: []string{jwtB}, Cookie: jwtC, HasCookie: true}, jwtB, mercure.SourceQuery, ""},
		{"empty query", mercure.TokenRequest{Query: []string{""}, Cookie: jwtC, HasCookie: true}, "", mercure.SourceQuery, `invalid "authorization" Query parameter`},
		{"two queries", mercure.TokenRequest{Query: []string{jwtB, jwtB}}, "", mercure.SourceQuery, `invalid "authorization" Query parameter`},
		{"cookie on GET, no origin needed", mercure.TokenRequest{Cookie: jwtC, HasCookie: true}, jwtC, mercure.SourceCookie, ""},
		{"empty cookie is used (and fails later)", mercure.TokenRequest{HasCookie: true}, "", mercure.SourceCookie, ""},
		{"cookie POST from an allowed origin", mercure.TokenRequest{Cookie: jwtC, HasCookie: true, Post: true, Origin: "https://app.example.com"}, jwtC, mercure.SourceCookie, ""},
		{"cookie POST, origin case", mercure.TokenRequest{Cookie: jwtC, HasCookie: true, Post: true, Origin: "https://APP.example.com"}, jwtC, mercure.SourceCookie, ""},
		{"cookie POST from a wildcard origin", mercure.TokenRequest{Cookie: jwtC, HasCookie: true, Post: true, Origin: "https://a.b.example.org"}, jwtC, mercure.SourceCookie, ""},
		{"cookie POST, origin from the referer", mercure.TokenRequest{Cookie: jwtC, HasCookie: true, Post: true, Referer: "https://app.example.com/page?x=1"}, jwtC, mercure.SourceCookie, ""},
		{"cookie POST, origin wins over referer", mercure.TokenRequest{Cookie: jwtC, HasCookie: true, Post: true, Origin: "https://evil.example.net", Referer: "https://app.example.com/"}, "", mercure.SourceCookie, "origin not allowed"},
		{"cookie POST from another origin", mercure.TokenRequest{Cookie: jwtC, HasCookie: true, Post: true, Origin: "https://evil.example.net"}, "", mercure.SourceCookie, `"https://evil.example.net": origin not allowed to post updates`},
		{"cookie POST, other port", mercure.TokenRequest{Cookie: jwtC, HasCookie: true, Post: true, Origin: "https://app.example.com:8443"}, "", mercure.SourceCookie, "origin not allowed"},
		{"cookie POST without origin or referer", mercure.TokenRequest{Cookie: jwtC, HasCookie: true, Post: true}, "", mercure.SourceCookie, `an "Origin" or a "Referer" HTTP header must be present`},
		{"cookie POST, bad referer", mercure.TokenRequest{Cookie: jwtC, HasCookie: true, Post: true, Referer: "http://[::1"}, "", mercure.SourceCookie, "unable to parse referer"},
		{"POST with a header needs no origin", mercure.TokenRequest{Header: []string{"Bearer " + jwtA}, Post: true}, jwtA, mercure.SourceHeader, ""},
	} {
		tok, src, err := c.r.Token(origins)
		if c.err == "" {
			if err != nil || tok != c.tok || src != c.src {
				t.Errorf("%s: %q %s %v; want %q %s", c.name, tok, src, err, c.tok, c.src)
			}
			continue
		}
		var re *mercure.RequestError
		if !errors.As(err, &re) || re.Status != 401 || !errors.Is(err, mercure.ErrUnauthorized) || !strings.Contains(err.Error(), c.err) || src != c.src {
			t.Errorf("%s: %q %s %v; want a 401 mentioning %q from %s", c.name, tok, src, err, c.err, c.src)
		}
	}
	// No publish origins: cookie publishing is refused; "*" allows all.
	r := mercure.TokenRequest{Cookie: jwtC, HasCookie: true, Post: true, Origin: "https://app.example.com"}
	if _, _, err := r.Token(mercure.Origins{}); err == nil {
		t.Error("cookie POST allowed with no publish origins")
	}
	all, _ := mercure.ParseOrigins([]string{"https://x.example", "*"})
	if tok, _, err := r.Token(all); err != nil || tok != jwtC || !all.All() {
		t.Errorf(`"*": %q %v`, tok, err)
	}
}

func TestParseOrigins(t *testing.T) {
	t.Parallel()
	for _, good := range []string{"*", "null", "https://example.com", "http://localhost:8080", "https://*.example.com", "HTTPS://EXAMPLE.COM"} {
		if _, err := mercure.ParseOrigins([]string{good}); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
	for _, bad := range []string{"example.com", "https://example.com/", "https://example.com/path", "https://u@example.com",
		"https://example.com?x", "https://example.com#f", "mailto:a@b", "", "https://"} {
		if _, err := mercure.ParseOrigins([]string{bad}); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
	o, _ := mercure.ParseOrigins([]string{"https://Example.com", "null"})
	for origin, want := range map[string]bool{"https://example.com": true, "https://EXAMPLE.com": true, "null": true,
		"http://example.com": false, "https://example.com.evil": false, "": false} {
		if o.Allows(origin) != want {
			t.Errorf("Allows(%q) = %v", origin, !want)
		}
	}
}

// A token's exp ends the subscriber's stream: KeyVerifier reports it.
func TestClaim_expiry(t *testing.T) {
	t.Parallel()
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	v, _ := auth.NewKeyVerifier(auth.KeyConfig{Alg: "HS256", Key: testKey})
	var c mercure.Claims
	tok, err := v.VerifyClaims(token(t, jwt.MapClaims{"exp": exp.Unix(), "mercure": map[string]any{"subscribe": []string{"*"}}}), &c)
	if err != nil || !tok.Expires.Equal(exp) {
		t.Fatalf("%+v %v", tok, err)
	}
}
