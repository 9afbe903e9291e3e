package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ssegateway/ssegateway/gateway/sseclient"
	"github.com/ssegateway/ssegateway/internal/redistest"
	"github.com/ssegateway/ssegateway/internal/testcert"
)

// openStream opens a stream with hc and reads up to its checkpoint (the
// stream has joined its topics), returning a parser for what follows.
func openStream(ctx context.Context, t *testing.T, hc *http.Client, u string, trace *httptrace.ClientTrace) (*http.Response, *sseclient.Parser) {
	t.Helper()
	if trace != nil {
		ctx = httptrace.WithClientTrace(ctx, trace)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	res, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%s: status %d", u, res.StatusCode)
	}
	br := bufio.NewReader(res.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: before the checkpoint: %v", u, err)
		}
		if strings.HasPrefix(line, "id: ") {
			break
		}
	}
	return res, sseclient.NewParser(br, "")
}

func postEvent(t *testing.T, hc *http.Client, base, topic, data string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"topic": topic, "data": data})
	res, err := hc.Post(base+"/publish", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("publish %s: %d", topic, res.StatusCode)
	}
}

func waitReadyWith(t *testing.T, hc *http.Client, base string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := hc.Get(base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never became ready (%v)", base, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRun_TLS_http2_20StreamsOneConnection: a TLS node serves HTTP/2, and
// 20 streams share one connection and all deliver. Over HTTP/1.1 a browser
// would hold only 6.
func TestRun_TLS_http2_20StreamsOneConnection(t *testing.T) {
	pair := testcert.Write(t, t.TempDir(), "node")
	n := startRun(t, nil, "--tls-cert", pair.CertFile, "--tls-key", pair.KeyFile)
	if !strings.HasPrefix(n.url, "https://") {
		t.Fatalf("node url %s", n.url)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pair.Pool}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	waitReadyWith(t, hc, n.url)

	var mu sync.Mutex
	conns := map[string]bool{}
	trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) {
		mu.Lock()
		conns[ci.Conn.LocalAddr().String()] = true
		mu.Unlock()
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const streams = 20
	parsers := make([]*sseclient.Parser, streams)
	for i := range streams {
		res, p := openStream(ctx, t, hc, eventsURL(n.url, fmt.Sprintf("h2-%d", i)), trace)
		if res.ProtoMajor != 2 {
			t.Fatalf("stream %d over %s, want HTTP/2", i, res.Proto)
		}
		parsers[i] = p
	}
	for i := range streams {
		postEvent(t, hc, n.url, fmt.Sprintf("h2-%d", i), fmt.Sprintf("event %d", i))
	}
	for i, p := range parsers {
		ev, err := p.Next()
		if err != nil || ev.Data != fmt.Sprintf("event %d", i) {
			t.Fatalf("stream %d: %+v %v", i, ev, err)
		}
	}
	if len(conns) != 1 {
		t.Fatalf("the streams and publishes used %d connections, want 1: %v", len(conns), conns)
	}
}

// TestRun_h2c: with --h2c a plain-text listener takes HTTP/2 with prior
// knowledge, and HTTP/1.1 still works.
func TestRun_h2c(t *testing.T) {
	n := startRun(t, nil, "--h2c")
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, parser := openStream(ctx, t, hc, eventsURL(n.url, "h2c"), nil)
	if res.ProtoMajor != 2 {
		t.Fatalf("got %s, want HTTP/2", res.Proto)
	}
	postEvent(t, http.DefaultClient, n.url, "h2c", "over h2c")
	if ev, err := parser.Next(); err != nil || ev.Data != "over h2c" {
		t.Fatalf("%+v %v", ev, err)
	}
}

// TestCertReloader: a renewed pair is served from the next handshake after
// the check interval; a broken pair is refused and the last good one kept.
func TestCertReloader(t *testing.T) {
	dir := t.TempDir()
	first := testcert.Write(t, dir, "node")
	r, err := newCertReloader(first.CertFile, first.KeyFile, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	r.checkEvery = 0
	serial := func() string {
		c, err := r.getCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.SerialNumber.String()
	}
	if got := serial(); got != first.Serial.String() {
		t.Fatalf("serving %s, want %s", got, first.Serial)
	}
	second := testcert.Write(t, dir, "node")
	if got := serial(); got != second.Serial.String() {
		t.Fatalf("after renewal serving %s, want %s", got, second.Serial)
	}
	// A key that does not match (half-way through an update) is not used.
	other := testcert.Write(t, t.TempDir(), "other")
	key, _ := os.ReadFile(other.KeyFile)
	if err := os.WriteFile(second.KeyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := serial(); got != second.Serial.String() {
		t.Fatalf("with a mismatched key serving %s, want the previous %s", got, second.Serial)
	}
	if _, err := newCertReloader(second.CertFile, second.KeyFile, zerolog.Nop()); err == nil {
		t.Fatal("a mismatched pair loaded at startup")
	}
}

// TestRun_TLS_reloadsCertificate: a node picks up a renewed certificate
// without a restart; open streams are not disturbed.
func TestRun_TLS_reloadsCertificate(t *testing.T) {
	dir := t.TempDir()
	first := testcert.Write(t, dir, "node")
	n := startRun(t, nil, "--tls-cert", first.CertFile, "--tls-key", first.KeyFile)
	served := func() string {
		conn, err := tls.Dial("tcp", strings.TrimPrefix(n.url, "https://"), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	if got := served(); got != first.Serial.String() {
		t.Fatalf("serving %s, want %s", got, first.Serial)
	}
	second := testcert.Write(t, dir, "node")
	deadline := time.Now().Add(5 * time.Second)
	for served() != second.Serial.String() {
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate was not picked up")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRun_adminListener: with --admin-addr, metrics and pprof are served
// there and /metrics leaves the public listener.
func TestRun_adminListener(t *testing.T) {
	n := startRun(t, nil, "--admin-addr", "127.0.0.1:0")
	if n.admin == "" {
		t.Fatal("no admin address logged")
	}
	get := func(u string) (int, string) {
		res, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, _ := get(n.url + "/metrics"); code != http.StatusNotFound {
		t.Errorf("public /metrics: %d, want 404", code)
	}
	if code, body := get(n.admin + "/metrics"); code != http.StatusOK || !strings.Contains(body, "ssegateway_connections_open 0") {
		t.Errorf("admin /metrics: %d %.200s", code, body)
	}
	if code, body := get(n.admin + "/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("admin pprof: %d %.200s", code, body)
	}
	if code, _ := get(n.admin + "/debug/pprof/heap?debug=1"); code != http.StatusOK {
		t.Errorf("admin heap profile: %d", code)
	}
	for _, p := range []string{"/readyz", "/healthz"} {
		if code, _ := get(n.admin + p); code != http.StatusOK {
			t.Errorf("admin %s: %d", p, code)
		}
	}
	if code, _ := get(n.admin + "/events?topic=a"); code != http.StatusNotFound {
		t.Errorf("admin /events: %d, want 404", code)
	}
}

// TestRun_adminListener_bodyTimeout: a request body that never comes holds
// no socket on the admin listener either (net/http waits for the rest of a
// small body before it answers, for as long as it takes).
func TestRun_adminListener_bodyTimeout(t *testing.T) {
	n := startRun(t, nil, "--admin-addr", "127.0.0.1:0", "--body-timeout", "300ms")
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.admin, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /metrics HTTP/1.1\r\nHost: admin\r\nContent-Length: 1000\r\n\r\nx")
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second)) // far above the 300ms: without the bound, forever
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer while the body is pending: %v", err)
	}
	res.Body.Close()
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatalf("the connection was not closed: %v", err)
	}
}

// TestRun_healthcheck: the healthcheck subcommand finds the node from the
// same environment the node runs with, admin listener first.
func TestRun_healthcheck(t *testing.T) {
	n := startRun(t, nil, "--admin-addr", "127.0.0.1:0")
	hostport := func(u string) string { return u[strings.Index(u, "//")+2:] }
	check := func(env map[string]string, args ...string) error {
		var out bytes.Buffer
		return run(context.Background(), append([]string{"healthcheck"}, args...), func(k string) string { return env[k] }, &out, io.Discard)
	}
	if err := check(map[string]string{"GATEWAY_ADMIN_ADDR": hostport(n.admin)}); err != nil {
		t.Errorf("admin: %v", err)
	}
	if err := check(map[string]string{"GATEWAY_ADDR": hostport(n.url)}, "--ready"); err != nil {
		t.Errorf("public, ready: %v", err)
	}
	if err := check(nil, "--url", n.url+"/nothing-here"); err == nil {
		t.Error("a 404 passed the healthcheck")
	}
	port := hostport(n.url)[strings.LastIndex(hostport(n.url), ":"):]
	if got := localURL(func(k string) string { return map[string]string{"GATEWAY_ADDR": port}[k] }); got != "http://127.0.0.1"+port {
		t.Errorf("localURL for %s: %s", port, got)
	}
	if got := localURL(func(k string) string {
		return map[string]string{"GATEWAY_ADDR": ":8443", "GATEWAY_TLS_CERT": "/c"}[k]
	}); got != "https://127.0.0.1:8443" {
		t.Errorf("localURL with TLS: %s", got)
	}
	n.stop()
	if err := check(map[string]string{"GATEWAY_ADMIN_ADDR": hostport(n.admin)}); err == nil {
		t.Error("a stopped node passed the healthcheck")
	}
}

// TestRun_TLS_http1: a client that speaks only HTTP/1.1 over TLS gets a
// taken-over stream, written through the TLS connection.
func TestRun_TLS_http1(t *testing.T) {
	pair := testcert.Write(t, t.TempDir(), "node")
	n := startRun(t, nil, "--tls-cert", pair.CertFile, "--tls-key", pair.KeyFile, "--send-buffer", "65536")
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pair.Pool}, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	waitReadyWith(t, hc, n.url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, parser := openStream(ctx, t, hc, eventsURL(n.url, "tls1"), nil)
	if res.ProtoMajor != 1 || !res.Close {
		t.Fatalf("got %s, close=%v; want HTTP/1.1 ending with the connection", res.Proto, res.Close)
	}
	postEvent(t, hc, n.url, "tls1", "over TLS")
	if ev, err := parser.Next(); err != nil || ev.Data != "over TLS" {
		t.Fatalf("%+v %v", ev, err)
	}
}

// TestMain_adminShowsNoSecrets runs the binary with its secrets given as
// flags — the worst case — and reads everything its admin listener serves:
// no secret may be there, nor in its log. (/debug/pprof/cmdline used to
// print them: pprof's handler shows os.Args as they are.)
func TestMain_adminShowsNoSecrets(t *testing.T) {
	const (
		jwtSecret  = "jwt-secret-0123456789abcdef0123456789abcdef"
		redisPass  = "redis-pass-0123456789"
		unusedPass = "unused-pass-0123456789" // the URL's password wins; still a secret
	)
	srv := redistest.Start(t)
	if err := srv.Client().ConfigSet(context.Background(), "requirepass", redisPass).Err(); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "gateway")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	port, admin := redistest.FreePort(t), redistest.FreePort(t)
	cmd := exec.Command(bin, "--addr", fmt.Sprintf("127.0.0.1:%d", port), "-admin-addr", fmt.Sprintf("127.0.0.1:%d", admin),
		"--redis-url", "redis://default:"+redisPass+"@"+srv.Addr()+"/0",
		"--redis-password", unusedPass, "--jwt-secret="+jwtSecret, "--log-format", "json", "--log-level", "debug")
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := fmt.Sprintf("http://127.0.0.1:%d", admin)
	waitReady(t, base)
	secrets := []string{jwtSecret, redisPass, unusedPass}
	get := func(path string) string {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("admin %s shows the secret %q", path, s)
			}
		}
		return string(b)
	}
	cmdline := get("/debug/pprof/cmdline")
	if !strings.Contains(cmdline, "--jwt-secret=REDACTED") || !strings.Contains(cmdline, "--redis-password\x00REDACTED") ||
		!strings.Contains(cmdline, "redis://REDACTED@") || !strings.Contains(cmdline, "-admin-addr") {
		t.Errorf("cmdline %q: want the command line with its secrets replaced", cmdline)
	}
	for _, p := range []string{"/debug/pprof/", "/metrics", "/healthz", "/readyz", "/debug/vars", "/debug/pprof/goroutine?debug=2",
		"/debug/pprof/heap?debug=1", "/debug/pprof/allocs?debug=1", "/debug/pprof/threadcreate?debug=1", "/debug/pprof/block?debug=1",
		"/debug/pprof/mutex?debug=1", "/debug/pprof/symbol", "/debug/pprof/trace?seconds=0.2"} {
		get(p)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	for _, s := range secrets {
		if strings.Contains(logs.String(), s) {
			t.Errorf("the log shows the secret %q", s)
		}
	}
}

func TestRedactArgs(t *testing.T) {
	in := []string{"--addr", ":80", "--jwt-secret", "s1", "-jwt-secret=s2", "--redis-password=s3", "-redis-password", "s4",
		"--redis-url=rediss://u:s5@h:6379/0", "--redis-url", "redis-sentinel://:s6@a:1,b:2/m?sentinel_password=s7&db=1",
		"--jwks-url", "https://id.example/keys", "--jwt-secret"}
	got := strings.Join(redactArgs(in), " ")
	want := "--addr :80 --jwt-secret REDACTED -jwt-secret=REDACTED --redis-password=REDACTED -redis-password REDACTED " +
		"--redis-url=rediss://REDACTED@h:6379/0 --redis-url redis-sentinel://REDACTED@a:1,b:2/m?sentinel_password=REDACTED&db=1 " +
		"--jwks-url https://id.example/keys --jwt-secret"
	if got != want {
		t.Errorf("redactArgs:\n got %s\nwant %s", got, want)
	}
}

func TestParseServe_redisPasswordFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(f, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"GATEWAY_REDIS_PASSWORD_FILE": f}
	c, err := parseServe(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil || c.redis.config().Password != "s3cret" {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := parseServe([]string{"--redis-password", "x"}, func(k string) string { return env[k] }, io.Discard); err == nil {
		t.Error("both --redis-password and --redis-password-file accepted")
	}
	if _, err := parseServe([]string{"--redis-password-file", f + ".missing"}, func(string) string { return "" }, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "--redis-password-file") {
		t.Errorf("a missing file: %v", err)
	}
}
