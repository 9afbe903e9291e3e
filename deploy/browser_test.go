package deploy_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ssegateway/ssegateway/internal/redistest"
	"github.com/ssegateway/ssegateway/internal/testcert"
)

// manyStreamsPage runs browser-many.mjs against base with n EventSources
// and collects what it reports.
type manyStreamsPage struct {
	mu       sync.Mutex
	opened   map[int]bool
	protocol map[int]string // index → the protocol its response came over
	messages map[int][]string
	problems []string
}

func openManyStreams(t *testing.T, base string, n int) *manyStreamsPage {
	t.Helper()
	p := &manyStreamsPage{opened: map[int]bool{}, protocol: map[int]string{}, messages: map[int][]string{}}
	cmd := exec.Command("node", "browser-many.mjs", base, fmt.Sprint(n))
	cmd.Dir = "chaos"
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start browser-many.mjs (run `make test` to install node packages): %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m struct {
				Kind, Protocol, Data, Message string
				I                             int
				Closed                        bool
			}
			p.mu.Lock()
			switch err := json.Unmarshal(sc.Bytes(), &m); {
			case err != nil:
				p.problems = append(p.problems, "printed "+sc.Text())
			case m.Kind == "open":
				p.opened[m.I] = true
			case m.Kind == "protocol":
				p.protocol[m.I] = m.Protocol
			case m.Kind == "message":
				p.messages[m.I] = append(p.messages[m.I], m.Data)
			case m.Kind == "error" && m.Closed, m.Kind == "pageerror":
				p.problems = append(p.problems, sc.Text())
			}
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("browser-many.mjs stderr:\n%s", stderr.String())
		}
	})
	return p
}

// waitFor polls cond for up to d.
func (p *manyStreamsPage) waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		p.mu.Lock()
		ok := cond()
		p.mu.Unlock()
		if ok || time.Now().After(deadline) {
			return ok
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startTLSNode runs the gateway binary single-node, with TLS when pair is
// given.
func startTLSNode(t *testing.T, bin string, pair *testcert.Pair) (base string, hc *http.Client) {
	t.Helper()
	port := redistest.FreePort(t)
	args := []string{"--addr", fmt.Sprintf("127.0.0.1:%d", port), "--log-format", "json", "--log-level", "warn"}
	base, hc = fmt.Sprintf("http://127.0.0.1:%d", port), http.DefaultClient
	if pair != nil {
		args = append(args, "--tls-cert", pair.CertFile, "--tls-key", pair.KeyFile)
		base = fmt.Sprintf("https://127.0.0.1:%d", port)
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pair.Pool}, ForceAttemptHTTP2: true}
		t.Cleanup(tr.CloseIdleConnections)
		hc = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	cmd := exec.Command(bin, args...)
	logf, err := os.Create(filepath.Join(t.TempDir(), "gateway.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait(); logf.Close() })
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := hc.Get(base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return base, hc
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v", base, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBrowser_manyEventSourcesOverHTTP2: headless Chromium opens 10
// EventSources on one page of a TLS node; all ten open over h2 and each
// receives its event exactly once. The same page on a plain HTTP/1.1 node
// opens only 6, which is what the TLS mode is for.
func TestBrowser_manyEventSourcesOverHTTP2(t *testing.T) {
	const n = 10
	bin := buildGateway(t)
	pair := testcert.Write(t, t.TempDir(), "node")

	t.Run("tls", func(t *testing.T) {
		base, hc := startTLSNode(t, bin, &pair)
		page := openManyStreams(t, base, n)
		if !page.waitFor(20*time.Second, func() bool { return len(page.opened) == n }) {
			t.Fatalf("%d of %d EventSources opened: %v %v", len(page.opened), n, page.opened, page.problems)
		}
		page.waitFor(5*time.Second, func() bool { return len(page.protocol) == n })
		page.mu.Lock()
		for i := range n {
			if proto := page.protocol[i]; proto != "h2" {
				t.Errorf("EventSource %d used %q, want h2", i, proto)
			}
		}
		page.mu.Unlock()
		// The open event fires on the response headers, a moment before
		// the stream has joined its topic; give it that moment.
		time.Sleep(500 * time.Millisecond)
		for i := range n {
			body := fmt.Sprintf(`{"topic":"many-%d","data":"to %d"}`, i, i)
			res, err := hc.Post(base+"/publish", "application/json", bytes.NewBufferString(body))
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("publish: %d", res.StatusCode)
			}
		}
		page.waitFor(10*time.Second, func() bool {
			for i := range n {
				if len(page.messages[i]) == 0 {
					return false
				}
			}
			return true
		})
		time.Sleep(200 * time.Millisecond) // a duplicate would arrive by now
		page.mu.Lock()
		defer page.mu.Unlock()
		for i := range n {
			if got := page.messages[i]; len(got) != 1 || got[0] != fmt.Sprintf("to %d", i) {
				t.Errorf("EventSource %d received %q, want exactly [\"to %d\"]", i, got, i)
			}
		}
		if len(page.problems) > 0 {
			t.Errorf("problems: %v", page.problems)
		}
	})

	t.Run("http1 control", func(t *testing.T) {
		base, _ := startTLSNode(t, bin, nil)
		page := openManyStreams(t, base, n)
		// Chromium may take a while to start on a loaded machine: wait for
		// the six the browser allows, then give a seventh time to show.
		page.waitFor(30*time.Second, func() bool { return len(page.opened) >= 6 })
		page.waitFor(2*time.Second, func() bool { return len(page.opened) > 6 })
		page.mu.Lock()
		defer page.mu.Unlock()
		if len(page.opened) != 6 {
			t.Errorf("over HTTP/1.1 %d of %d EventSources opened; the browser's limit is 6, so this check proves nothing", len(page.opened), n)
		}
	})
}
