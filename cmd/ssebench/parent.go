package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ssegateway/ssegateway/auth"
)

// target is the server under test and how to reach it.
type target struct {
	url       string // base URL
	path      string // stream path; %s is the topic
	publish   string // publish URL
	body      string // publish body; the first %s is the topic, the second the data
	sources   string // source address range
	perProc   int    // connections per worker process
	pid       int    // server process, for RSS and CPU; 0 if unknown
	redisPID  int    // the Redis it uses, for CPU; 0 if unknown
	metricURL string // the server's Prometheus metrics, if any
	exe       string // the ssebench binary that runs workers; this one by default
	// form publishes application/x-www-form-urlencoded (topic and data
	// escaped into body), as a Mercure hub takes them; JSON otherwise.
	form bool
	// auth is an Authorization header value for publishing, if any.
	auth string
}

func (t *target) register(fs *flag.FlagSet) {
	fs.StringVar(&t.url, "url", "http://127.0.0.1:8080", "base URL of the SSE server")
	fs.StringVar(&t.path, "path", "/events?topic=%s", "stream path; %s is replaced by the topic")
	fs.StringVar(&t.publish, "publish-url", "", "where events are POSTed (default: URL/publish)")
	fs.StringVar(&t.body, "publish-body", `{"topic":%q,"data":%q}`, "publish body; the first verb gets the topic, the second the event data")
	fs.StringVar(&t.sources, "sources", "127.0.0.1-127.0.0.20", "local addresses to connect from: a.b.c.X-a.b.c.Y, or a comma-separated list")
	fs.IntVar(&t.perProc, "per-process", 5000, "connections per worker process (each process may hold only so many files)")
	fs.IntVar(&t.pid, "pid", 0, "the server's process id, to read its RSS and CPU time (Linux /proc)")
	fs.IntVar(&t.redisPID, "redis-pid", 0, "the process id of the server's Redis, to read its CPU time too (fanout)")
	fs.StringVar(&t.metricURL, "metrics-url", "", "the server's Prometheus /metrics, to report its counters")
	fs.BoolVar(&t.form, "publish-form", false, "publish a form (application/x-www-form-urlencoded; use with --publish-body 'topic=%s&data=%s'), as a Mercure hub takes it")
	fs.StringVar(&t.auth, "publish-auth", "", "Authorization header value for publishing, e.g. 'Bearer <token>'")
}

// mercure points t at a Mercure hub: its subscribe and publish paths, a
// form body, and a publisher token signed with key (HS256).
func (t *target) mercure(key string) error {
	signer, err := auth.NewSigner(auth.SignerConfig{HMACSecret: []byte(key)})
	if err != nil {
		return err
	}
	token, err := signer.Sign(map[string]any{"mercure": map[string]any{"publish": []string{"*"}}})
	if err != nil {
		return err
	}
	t.path = "/.well-known/mercure?topic=%s"
	t.publish = strings.TrimRight(t.url, "/") + "/.well-known/mercure"
	t.body, t.form = "topic=%s&data=%s", true
	t.auth = "Bearer " + token
	return nil
}

func (t *target) publishURL() string {
	if t.publish != "" {
		return t.publish
	}
	return strings.TrimRight(t.url, "/") + "/publish"
}

// sourceList expands "127.0.0.1-127.0.0.20" or "a,b,c".
func sourceList(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	if from, to, ok := strings.Cut(s, "-"); ok {
		a, b := net.ParseIP(from).To4(), net.ParseIP(to).To4()
		if a == nil || b == nil || !bytes.Equal(a[:3], b[:3]) || a[3] > b[3] {
			return nil, fmt.Errorf("--sources %q: want a.b.c.X-a.b.c.Y", s)
		}
		var out []string
		for i := int(a[3]); i <= int(b[3]); i++ {
			out = append(out, fmt.Sprintf("%d.%d.%d.%d", a[0], a[1], a[2], i))
		}
		return out, nil
	}
	return strings.Split(s, ","), nil
}

// workers are the worker processes of one run.
type workers struct {
	procs []*workerProc
}

type workerProc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

// spawn starts enough worker processes for n connections and gives each
// its share of the job.
func (t *target) spawn(j job, n int) (*workers, error) {
	sources, err := sourceList(t.sources)
	if err != nil {
		return nil, err
	}
	self := t.exe
	if self == "" {
		if self, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	procs := max(1, (n+t.perProc-1)/t.perProc)
	ws := &workers{}
	first := 0
	for p := range procs {
		share := n / procs
		if p < n%procs {
			share++
		}
		cmd := exec.Command(self, "worker")
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		wj := j
		wj.N, wj.First = share, first
		first += share
		if n > 0 {
			wj.Churn = j.Churn * float64(share) / float64(n)
		}
		// Each process starts at its own source address.
		if len(sources) > 0 {
			k := p % len(sources)
			wj.Sources = append(append([]string{}, sources[k:]...), sources[:k]...)
		}
		b, _ := json.Marshal(wj)
		if _, err := fmt.Fprintf(in, "%s\n", b); err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		ws.procs = append(ws.procs, &workerProc{cmd: cmd, in: in, out: sc})
	}
	return ws, nil
}

// collect reads the next report of every worker and adds them up.
func (ws *workers) collect(timeout time.Duration) (report, error) {
	var total report
	total.Latency = newHist()
	type got struct {
		r   report
		err error
	}
	ch := make(chan got, len(ws.procs))
	for _, p := range ws.procs {
		go func() {
			if !p.out.Scan() {
				ch <- got{err: fmt.Errorf("worker ended: %v", p.out.Err())}
				return
			}
			var r report
			ch <- got{r: r, err: json.Unmarshal(p.out.Bytes(), &r)}
		}()
	}
	deadline := time.After(timeout)
	for range ws.procs {
		select {
		case g := <-ch:
			if g.err != nil {
				return total, g.err
			}
			total.Opened += g.r.Opened
			total.Failed += g.r.Failed
			total.Events += g.r.Events
			total.Lost += g.r.Lost
			total.Dupes += g.r.Dupes
			total.Reconnects += g.r.Reconnects
			total.Done += g.r.Done
			total.Gaps += g.r.Gaps
			total.Tail += g.r.Tail
			total.Churned += g.r.Churned
			total.HistoryLost += g.r.HistoryLost
			total.Latency.merge(g.r.Latency)
			if total.FirstErr == "" {
				total.FirstErr = g.r.FirstErr
			}
		case <-deadline:
			return total, errors.New("workers did not report in time")
		}
	}
	return total, nil
}

func (ws *workers) send(line string) {
	for _, p := range ws.procs {
		fmt.Fprintln(p.in, line)
	}
}

func (ws *workers) close() {
	for _, p := range ws.procs {
		p.in.Close()
	}
	for _, p := range ws.procs {
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
	}
}

// publisher posts events to the server.
type publisher struct {
	t      *target
	hc     *http.Client
	topic  string
	spread []string // when set, the topics events go to, in turn (a pattern's)
	size   int
}

func newPublisher(t *target, topic string, size, conns int) *publisher {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	return &publisher{t: t, hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}, topic: topic, size: size}
}

// topicOf is the topic publisher k's event seq goes to: the topic, or for
// a pattern one of the topics it spreads over, each publisher going through
// all of them in turn.
func (p *publisher) topicOf(k int, seq int64) string {
	if len(p.spread) == 0 {
		return p.topic
	}
	return p.spread[(int64(k)+seq)%int64(len(p.spread))]
}

// data is an event's payload: sequence number and send time, padded.
func (p *publisher) data(seq int64) string {
	d := strconv.FormatInt(seq, 10) + " " + strconv.FormatInt(time.Now().UnixNano(), 10)
	if len(d) < p.size {
		d += " " + strings.Repeat("x", p.size-len(d)-1)
	}
	return d
}

// dataFrom is the payload of publisher k's event seq.
func (p *publisher) dataFrom(k int, seq int64) string {
	return strconv.Itoa(k) + " " + p.data(seq)
}

// send publishes event seq and returns the server's answer.
func (p *publisher) send(ctx context.Context, seq int64) ([]byte, error) {
	return p.sendData(ctx, p.topicOf(0, seq), p.data(seq))
}

// sendData publishes an event with the given data to topic.
func (p *publisher) sendData(ctx context.Context, topic, data string) ([]byte, error) {
	ctype := "application/json"
	if p.t.form {
		topic, data, ctype = url.QueryEscape(topic), url.QueryEscape(data), "application/x-www-form-urlencoded"
	}
	body := fmt.Sprintf(p.t.body, topic, data)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.t.publishURL(), strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", ctype)
	if p.t.auth != "" {
		req.Header.Set("Authorization", p.t.auth)
	}
	res, err := p.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		return b, fmt.Errorf("publish: %s %s", res.Status, b)
	}
	return b, nil
}

// metric reads one unlabelled sample (or the sum of a labelled family's
// samples matching a label filter) from a Prometheus text page.
func metric(u, name, filter string) float64 {
	page, err := metricsPage(u)
	if err != nil {
		return -1
	}
	return metricIn(page, name, filter)
}

// metricsPage fetches a Prometheus text page.
func metricsPage(u string) (string, error) {
	if u == "" {
		return "", errors.New("no metrics URL")
	}
	c := http.Client{Timeout: 10 * time.Second}
	res, err := c.Get(u)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), err
}

// metricIn is metric on a page already fetched; -1 if absent.
func metricIn(page, name, filter string) float64 {
	sum, found := 0.0, false
	for _, l := range strings.Split(page, "\n") {
		if !strings.HasPrefix(l, name) || (filter != "" && !strings.Contains(l, filter)) {
			continue
		}
		rest := l[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(l)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum, found = sum+v, true
		}
	}
	if !found {
		return -1
	}
	return sum
}

// mutex-guarded counters for the publishing loop.
type pubStats struct {
	mu      sync.Mutex
	sent    int64
	errs    int64
	lastErr error
	lat     *hist
}
