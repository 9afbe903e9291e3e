package docstest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ssegateway/ssegateway/internal/redistest"
)

// TestExamples runs every page's marked examples, in order, against real
// gateway processes and a real redis-server, and compares what they print
// with what the page says. docs/development.md documents the markers.
func TestExamples(t *testing.T) {
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the examples need %s; install it (Debian: apt-get install -y %s)", tool, tool)
		}
	}
	ran := 0
	for _, rel := range userPages(t) {
		p := mustRead(t, rel)
		if len(p.steps) == 0 {
			continue
		}
		ran++
		t.Run(rel, func(t *testing.T) {
			t.Parallel()
			newSession(t, p).run()
		})
	}
	if ran == 0 {
		t.Fatal("no page has a runnable example")
	}
}

// Bounds on each step. Generous: the machine may be loaded; a step that
// succeeds returns as soon as it does.
const (
	stepTimeout  = 30 * time.Second
	pollInterval = 20 * time.Millisecond
)

// docPorts are the ports the pages use, each replaced with a free one so
// that pages run side by side: 8080 and 8081 for nodes, 9090 for an admin
// listener, 6379 for Redis (started only if the page names it).
var (
	docPorts = []string{"8080", "8081", "9090", "6379"}
	portRe   = regexp.MustCompile(`(^|[^0-9]):(8080|8081|9090|6379)([^0-9]|$)`)
)

// session runs one page: its blocks share a working directory (files carry
// over from block to block, shell variables do not), an environment, the
// ports and the values captured from outputs.
type session struct {
	t      *testing.T
	p      *page
	dir    string // the blocks' working directory
	outDir string // where terminals write their output
	env    []string
	ports  map[string]string
	vars   map[string]string
	terms  map[string]*terminal
	last   *ran // the last foreground block, for <!-- output -->
}

// ran is a foreground block that has finished.
type ran struct {
	step    step
	out     string
	checked bool
}

// terminal is a block running in the background, as in a second terminal
// window.
type terminal struct {
	name string
	step step
	cmd  *exec.Cmd
	out  string // file with its output so far
	done chan struct{}
}

func newSession(t *testing.T, p *page) *session {
	bin := gatewayBin(t)
	s := &session{t: t, p: p, dir: t.TempDir(), outDir: t.TempDir(), ports: map[string]string{},
		vars: map[string]string{}, terms: map[string]*terminal{}}
	needRedis := false
	for _, st := range p.steps {
		if st.block != nil && strings.Contains(st.block.text, ":6379") || strings.Contains(st.opts["ready"], ":6379") {
			needRedis = true
		}
	}
	for _, port := range docPorts {
		if port == "6379" {
			if needRedis {
				s.ports[port] = strings.TrimPrefix(redistest.Start(t).Addr(), "127.0.0.1:")
			}
			continue
		}
		s.ports[port] = strconv.Itoa(freePort(t))
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "GATEWAY_"), strings.HasPrefix(k, "MERCURE_"), k == "HOME", k == "CURL_HOME", k == "PATH":
			continue
		}
		s.env = append(s.env, kv)
	}
	s.env = append(s.env,
		"PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"HOME="+s.dir, // no ~/.curlrc or ~/.redisclirc of the developer's
		"NO_COLOR=1",
		// The defaults the pages rely on (a node on :8080, gateway publish
		// posting to it), moved to the session's port.
		"GATEWAY_ADDR="+s.rewrite(":8080"),
		"GATEWAY_URL="+s.rewrite("http://localhost:8080"),
		// Heartbeats (": " lines) come every 15 s whatever the page does;
		// on a loaded machine a page can take that long, and a stream's
		// output would then differ from the page by a heartbeat.
		"GATEWAY_HEARTBEAT=1h")
	t.Cleanup(s.stopAll)
	return s
}

func (s *session) run() {
	for _, st := range s.p.steps {
		began := time.Now()
		switch st.verb {
		case "run":
			if st.block.info != "sh" && st.block.info != "bash" {
				s.t.Fatalf("%s: a runnable block is ```sh or ```bash, not ```%s", s.where(st), st.block.info)
			}
			if name := st.opts["terminal"]; name != "" {
				s.start(name, st)
			} else {
				s.foreground(st)
			}
			if u := st.opts["ready"]; u != "" {
				s.waitReady(st, s.rewrite(u))
			}
		case "output":
			s.output(st)
		case "ctrl-c":
			s.interrupt(st)
		}
		s.t.Logf("%s: %s %v: %v", s.where(st), st.verb, st.opts, time.Since(began).Round(time.Millisecond))
	}
}

// freePort is a TCP port free on every interface a moment ago, chosen
// below Linux's ephemeral range (32768–60999 by default): a port from that
// range, once closed, is soon handed to the next outgoing connection or
// listener on port 0 (a node's embedded Redis), and the node would find it
// taken.
func freePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		port := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", ":"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		ln.Close()
		return port
	}
	t.Fatal("no free port in 20000-31999")
	return 0
}

// where names a step for failure messages.
func (s *session) where(st step) string { return fmt.Sprintf("%s:%d", s.p.path, st.line) }

// rewrite moves the page's ports to the session's.
func (s *session) rewrite(text string) string {
	return portRe.ReplaceAllStringFunc(text, func(m string) string {
		sub := portRe.FindStringSubmatch(m)
		port, ok := s.ports[sub[2]]
		if !ok {
			s.t.Fatalf("%s names port %s, which needs Redis: name :6379 in a block so the test starts one", s.p.path, sub[2])
		}
		return sub[1] + ":" + port + sub[3]
	})
}

var (
	placeholderRe = regexp.MustCompile(`<([A-Za-z0-9][A-Za-z0-9 _.-]*[A-Za-z0-9]|[A-Za-z0-9])>`)
)

// script is a block's text as it runs: the values captured so far in place
// of their placeholders, the ports moved.
func (s *session) script(st step) string {
	text := placeholderRe.ReplaceAllStringFunc(st.block.text, func(m string) string {
		name := m[1 : len(m)-1]
		v, ok := s.vars[name]
		if !ok {
			s.t.Fatalf("%s: %s is not a value an earlier output captured", s.where(st), m)
		}
		return v
	})
	return s.rewrite(text)
}

func (s *session) timeout(st step) time.Duration {
	if v := st.opts["timeout"]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			s.t.Fatalf("%s: timeout=%s: %v", s.where(st), v, err)
		}
		return d
	}
	return stepTimeout
}

func (s *session) command(st step, out *os.File) *exec.Cmd {
	cmd := exec.Command("bash", "--noprofile", "--norc", "-euo", "pipefail", "-c", s.script(st))
	cmd.Dir, cmd.Env = s.dir, s.env
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// foreground runs a block to its end and keeps its output for a following
// <!-- output --> block.
func (s *session) foreground(st step) {
	f, err := os.CreateTemp(s.outDir, "block-*.out")
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	cmd := s.command(st, f)
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-done:
	case <-time.After(s.timeout(st)):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		out, _ := os.ReadFile(f.Name())
		s.t.Fatalf("%s: the block did not finish within %v; it printed:\n%s\n%s", s.where(st), s.timeout(st), out, s.context())
	}
	// Whatever the block left running in the background goes with it.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	out, _ := os.ReadFile(f.Name())
	status := 0
	var exit *exec.ExitError
	if errors.As(werr, &exit) {
		status = exit.ExitCode()
	} else if werr != nil {
		s.t.Fatal(werr)
	}
	want := 0
	if v := st.opts["status"]; v != "" {
		want, _ = strconv.Atoi(v)
	}
	if status != want {
		s.t.Fatalf("%s: exit status %d, want %d; the block:\n%s\nprinted:\n%s\n%s", s.where(st), status, want, s.script(st), out, s.context())
	}
	s.last = &ran{step: st, out: string(out)}
}

// start runs a block in the background, in a terminal of its own.
func (s *session) start(name string, st step) {
	if tm, ok := s.terms[name]; ok {
		select {
		case <-tm.done:
		default:
			s.t.Fatalf("%s: terminal %s is still running the block of line %d", s.where(st), name, tm.step.line)
		}
	}
	f, err := os.CreateTemp(s.outDir, "terminal-"+name+"-*.out")
	if err != nil {
		s.t.Fatal(err)
	}
	tm := &terminal{name: name, step: st, out: f.Name(), done: make(chan struct{})}
	tm.cmd = s.command(st, f)
	if err := tm.cmd.Start(); err != nil {
		f.Close()
		s.t.Fatal(err)
	}
	go func() { _ = tm.cmd.Wait(); f.Close(); close(tm.done) }()
	s.terms[name] = tm
}

func (tm *terminal) output() string {
	b, _ := os.ReadFile(tm.out)
	return string(b)
}

func (s *session) terminal(st step) *terminal {
	name := st.opts["terminal"]
	tm, ok := s.terms[name]
	if !ok {
		s.t.Fatalf("%s: no terminal %q was started before", s.where(st), name)
	}
	return tm
}

// waitReady polls url until it answers 200.
func (s *session) waitReady(st step, url string) {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(s.timeout(st))
	for {
		res, err := c.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if tm := s.terms[st.opts["terminal"]]; tm != nil {
			select {
			case <-tm.done:
				s.t.Fatalf("%s: the block ended before %s was ready; it printed:\n%s", s.where(st), url, tm.output())
			default:
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: %s not ready within %v (last: %v)\n%s", s.where(st), url, s.timeout(st), err, s.context())
		}
		time.Sleep(pollInterval)
	}
}

// output compares an <!-- output --> block with what was printed: by the
// last foreground block, at once; or so far by a terminal, polling until
// it matches.
func (s *session) output(st step) {
	want := s.rewrite(st.block.text)
	if st.opts["terminal"] == "" {
		if s.last == nil || s.last.checked {
			s.t.Fatalf("%s: an <!-- output --> block with no <!-- run --> block before it", s.where(st))
		}
		s.last.checked = true
		vars, err := match(want, s.last.out, s.vars)
		if err != nil {
			s.t.Fatalf("%s: the block of line %d printed something else: %v\nwant:\n%s\ngot:\n%s", s.where(st), s.last.step.line, err, want, s.last.out)
		}
		s.vars = vars
		return
	}
	tm := s.terminal(st)
	deadline := time.Now().Add(s.timeout(st))
	for {
		got := tm.output()
		vars, err := match(want, got, s.vars)
		if err == nil {
			s.vars = vars
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: terminal %s did not show this within %v: %v\nwant:\n%s\ngot:\n%s\n%s", s.where(st), tm.name, s.timeout(st), err, want, got, s.context())
		}
		time.Sleep(pollInterval)
	}
}

// interrupt does what Ctrl-C does in a terminal: SIGINT to its processes,
// then waits for them to end.
func (s *session) interrupt(st step) {
	tm := s.terminal(st)
	_ = syscall.Kill(-tm.cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-tm.done:
	case <-time.After(s.timeout(st)):
		s.t.Fatalf("%s: terminal %s did not stop within %v of Ctrl-C; it printed:\n%s", s.where(st), tm.name, s.timeout(st), tm.output())
	}
}

// stopAll kills whatever the page left running.
func (s *session) stopAll() {
	for _, tm := range s.terms {
		_ = syscall.Kill(-tm.cmd.Process.Pid, syscall.SIGKILL)
		<-tm.done
	}
}

// context is what the terminals printed, for failure messages.
func (s *session) context() string {
	var b strings.Builder
	for name, tm := range s.terms {
		out := tm.output()
		if len(out) > 4000 {
			out = "…" + out[len(out)-4000:]
		}
		fmt.Fprintf(&b, "--- terminal %s (line %d) printed:\n%s\n", name, tm.step.line, out)
	}
	return b.String()
}

// match reports whether got is what want shows. In want, <name> stands for
// a word (a run of characters other than white space): the first time a
// name is seen it captures that word, afterwards it must be the same word.
// … stands for any text within a line, and a line of … alone for any
// lines. Trailing white space of lines and trailing blank lines are
// ignored. It returns vars with the new captures.
func match(want, got string, vars map[string]string) (map[string]string, error) {
	want, got = normalize(want), normalize(got)
	rx, names, err := compile(want, vars)
	if err != nil {
		return nil, err
	}
	m := rx.FindStringSubmatch(got)
	if m == nil {
		return nil, errors.New(firstDifference(want, got, vars))
	}
	out := make(map[string]string, len(vars)+len(names))
	for k, v := range vars {
		out[k] = v
	}
	for i, name := range names {
		if v, ok := out[name]; ok && v != m[i+1] {
			return nil, fmt.Errorf("<%s> is %q in one place and %q in another", name, v, m[i+1])
		}
		out[name] = m[i+1]
	}
	return out, nil
}

// normalize drops trailing white space from lines and trailing blank lines.
func normalize(s string) string {
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t")
	}
	return strings.TrimRight(strings.Join(lines, "\n"), "\n")
}

// compile turns want into an anchored regular expression, with the names
// of its capture groups in order.
func compile(want string, vars map[string]string) (*regexp.Regexp, []string, error) {
	var re strings.Builder
	var names []string
	re.WriteString(`^`)
	for i, line := range strings.Split(want, "\n") {
		if i > 0 {
			re.WriteString(`\n`)
		}
		if strings.TrimSpace(line) == "…" {
			re.WriteString(`(?s:.*?)`)
			continue
		}
		for line != "" {
			loc := placeholderRe.FindStringIndex(line)
			e := strings.Index(line, "…")
			switch {
			case loc == nil && e < 0:
				re.WriteString(regexp.QuoteMeta(line))
				line = ""
			case loc == nil || e >= 0 && e < loc[0]:
				re.WriteString(regexp.QuoteMeta(line[:e]) + `.*?`)
				line = line[e+len("…"):]
			default:
				re.WriteString(regexp.QuoteMeta(line[:loc[0]]))
				name := line[loc[0]+1 : loc[1]-1]
				if v, ok := vars[name]; ok {
					re.WriteString(regexp.QuoteMeta(v))
				} else {
					re.WriteString(`(\S+?)`)
					names = append(names, name)
				}
				line = line[loc[1]:]
			}
		}
	}
	re.WriteString(`$`)
	rx, err := regexp.Compile(re.String())
	return rx, names, err
}

// firstDifference names the first line of want that got does not match,
// judged line by line: a hint for the reader of a failure.
func firstDifference(want, got string, vars map[string]string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i, w := range wl {
		if strings.TrimSpace(w) == "…" {
			return "no match"
		}
		if i >= len(gl) {
			return fmt.Sprintf("the output ends before line %d, %q", i+1, w)
		}
		if rx, _, err := compile(w, vars); err == nil && !rx.MatchString(gl[i]) {
			return fmt.Sprintf("line %d: want %q, got %q", i+1, w, gl[i])
		}
	}
	if len(gl) > len(wl) {
		return fmt.Sprintf("the output goes on past line %d: %q", len(wl), gl[len(wl)])
	}
	return "no match"
}
