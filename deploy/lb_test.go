// Package deploy_test runs the load balancer configs in this folder, as they
// are (templated only for ports), in front of real gateway processes.
package deploy_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ssegateway/ssegateway/contract"
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
		"--heartbeat", "1s", "--trusted-proxies", "127.0.0.0/8") // the load balancer, as its config says
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
		var servers, fallbacks []string
		for _, p := range ports {
			servers = append(servers, fmt.Sprintf("        server 127.0.0.1:%d max_fails=1 fail_timeout=5s;", p))
			fallbacks = append(fallbacks, fmt.Sprintf("        server 127.0.0.1:%d backup max_fails=0;", p))
		}
		text = configure(t, text, "gateway nodes", servers)
		text = configure(t, text, "fallback nodes", fallbacks)
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

// TestLoadBalancers_redisOutage: with Redis down long enough for HAProxy's
// health checks to mark every node unready, a new stream through the load
// balancer must still get a 200 (a browser's EventSource gives up for good on
// anything else), stay open with heartbeats, and deliver once Redis is back.
func TestLoadBalancers_redisOutage(t *testing.T) {
	for _, kind := range []string{"nginx", "haproxy"} {
		t.Run(kind, func(t *testing.T) {
			srv := redistest.Start(t)
			bin := buildGateway(t)
			ports := make([]int, 2)
			for i := range ports {
				ports[i] = redistest.FreePort(t)
				n := &gw{t: t, bin: bin, port: ports[i], redisURL: srv.URL()}
				n.start()
				t.Cleanup(func() { n.stop(syscall.SIGKILL) })
			}
			base := startLB(t, kind, ports)
			srv.Kill()
			time.Sleep(6 * time.Second) // well past HAProxy marking every node down (fall 2 x inter 1s, slow checks)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events?topic=outage", nil)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("%s answered %d during a Redis outage; EventSource would give up for good", kind, res.StatusCode)
			}
			p := sseclient.NewParser(res.Body, "")
			srv.Restart()
			for _, port := range ports {
				waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/readyz", port))
			}
			time.Sleep(500 * time.Millisecond) // the stream's setup completes once Redis answers
			keys, _ := contract.NewKeys(contract.DefaultPrefix)
			if _, err := pubsub.NewPublisher(srv.Client(), pubsub.PublisherConfig{Keys: keys}).
				Publish(ctx, pubsub.Message{Topic: "outage", Data: "back"}); err != nil {
				t.Fatal(err)
			}
			ev, err := p.Next()
			if err != nil || ev.Data != "back" {
				t.Fatalf("after the outage: %+v %v", ev, err)
			}
		})
	}
}
