package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"

	"github.com/ssegateway/ssegateway/gateway/sseclient"
	"github.com/ssegateway/ssegateway/internal/testutil"
	"github.com/ssegateway/ssegateway/pubsub"
)

// scrape is one /metrics output, parsed.
type scrape map[string]*dto.MetricFamily

func parseMetrics(t *testing.T, r io.Reader) scrape {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

func scrapeURL(t *testing.T, u string) scrape {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	return parseMetrics(t, res.Body)
}

// value is a counter's, gauge's or histogram's count (for a histogram) with
// the given labels ("k=v" pairs); -1 if absent.
func (s scrape) value(name string, labels ...string) float64 {
	f := s[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// TestMetrics_scenario runs a scripted scenario — streams connect, events
// are published over HTTP, a slow client is evicted and resumes, bad
// requests are refused, the node drains — and checks the /metrics output
// counter by counter.
func TestMetrics_scenario(t *testing.T) {
	var logs lockedBuffer
	// The subscriber pings Redis every 2 s (as in production), not every
	// 50 ms as in other tests: under a loaded CI machine a missed fast ping
	// would count a disconnect and make the counts below depend on timing.
	n := serveNode(t, buildNode(t, Config{Heartbeat: 50 * time.Millisecond, WriteTimeout: 2 * time.Second},
		pubsub.PublisherConfig{MaxDataBytes: 32 << 10}, func(o *nodeOptions) {
			o.logger, o.pingInterval = zerolog.New(&logs), 2*time.Second
		}))
	u, _ := url.Parse(eventsURL(n.url, "m"))

	fast := subscribe(t, u.String(), "")
	slow := dialSlow(t, u)
	n.waitStreams(t, 2)

	// 16 KiB events: the slow client's socket buffers and then its 1 MiB
	// queue fill, and it is evicted; the fast one keeps up.
	const events = 500
	payload := strings.Repeat("x", 16<<10)
	for i := range events {
		res, err := http.Post(n.url+"/publish", "application/json",
			strings.NewReader(fmt.Sprintf(`{"topic":"m","data":"%d:%s"}`, i, payload)))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("publish %d: %d", i, res.StatusCode)
		}
	}
	for i := range events {
		if ev := fast.next(t); !strings.HasPrefix(ev.Data, fmt.Sprintf("%d:", i)) {
			t.Fatalf("fast client: event %d is %.20q", i, ev.Data)
		}
	}
	testutil.WaitFor(t, "slow client evicted", func() bool { return testGauge(n.srv.m.closed.WithLabelValues("slow")) == 1 })

	// The evicted client reads what reached it and resumes from there.
	_ = slow.SetReadDeadline(time.Now().Add(30 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(slow), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := sseclient.NewParser(res.Body, "")
	got := 0
	for {
		if _, err := p.Next(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the evicted stream never ended")
			}
			break
		}
		got++
	}
	again := subscribe(t, u.String(), p.LastEventID)
	for i := got; i < events; i++ {
		if ev := again.next(t); !strings.HasPrefix(ev.Data, fmt.Sprintf("%d:", i)) {
			t.Fatalf("resumed client: event %d is %.20q", i, ev.Data)
		}
	}
	n.waitStreams(t, 2)

	// Refusals: a bad publish, a too-long topic.
	res, err = http.Post(n.url+"/publish", "application/json", strings.NewReader(`{"topic":"m"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	res, err = http.Get(eventsURL(n.url, strings.Repeat("t", 300)))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	time.Sleep(120 * time.Millisecond) // a heartbeat or two on the idle streams

	live := scrapeURL(t, n.url+"/metrics")
	n.stop() // drain: the two open streams end with reason shutdown
	rec := httptest.NewRecorder()
	n.srv.metricsH.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	after := parseMetrics(t, rec.Body)

	replayed := float64(events - got)
	for _, c := range []struct {
		s      scrape
		name   string
		labels []string
		want   float64
	}{
		{live, "ssegateway_connections_open", nil, 2},
		{live, "ssegateway_topics_subscribed", nil, 1},
		{live, "ssegateway_draining", nil, 0},
		{live, "ssegateway_pubsub_connected", nil, 1},
		{after, "ssegateway_connections_opened_total", nil, 3},
		{after, "ssegateway_connections_open", nil, 0},
		{after, "ssegateway_connections_closed_total", []string{"reason=slow"}, 1},
		{after, "ssegateway_connections_closed_total", []string{"reason=shutdown"}, 2},
		{after, "ssegateway_connections_closed_total", []string{"reason=client"}, 0},
		{after, "ssegateway_connections_closed_total", []string{"reason=write_error"}, 0},
		{after, "ssegateway_draining", nil, 1},
		{after, "ssegateway_events_received_total", nil, events},
		{after, "ssegateway_events_replayed_total", nil, replayed},
		{after, "ssegateway_replays_total", []string{"result=replayed"}, 1},
		{after, "ssegateway_replays_total", []string{"result=history_lost"}, 0},
		{after, "ssegateway_replay_duration_seconds", nil, 1},
		{after, "ssegateway_history_lost_total", nil, 0},
		{after, "ssegateway_events_repaired_total", nil, 0},
		{after, "ssegateway_publish_total", []string{"result=ok"}, events},
		{after, "ssegateway_publish_total", []string{"result=invalid"}, 1},
		{after, "ssegateway_publish_total", []string{"result=error"}, 0},
		{after, "ssegateway_publish_duration_seconds", nil, events},
		{after, "ssegateway_limit_refusals_total", []string{"limit=topic_length"}, 1},
		{after, "ssegateway_pubsub_disconnects_total", nil, 0},
		{after, "ssegateway_build_info", nil, 1},
	} {
		if got := c.s.value(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Delivered: everything the fast client and the resumed client got, plus
	// what the slow client was written before its eviction (at most what it
	// read: a failed write counts as not delivered).
	if d := after.value("ssegateway_events_delivered_total"); d < float64(events)+replayed || d > float64(2*events) {
		t.Errorf("events_delivered_total = %v, want between %v and %v", d, float64(events)+replayed, 2*events)
	}
	if b := after.value("ssegateway_stream_bytes_written_total"); b < float64(events*(16<<10)) {
		t.Errorf("stream_bytes_written_total = %v, less than one client's events", b)
	}
	for _, name := range []string{"ssegateway_heartbeats_total", "ssegateway_delivery_latency_seconds", "ssegateway_stream_writes_total"} {
		if v := after.value(name); v < 1 {
			t.Errorf("%s = %v, want at least 1", name, v)
		}
	}

	// The log: one line per stream opened and one per stream closed, with
	// the reason and duration.
	closed := map[string]int{}
	opened := 0
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec struct {
			Level, Message, Reason string
			Duration               *float64
			Topics                 []string
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		switch rec.Message {
		case "stream opened":
			opened++
		case "stream closed":
			if rec.Level != "info" || rec.Duration == nil || len(rec.Topics) != 1 {
				t.Errorf("close line %s", line)
			}
			closed[rec.Reason]++
		}
	}
	reasons := make([]string, 0, len(closed))
	for r, k := range closed {
		reasons = append(reasons, fmt.Sprintf("%s=%d", r, k))
	}
	sort.Strings(reasons)
	if opened != 3 || strings.Join(reasons, ",") != "shutdown=2,slow=1" {
		t.Errorf("log: %d opened, closed %v; want 3 opened, closed shutdown=2,slow=1", opened, reasons)
	}
}

// lockedBuffer is a bytes.Buffer for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// metricNames are the metric families a node exports, every label value
// pre-created, histograms under their base name.
func metricNames(t *testing.T) map[string]bool {
	t.Helper()
	n := buildNode(t, Config{}, pubsub.PublisherConfig{})
	fams, err := n.srv.m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range fams {
		names[f.GetName()] = true
	}
	return names
}

var metricRef = regexp.MustCompile(`\b(?:ssegateway|process|go)_[a-z0-9_]+\b`)

// TestMetrics_referencesExist: the Grafana dashboard, the alerting rules,
// the READMEs and the pages of docs/ name only metrics the node exports, and
// the metrics table of docs/operating.md lists every one of the node's own.
func TestMetrics_referencesExist(t *testing.T) {
	names := metricNames(t)
	exists := func(ref string) bool {
		for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(ref, suffix); ok && names[base] {
				return true
			}
		}
		return false
	}
	const operating = "../docs/operating.md"
	// These must name metrics; the other pages may.
	mustName := []string{"../deploy/grafana-dashboard.json", "../helm/files/alerts.yaml", "../helm/README.md", operating}
	docs, err := filepath.Glob("../docs/*.md")
	if err != nil || len(docs) == 0 {
		t.Fatalf("no docs/*.md: %v", err)
	}
	for _, file := range append([]string{"../deploy/grafana-dashboard.json", "../helm/files/alerts.yaml", "../README.md", "../helm/README.md"}, docs...) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		refs := 0
		for _, ref := range metricRef.FindAllString(string(b), -1) {
			if strings.HasPrefix(ref, "go_") && file != "../deploy/grafana-dashboard.json" {
				continue // prose, not a metric
			}
			refs++
			if !exists(ref) {
				t.Errorf("%s names %s, which the node does not export", file, ref)
			}
		}
		if refs == 0 && slices.Contains(mustName, file) {
			t.Errorf("%s names no metrics", file)
		}
	}
	table, err := os.ReadFile(operating)
	if err != nil {
		t.Fatal(err)
	}
	for name := range names {
		if strings.HasPrefix(name, "ssegateway_") && !strings.Contains(string(table), "| `"+name) {
			t.Errorf("%s: the metrics table has no row for %s", operating, name)
		}
	}
}

// TestGrafanaDashboard: the dashboard is well-formed for import: unique
// panel ids, every panel on the 24-column grid, every graph with a
// Prometheus query through the dashboard's data source variable.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("../deploy/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID, Title string
		Panels     []struct {
			ID      int
			Type    string
			Title   string
			GridPos struct{ X, Y, W, H int }
			Targets []struct {
				Expr       string
				Datasource struct{ UID string }
			}
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" || d.Title == "" || len(d.Panels) < 10 {
		t.Fatalf("uid %q, title %q, %d panels", d.UID, d.Title, len(d.Panels))
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q off the grid: %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		for _, q := range p.Targets {
			if q.Expr == "" || q.Datasource.UID != "${datasource}" || strings.Count(q.Expr, "(") != strings.Count(q.Expr, ")") {
				t.Errorf("panel %q: query %q through %q", p.Title, q.Expr, q.Datasource.UID)
			}
		}
	}
}

// TestMetrics_buildInfo: build_info carries the configured version ("unknown"
// without one) and the Go version.
func TestMetrics_buildInfo(t *testing.T) {
	for _, tc := range []struct{ version, want string }{{"v1.2.3", "v1.2.3"}, {"", "unknown"}} {
		n := buildNode(t, Config{Version: tc.version}, pubsub.PublisherConfig{})
		fams, err := n.srv.m.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var s scrape = map[string]*dto.MetricFamily{}
		for _, f := range fams {
			s[f.GetName()] = f
		}
		if got := s.value("ssegateway_build_info", "version="+tc.want, "goversion="+runtime.Version()); got != 1 {
			t.Errorf("Version %q: build_info{version=%q} = %v, want 1", tc.version, tc.want, got)
		}
	}
}
