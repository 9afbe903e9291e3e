package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ssegateway/ssegateway/auth"
	"github.com/ssegateway/ssegateway/gateway/sseclient"
	"github.com/ssegateway/ssegateway/mercure"
)

// mintToken runs `gateway token` with args and env, and returns the token it
// printed: alone on stdout, with a newline.
func mintToken(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), append([]string{"token"}, args...), func(k string) string { return env[k] }, &out, &errOut); err != nil {
		t.Fatalf("gateway token %q: %v\n%s", args, err, errOut.String())
	}
	tok, ok := strings.CutSuffix(out.String(), "\n")
	if !ok || strings.Count(tok, ".") != 2 || strings.ContainsAny(tok, " \n") {
		t.Fatalf("gateway token printed %q, want a token and a newline", out.String())
	}
	return tok
}

// nodeConfig is what a node started with env and args is configured with.
func nodeConfig(t *testing.T, env map[string]string, args ...string) *serveConfig {
	t.Helper()
	cfg, err := parseServe(args, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// nodeVerifier is the token verifier of a node started with env and args.
func nodeVerifier(t *testing.T, env map[string]string, args ...string) *auth.JWTVerifier {
	t.Helper()
	v, err := nodeConfig(t, env, args...).auth.verifier(context.Background(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// tokenPart decodes part i (0: header, 1: claims) of tok.
func tokenPart(t *testing.T, tok string, i int) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[i])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// testKeys are PEM files of private keys and their public keys.
type testKeys struct {
	dir                               string
	rsa, ec256, ec384, ed             string // private keys
	rsaPub, ec256Pub, ec384Pub, edPub string // their public keys
	ec256PubPEM                       []byte // ec256Pub's content
}

func writeKeys(t *testing.T) testKeys {
	t.Helper()
	k := testKeys{dir: t.TempDir()}
	write := func(name string, blocks ...*pem.Block) string {
		var b []byte
		for _, bl := range blocks {
			b = append(b, pem.EncodeToMemory(bl)...)
		}
		p := filepath.Join(k.dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pub := func(name string, key any) (string, []byte) {
		der, err := x509.MarshalPKIXPublicKey(key)
		if err != nil {
			t.Fatal(err)
		}
		p := write(name, &pem.Block{Type: "PUBLIC KEY", Bytes: der})
		b, _ := os.ReadFile(p)
		return p, b
	}
	pkcs8 := func(key any) *pem.Block {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k.rsa = write("rsa.pem", &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}) // openssl genrsa -traditional
	k.rsaPub, _ = pub("rsa.pub.pem", &rk.PublicKey)
	e256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k.ec256 = write("ec256.pem", pkcs8(e256)) // openssl genpkey
	k.ec256Pub, k.ec256PubPEM = pub("ec256.pub.pem", &e256.PublicKey)
	e384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(e384)
	if err != nil {
		t.Fatal(err)
	}
	// openssl ecparam -genkey writes the curve's parameters first.
	k.ec384 = write("ec384.pem", &pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 5, 43, 129, 4, 0, 34}}, &pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})
	k.ec384Pub, _ = pub("ec384.pub.pem", &e384.PublicKey)
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k.ed = write("ed.pem", pkcs8(edKey))
	k.edPub, _ = pub("ed.pub.pem", edPub)
	return k
}

// TestRunToken_verifiesOnTheNode: a token minted by `gateway token`
// verifies with the verifier of a node configured from the same flags and
// variables, grants what was asked, expires an hour later, and does not
// verify on a node with another key, issuer or audience.
func TestRunToken_verifiesOnTheNode(t *testing.T) {
	t.Parallel()
	k := writeKeys(t)
	s1, s2 := strings.Repeat("1", 32), strings.Repeat("2", 40)
	secrets := filepath.Join(k.dir, "secrets")
	if err := os.WriteFile(secrets, []byte("\n  "+s2+"  \n"+s1+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	type node struct {
		env  map[string]string
		args []string
	}
	for _, c := range []struct {
		name  string
		env   map[string]string // of the command, and of the node
		args  []string          // the command's, besides the grant
		node  []string          // the node's flags
		alg   string
		other node // a node the token does not verify on
	}{
		{"--jwt-secret", nil, []string{"--jwt-secret", s1}, []string{"--jwt-secret", s1}, "HS256",
			node{nil, []string{"--jwt-secret", s2}}},
		{"GATEWAY_JWT_SECRET", map[string]string{"GATEWAY_JWT_SECRET": s1}, nil, nil, "HS256",
			node{map[string]string{"GATEWAY_JWT_SECRET": s2}, nil}},
		{"GATEWAY_JWT_SECRET_FILE with two secrets signs with the first", map[string]string{"GATEWAY_JWT_SECRET_FILE": secrets}, nil, nil, "HS256",
			node{nil, []string{"--jwt-secret", s1}}},
		{"--jwt-secret-file", nil, []string{"--jwt-secret-file", secrets}, []string{"--jwt-secret", s2}, "HS256",
			node{nil, []string{"--jwt-secret", s1}}},
		{"RSA", nil, []string{"--private-key", k.rsa}, []string{"--jwt-public-key", k.rsaPub}, "RS256",
			node{nil, []string{"--jwt-public-key", k.ec256Pub + "," + k.edPub}}},
		{"ECDSA P-256", map[string]string{"GATEWAY_JWT_SECRET": s1}, []string{"--private-key", k.ec256}, []string{"--jwt-public-key", k.ec256Pub}, "ES256",
			node{map[string]string{"GATEWAY_JWT_SECRET": s1}, []string{"--jwt-public-key", k.ec384Pub}}},
		{"ECDSA P-384", nil, []string{"--private-key", k.ec384}, []string{"--jwt-public-key", k.ec384Pub}, "ES384",
			node{nil, []string{"--jwt-public-key", k.ec256Pub}}},
		{"Ed25519", nil, []string{"--private-key", k.ed}, []string{"--jwt-public-key", k.edPub}, "EdDSA",
			node{nil, []string{"--jwt-public-key", k.rsaPub}}},
		{"issuer and audience", map[string]string{"GATEWAY_JWT_SECRET": s1, "GATEWAY_JWT_ISSUER": "https://app.example", "GATEWAY_JWT_AUDIENCE": "ssegateway"},
			nil, nil, "HS256", node{map[string]string{"GATEWAY_JWT_SECRET": s1, "GATEWAY_JWT_ISSUER": "https://app.example", "GATEWAY_JWT_AUDIENCE": "other"}, nil}},
		{"issuer by flag", nil, []string{"--jwt-secret", s1, "--jwt-issuer", "https://app.example"}, []string{"--jwt-secret", s1, "--jwt-issuer", "https://app.example"}, "HS256",
			node{nil, []string{"--jwt-secret", s1, "--jwt-issuer", "https://other.example"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			tok := mintToken(t, c.env, append([]string{"--sub", "user-1", "--subscribe", "orders/*", "--subscribe", "news/**", "--publish", "orders/**"}, c.args...)...)
			if h := tokenPart(t, tok, 0); h["alg"] != c.alg || h["typ"] != "JWT" {
				t.Errorf("header %v, want alg %s", h, c.alg)
			}
			if _, ok := tokenPart(t, tok, 1)["mercure"]; ok {
				t.Error("the token has a mercure claim")
			}
			g, err := nodeVerifier(t, c.env, c.node...).Verify(context.Background(), tok)
			if err != nil {
				t.Fatalf("the node refuses the token: %v", err)
			}
			if g.Subject != "user-1" || !g.Subscribe.Allows("orders/1") || !g.Subscribe.Allows("news/a/b") || g.Subscribe.Allows("orders/1/2") ||
				!g.Publish.Allows("orders/1/2") || g.Publish.Allows("news/a") {
				t.Errorf("grant %+v", g)
			}
			if d := time.Until(g.Expires); d < time.Hour-5*time.Second || d > time.Hour {
				t.Errorf("expires in %v, want 1h", d)
			}
			if _, err := nodeVerifier(t, c.other.env, c.other.args...).Verify(context.Background(), tok); !errors.Is(err, auth.ErrInvalidToken) {
				t.Errorf("a node configured otherwise accepts the token: %v", err)
			}
		})
	}
}

// TestRunToken_ttl: --ttl sets exp; 0 leaves it out. iat is now.
func TestRunToken_ttl(t *testing.T) {
	t.Parallel()
	env := map[string]string{"GATEWAY_JWT_SECRET": strings.Repeat("s", 32)}
	for _, c := range []struct {
		ttl  string
		want time.Duration // 0: no exp
	}{{"90s", 90 * time.Second}, {"0", 0}, {"720h", 720 * time.Hour}} {
		tok := mintToken(t, env, "--subscribe", "a", "--ttl", c.ttl)
		claims := tokenPart(t, tok, 1)
		if iat, _ := claims["iat"].(float64); time.Since(time.Unix(int64(iat), 0)).Abs() > 5*time.Second {
			t.Errorf("--ttl %s: iat %v is not now", c.ttl, claims["iat"])
		}
		g, err := nodeVerifier(t, env).Verify(context.Background(), tok)
		if err != nil {
			t.Fatal(err)
		}
		switch d := time.Until(g.Expires); {
		case c.want == 0 && !g.Expires.IsZero():
			t.Errorf("--ttl 0: expires at %v, want no exp", g.Expires)
		case c.want != 0 && (d < c.want-5*time.Second || d > c.want):
			t.Errorf("--ttl %s: expires in %v", c.ttl, d)
		}
	}
}

// TestRunToken_mercure: --mercure writes the mercure claim, signed with the
// key the node's Mercure hub verifies publishers (with --publish) or
// subscribers (without) with: an HMAC secret in the hub's algorithm, from
// our variables or Mercure's, or a private key for the hub's public key.
func TestRunToken_mercure(t *testing.T) {
	t.Parallel()
	k := writeKeys(t)
	pubKey, subKey := "the publishers' key", strings.Repeat("s", 32)
	hmacEnv := map[string]string{"MERCURE_PUBLISHER_JWT_KEY": pubKey, "MERCURE_PUBLISHER_JWT_ALG": "HS384", "GATEWAY_MERCURE_SUBSCRIBER_JWT_KEY": subKey}
	ecEnv := map[string]string{"GATEWAY_MERCURE_PUBLISHER_JWT_KEY": pubKey,
		"GATEWAY_MERCURE_SUBSCRIBER_JWT_KEY": string(k.ec256PubPEM), "MERCURE_SUBSCRIBER_JWT_ALG": "ES256"}
	books := "https://example.com/books/{id}"
	for _, c := range []struct {
		name           string
		env            map[string]string
		args           []string
		publisher      bool // verified by the publisher key, else by the subscriber key
		alg            string
		publish, subsc []string
	}{
		{"publisher", hmacEnv, []string{"--publish", "*", "--publish", books}, true, "HS384", []string{"*", books}, nil},
		{"subscriber", hmacEnv, []string{"--subscribe", books}, false, "HS256", nil, []string{books}},
		{"both", hmacEnv, []string{"--publish", books, "--subscribe", books}, true, "HS384", []string{books}, []string{books}},
		{"subscriber with a private key", ecEnv, []string{"--subscribe", books, "--private-key", k.ec256}, false, "ES256", nil, []string{books}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			tok := mintToken(t, c.env, append([]string{"--mercure", "--sub", "svc"}, c.args...)...)
			if h := tokenPart(t, tok, 0); h["alg"] != c.alg {
				t.Errorf("header %v, want alg %s", h, c.alg)
			}
			if _, ok := tokenPart(t, tok, 1)["sse"]; ok {
				t.Error("a Mercure token has an sse claim")
			}
			m := nodeConfig(t, c.env).mercure
			pub, err := mercureVerifier("publisher", m.pubAlg, m.pubKey, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			sub, err := mercureVerifier("subscriber", m.subAlg, m.subKey, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			right, wrong := sub, pub
			if c.publisher {
				right, wrong = pub, sub
			}
			var claims mercure.Claims
			tk, err := right.VerifyClaims(tok, &claims)
			if err != nil {
				t.Fatalf("the hub refuses the token: %v", err)
			}
			cl, err := claims.Claim()
			if err != nil || tk.Subject != "svc" || strings.Join(cl.Publish, " ") != strings.Join(c.publish, " ") ||
				strings.Join(cl.Subscribe, " ") != strings.Join(c.subsc, " ") || (cl.Publish == nil) != (c.publish == nil) {
				t.Errorf("claim %+v subject %q (%v)", cl, tk.Subject, err)
			}
			if _, err := wrong.VerifyClaims(tok, nil); err == nil {
				t.Error("the other key verifies it too")
			}
		})
	}
}

// TestRunToken_mercure_bothKeysWarns: a token to publish and subscribe is
// signed with the publisher key; when the subscriber key differs, the
// command says on stderr that it cannot subscribe.
func TestRunToken_mercure_bothKeysWarns(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env  map[string]string
		warn bool
	}{
		{map[string]string{"MERCURE_PUBLISHER_JWT_KEY": "k1", "MERCURE_SUBSCRIBER_JWT_KEY": "k2"}, true},
		{map[string]string{"MERCURE_PUBLISHER_JWT_KEY": "k1", "MERCURE_SUBSCRIBER_JWT_KEY": "k1", "MERCURE_SUBSCRIBER_JWT_ALG": "HS512"}, true},
		{map[string]string{"MERCURE_PUBLISHER_JWT_KEY": "k1", "MERCURE_SUBSCRIBER_JWT_KEY": "k1"}, false},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), []string{"token", "--mercure", "--publish", "*", "--subscribe", "*"}, func(k string) string { return c.env[k] }, &out, &errOut)
		if err != nil || out.Len() == 0 {
			t.Fatalf("%v: %v", c.env, err)
		}
		if got := strings.Contains(errOut.String(), "cannot subscribe"); got != c.warn {
			t.Errorf("%v: stderr %q", c.env, errOut.String())
		}
	}
}

// TestRunToken_refusals: mistakes are refused with a message saying what to
// do, and nothing on stdout. Variables that no flag's help names are not
// read.
func TestRunToken_refusals(t *testing.T) {
	t.Parallel()
	k := writeKeys(t)
	s := strings.Repeat("s", 32)
	shortSecond := filepath.Join(k.dir, "short-second")
	if err := os.WriteFile(shortSecond, []byte(s+"\nshort\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := map[string]string{"GATEWAY_JWT_SECRET": s}
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		want string // in the error; "" for a usage error
	}{
		{"no key", nil, []string{"--subscribe", "a"},
			"no key to sign with: set the node's HMAC secret with --jwt-secret [GATEWAY_JWT_SECRET] or --jwt-secret-file [GATEWAY_JWT_SECRET_FILE], or give a private key with --private-key FILE"},
		{"short secret", map[string]string{"GATEWAY_JWT_SECRET": s[1:]}, []string{"--subscribe", "a"}, "HMAC secret 1 is 31 bytes; use at least 32"},
		{"short second secret in the file", map[string]string{"GATEWAY_JWT_SECRET_FILE": shortSecond}, []string{"--subscribe", "a"}, "HMAC secret 2 is 5 bytes"},
		{"no secret file", nil, []string{"--jwt-secret-file", filepath.Join(k.dir, "none"), "--subscribe", "a"}, "--jwt-secret-file: open"},
		{"bad pattern", secret, []string{"--subscribe", "a", "--publish", "a b"}, `--publish: auth: pattern "a b" has ' '`},
		{"empty pattern", secret, []string{"--subscribe", ""}, ""},
		{"no grant", secret, []string{"--sub", "x"}, ""},
		{"an argument", secret, []string{"--subscribe", "a", "b"}, ""},
		{"negative ttl", secret, []string{"--subscribe", "a", "--ttl", "-1h"}, "--ttl -1h0m0s: use 0 (no exp) or at least 1s"},
		{"ttl under a second", secret, []string{"--subscribe", "a", "--ttl", "500ms"}, "at least 1s"},
		{"variables no help names", map[string]string{"GATEWAY_SUBSCRIBE": "a", "GATEWAY_PUBLISH": "a", "GATEWAY_JWT_SECRET": s}, nil, ""},
		{"GATEWAY_PRIVATE_KEY is not read", map[string]string{"GATEWAY_PRIVATE_KEY": k.ed}, []string{"--subscribe", "a"}, "no key to sign with"},
		{"public key as private key", nil, []string{"--subscribe", "a", "--private-key", k.rsaPub}, "found a PUBLIC KEY, not a private key"},
		{"no private key file", nil, []string{"--subscribe", "a", "--private-key", filepath.Join(k.dir, "none")}, "--private-key: open"},
		{"no Mercure subscriber key", map[string]string{"MERCURE_PUBLISHER_JWT_KEY": "k"}, []string{"--mercure", "--subscribe", "a"},
			"no Mercure subscriber key to sign with: set the node's --mercure-subscriber-jwt-key [GATEWAY_MERCURE_SUBSCRIBER_JWT_KEY, or MERCURE_SUBSCRIBER_JWT_KEY]"},
		{"no Mercure publisher key", secret, []string{"--mercure", "--publish", "a"}, "no Mercure publisher key"},
		{"Mercure public key without --private-key", map[string]string{"MERCURE_PUBLISHER_JWT_KEY": "pem", "MERCURE_PUBLISHER_JWT_ALG": "RS256"},
			[]string{"--mercure", "--publish", "*"}, "the hub verifies publishers' tokens with RS256 (--mercure-publisher-jwt-alg), so --mercure-publisher-jwt-key is a public key"},
		{"Mercure unknown algorithm", map[string]string{"MERCURE_PUBLISHER_JWT_KEY": "k", "GATEWAY_MERCURE_PUBLISHER_JWT_ALG": "none"},
			[]string{"--mercure", "--publish", "*"}, `--mercure-publisher-jwt-alg "none"`},
		{"Mercure private key of another algorithm", map[string]string{"MERCURE_SUBSCRIBER_JWT_ALG": "ES384"}, []string{"--mercure", "--subscribe", "*", "--private-key", k.ec256},
			"the private key is an ECDSA P-256 key, which signs ES256, not ES384; the hub verifies subscribers' tokens with ES384 (--mercure-subscriber-jwt-alg)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), append([]string{"token"}, c.args...), func(k string) string { return c.env[k] }, &out, &errOut)
			switch {
			case out.Len() > 0:
				t.Errorf("printed %q", out.String())
			case c.want == "" && !errors.Is(err, errUsage):
				t.Errorf("run = %v, want a usage error", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("run = %v, want an error with %q", err, c.want)
			}
			if err != nil && strings.Contains(err.Error()+errOut.String(), s) {
				t.Error("the secret appears in the message")
			}
		})
	}
}

// TestRunToken_endToEnd: on a node started with a secret, tokens minted by
// the command subscribe to a pattern and publish (with gateway publish
// --token) an event that the subscriber receives; a token for one topic is
// refused (403) for another, and none at all gets 401.
func TestRunToken_endToEnd(t *testing.T) {
	env := map[string]string{"GATEWAY_JWT_SECRET": strings.Repeat("e", 32)}
	n := startRun(t, env)
	reader := mintToken(t, env, "--sub", "reader", "--subscribe", "orders/*")
	writer := mintToken(t, env, "--sub", "writer", "--publish", "orders/**")
	open := func(ctx context.Context, topic, token string) *http.Response {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, eventsURL(n.url, topic), nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	for _, c := range []struct {
		topic, token string
		want         int
	}{{"orders/*", "", 401}, {"news/x", reader, 403}, {"orders/1/2", reader, 403}, {"orders/1", writer, 403}} {
		res := open(context.Background(), c.topic, c.token)
		res.Body.Close()
		if res.StatusCode != c.want {
			t.Errorf("subscribe to %s: %d, want %d", c.topic, res.StatusCode, c.want)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res := open(ctx, "orders/*", reader)
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("subscribe to orders/* with its token: %d", res.StatusCode)
	}
	opened := make(chan struct{})
	p := sseclient.NewParser(&checkpointWatch{r: res.Body, seen: opened}, "")
	events := make(chan sseclient.Event, 1)
	go func() {
		for {
			ev, err := p.Next()
			if err != nil {
				close(events)
				return
			}
			events <- ev
		}
	}()
	select {
	case <-opened:
	case <-ctx.Done():
		t.Fatal("the stream did not open")
	}
	publishCLI := func(topic string) (string, error) {
		var out bytes.Buffer
		err := run(ctx, []string{"publish", "--url", n.url, "--topic", topic, "--token", writer, "hello"}, func(string) string { return "" }, &out, io.Discard)
		return strings.TrimSpace(out.String()), err
	}
	if _, err := publishCLI("news/x"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("publish to news/x with a token for orders/**: %v, want 403", err)
	}
	id, err := publishCLI("orders/42")
	if err != nil {
		t.Fatal(err)
	}
	ev, ok := <-events
	var data struct{ Topic, Data string }
	if !ok || json.Unmarshal([]byte(ev.Data), &data) != nil || data.Topic != "orders/42" || data.Data != "hello" || !strings.Contains(ev.LastEventID, id) {
		t.Fatalf("received %+v (%v), want hello on orders/42 with id %s", ev, ok, id)
	}
}

// TestRunToken_mercure_endToEnd: on a node serving the Mercure hub, a
// publisher token minted by the command publishes a private update that a
// subscriber token minted by it receives; the subscriber's token cannot
// publish.
func TestRunToken_mercure_endToEnd(t *testing.T) {
	env := map[string]string{"MERCURE_PUBLISHER_JWT_KEY": strings.Repeat("p", 32), "MERCURE_SUBSCRIBER_JWT_KEY": strings.Repeat("s", 32)}
	n := startRun(t, env)
	selector := "https://example.com/books/{id}"
	pub := mintToken(t, env, "--mercure", "--publish", "*")
	sub := mintToken(t, env, "--mercure", "--subscribe", selector)
	events, _ := hubEvents(t, hubURL(n.url, []string{selector}, "authorization", sub))
	update := url.Values{"topic": {"https://example.com/books/1"}, "id": {"b-1"}, "data": {"secret"}, "private": {"on"}}
	if status, _ := mercurePost(t, n.url, sub, update); status != http.StatusUnauthorized {
		t.Errorf("publish with the subscriber's token: %d, want 401", status)
	}
	if status, body := mercurePost(t, n.url, pub, update); status != http.StatusOK || body != "b-1" {
		t.Fatalf("publish: %d %q", status, body)
	}
	if ev := nextEvent(t, events); ev.LastEventID != "b-1" || ev.Data != "secret" {
		t.Fatalf("got %+v", ev)
	}
}
