// Package deploy_test runs the load balancer configs in this folder, as they
// are (templated only for ports), in front of real gateway processes.
package deploy_test

import (
	"context"
	"fmt"
	"net"
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

	"github.com/ssegateway/ssegateway/gateway/sseclient"
	"github.com/ssegateway/ssegateway/internal/redistest"
	"github.com/ssegateway/ssegateway/pubsub"
)

func buildGateway(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gateway")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/gateway")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build gateway: %v\n%s", err, out)
	}
	return bin
}

// gw is one gateway process that can be killed and started again.
type gw struct {
	t        *testing.T
	bin      string
	port     int
	redisURL string
	cmd      *exec.Cmd
	done     chan struct{}
}

func (g *gw) start() {
	g.t.Helper()
	cmd := exec.Command(g.bin, "--addr", fmt.Sprintf("127.0.0.1:%d", g.port), "--redis-url", g.redisURL,
		"--insecure-no-auth", "--log-format", "json", "--log-level", "warn", "--retry", "100ms", "--drain-period", "300ms",
		"--heartbeat", "1s")
	logf, err := os.OpenFile(filepath.Join(g.t.TempDir(), "gateway.log"), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		g.t.Fatal(err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	g.cmd, g.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); logf.Close(); close(done) }(g.done)
	waitHTTP(g.t, fmt.Sprintf("http://127.0.0.1:%d/readyz", g.port))
}

// stop sends sig and waits for the process to exit.
func (g *gw) stop(sig syscall.Signal) {
	if g.cmd == nil {
		return
	}
	_ = g.cmd.Process.Signal(sig)
	select {
	case <-g.done:
	case <-time.After(20 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.done
	}
	g.cmd = nil
}

func waitHTTP(t *testing.T, u string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := http.Get(u)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v", u, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// configure rewrites the lines between "# BEGIN name" and "# END name".
func configure(t *testing.T, text, name string, lines []string) string {
	t.Helper()
	re := regexp.MustCompile(`(?s)(# BEGIN ` + name + `\n).*?(\s*# END ` + name + `)`)
	if !re.MatchString(text) {
		t.Fatalf("config has no %q block", name)
	}
	return re.ReplaceAllString(text, "${1}"+strings.Join(lines, "\n")+"${2}")
}

func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if p, err = exec.LookPath("/usr/sbin/" + name); err != nil {
			t.Fatalf("%s is not installed; run `make test`, which installs it (Debian: apt-get install -y nginx-light haproxy)", name)
		}
	}
	return p
}

// startLB runs nginx or haproxy with the config from this folder in front of
// the node ports and returns its base URL.
func startLB(t *testing.T, kind string, ports []int) string {
	t.Helper()
	dir := t.TempDir()
	lbPort := redistest.FreePort(t)
	src, err := os.ReadFile(map[string]string{"nginx": "nginx.conf", "haproxy": "haproxy.cfg"}[kind])
	if err != nil {
		t.Fatal(err)
	}
	text := string(src)
	var cmd *exec.Cmd
	switch kind {
	case "nginx":
		var servers []string
		for _, p := range ports {
			servers = append(servers, fmt.Sprintf("        server 127.0.0.1:%d max_fails=1 fail_timeout=5s;", p))
		}
		text = configure(t, text, "gateway nodes", servers)
		text = configure(t, text, "listen", []string{fmt.Sprintf("        listen 127.0.0.1:%d;", lbPort)})
		for _, d := range []string{"logs", "tmp"} {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		conf := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd = exec.Command(lookPath(t, "nginx"), "-p", dir, "-c", conf, "-g", "daemon off;")
	case "haproxy":
		var servers, fallbacks []string
		for i, p := range ports {
			servers = append(servers, fmt.Sprintf("    server gw%d 127.0.0.1:%d check", i+1, p))
			fallbacks = append(fallbacks, fmt.Sprintf("    server gw%d-fallback 127.0.0.1:%d backup", i+1, p))
		}
		text = configure(t, text, "gateway nodes", servers)
		text = configure(t, text, "fallback nodes", fallbacks)
		text = configure(t, text, "bind", []string{fmt.Sprintf("    bind 127.0.0.1:%d", lbPort)})
		conf := filepath.Join(dir, "haproxy.cfg")
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd = exec.Command(lookPath(t, "haproxy"), "-db", "-f", conf)
	}
	out, err := os.Create(filepath.Join(dir, "lb.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		out.Close()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "lb.log"))
			t.Logf("%s log:\n%s", kind, b)
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", lbPort)
	waitHTTP(t, base+"/readyz")
	return base
}

// client is an EventSource through the load balancer that checks, per topic,
// that events "topic:n" arrive as 0, 1, 2, ... with nothing lost or repeated.
type client struct {
	mu     sync.Mutex
	next   map[string]int
	errs   []string
	opens  int
	events int
}

func (c *client) handle(ev sseclient.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := strings.LastIndexByte(ev.Data, ':')
	n, err := strconv.Atoi(ev.Data[i+1:])
	if ev.Type != "message" || i < 0 || err != nil {
		c.errs = append(c.errs, fmt.Sprintf("unexpected %s event %q", ev.Type, ev.Data))
		return nil
	}
	topic := ev.Data[:i]
	if want := c.next[topic]; n != want {
		c.errs = append(c.errs, fmt.Sprintf("%s: got %d, want %d", topic, n, want))
	}
	c.next[topic] = n + 1
	c.events++
	return nil
}

func (c *client) complete(topics []string, n int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tp := range topics {
		if c.next[tp] != n {
			return false
		}
	}
	return true
}

func TestLoadBalancers_nodeFailures(t *testing.T) {
	for _, kind := range []string{"nginx", "haproxy"} {
		t.Run(kind, func(t *testing.T) { runFailures(t, kind) })
	}
}

func runFailures(t *testing.T, kind string) {
	srv := redistest.Start(t)
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

	topics := []string{"a", "b/c", "d:e"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clients := make([]*client, 6)
	var wg sync.WaitGroup
	for i := range clients {
		c := &client{next: map[string]int{}}
		clients[i] = c
		cl := &sseclient.Client{URL: base + "/events?" + url.Values{"topic": topics}.Encode(), Retry: 100 * time.Millisecond,
			HTTP:   &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext}},
			OnOpen: func() { c.mu.Lock(); c.opens++; c.mu.Unlock() }}
		wg.Go(func() {
			if err := cl.Run(ctx, c.handle); err != nil {
				t.Errorf("client %d gave up: %v", i, err)
			}
		})
	}
	// Every client has connected (and so set up its streams) before the
	// first event: a client with no cursor starts at its first connect.
	deadline := time.Now().Add(15 * time.Second)
	for {
		opened := 0
		for _, c := range clients {
			c.mu.Lock()
			if c.opens > 0 {
				opened++
			}
			c.mu.Unlock()
		}
		if opened == len(clients) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("clients did not connect through the load balancer")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)

	rdb := srv.Client()
	keys, _ := pubsub.NewKeys(pubsub.DefaultPrefix)
	pub := pubsub.NewPublisher(rdb, pubsub.PublisherConfig{Keys: keys})
	published := 0
	stopPub := make(chan struct{})
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		for i := 0; ; i++ {
			select {
			case <-stopPub:
				published = i
				return
			default:
			}
			for _, tp := range topics {
				if _, err := pub.Publish(ctx, pubsub.Message{Topic: tp, Data: fmt.Sprintf("%s:%d", tp, i)}); err != nil {
					t.Errorf("publish: %v", err)
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()

	// Faults while publishing: a crash, then a rolling restart with drains.
	time.Sleep(500 * time.Millisecond)
	nodes[0].stop(syscall.SIGKILL)
	time.Sleep(500 * time.Millisecond)
	nodes[0].start()
	for _, n := range nodes {
		time.Sleep(300 * time.Millisecond)
		n.stop(syscall.SIGTERM)
		n.start()
	}
	time.Sleep(300 * time.Millisecond)
	close(stopPub)
	<-pubDone

	deadline = time.Now().Add(30 * time.Second)
	for _, c := range clients {
		for !c.complete(topics, published) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	cancel()
	wg.Wait()
	reconnects := 0
	for i, c := range clients {
		c.mu.Lock()
		t.Logf("%s client %d: %d events, %d connections", kind, i, c.events, c.opens)
		reconnects += c.opens - 1
		if len(c.errs) > 0 {
			t.Errorf("client %d: %d problems, first %v", i, len(c.errs), c.errs[:min(3, len(c.errs))])
		}
		for _, tp := range topics {
			if c.next[tp] != published {
				t.Errorf("client %d %s: received %d of %d", i, tp, c.next[tp], published)
			}
		}
		c.mu.Unlock()
	}
	t.Logf("%s: %d events per topic x %d topics to %d clients; %d reconnects", kind, published, len(topics), len(clients), reconnects)
	if reconnects < len(clients) {
		t.Fatalf("only %d reconnects: the faults did not reach the clients", reconnects)
	}
}
