package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// job is what the parent asks one worker process to do.
type job struct {
	Mode  string   `json:"mode"`  // idle, fanout, storm, soak
	URL   string   `json:"url"`   // http://host:port
	Paths []string `json:"paths"` // request paths (with query), used in turn
	First int      `json:"first"` // the index, over all processes, of this process's first connection
	// Numbered: Paths[0] holds a %d for the connection's index, so each
	// connection has a path (a topic) of its own.
	Numbered bool     `json:"numbered"`
	N        int      `json:"n"`       // connections
	Sources  []string `json:"sources"` // local IPs to connect from, in turn
	LastID   string   `json:"last_id"` // storm: Last-Event-ID of the first connect
	Expect   int64    `json:"expect"`  // storm: the sequence number that completes a client
	// Fanout: publishers, each numbering its own events 0, 1, 2… and
	// publishing them one after another, so each one's events reach a
	// client in order whatever the others do.
	Publishers int `json:"publishers"`
	// Soak: streams this worker disconnects per second, each picked at
	// random and reconnected at once (with its Last-Event-ID), from "go"
	// until "stop".
	Churn float64 `json:"churn"`
	// Named: the streams subscribe to a pattern, so each event's data is
	// {"topic": "<topic>", "data": "<the data as published>"}.
	Named bool `json:"named"`
}

// report is what a worker sends back, as JSON lines.
type report struct {
	Kind       string `json:"kind"` // ready, result
	Opened     int64  `json:"opened"`
	Failed     int64  `json:"failed"`
	FirstErr   string `json:"first_err,omitempty"`
	Events     int64  `json:"events"`
	Lost       int64  `json:"lost"`
	Dupes      int64  `json:"dupes"`
	Reconnects int64  `json:"reconnects"`
	Done       int64  `json:"done"`
	// Fanout: of the events not received at the end, Gaps were skipped in
	// a publisher's sequence (lost), Tail were after the last one a client
	// got from that publisher (the client was behind).
	Gaps int64 `json:"gaps"`
	Tail int64 `json:"tail"`
	// HistoryLost counts history-lost events: the server said it could
	// not deliver everything (what follows one may repeat events).
	HistoryLost int64 `json:"history_lost"`
	Latency     *hist `json:"latency"`
	// Soak: streams disconnected by the churn (each reconnected at once).
	Churned int64 `json:"churned"`
}

// runWorker is the worker process: a job on stdin, then commands ("go",
// "stop <published>") one per line; reports on stdout.
func runWorker(stdin io.Reader, stdout io.Writer) error {
	in := bufio.NewScanner(stdin)
	if !in.Scan() {
		return errors.New("worker: no job")
	}
	var j job
	if err := json.Unmarshal(in.Bytes(), &j); err != nil {
		return fmt.Errorf("worker: job: %w", err)
	}
	out := json.NewEncoder(stdout)
	w := &worker{job: j, stop: make(chan struct{}), lat: newHist()}
	w.target, _ = url.Parse(j.URL)
	if j.Mode == "storm" {
		// Connect everything at once on "go"; report when every client
		// has all its events, or after a minute.
		if err := out.Encode(report{Kind: "ready"}); err != nil {
			return err
		}
		if !in.Scan() || in.Text() != "go" {
			return errors.New("worker: expected go")
		}
		w.start()
		finished := make(chan struct{})
		go func() { w.wg.Wait(); close(finished) }()
		select {
		case <-finished:
		case <-time.After(time.Minute):
			close(w.stop)
			<-finished
		}
		return out.Encode(w.report("result"))
	}
	w.start()
	rep := w.report("ready")
	if err := out.Encode(rep); err != nil {
		return err
	}
	if j.Mode == "soak" {
		// "go" starts the churn; then "stop" as below.
		if !in.Scan() || in.Text() != "go" {
			return errors.New("worker: expected go")
		}
		if j.Churn > 0 {
			w.wg.Go(w.churn)
		}
	}
	var published []int64 // per publisher
	if in.Scan() {
		if v, ok := strings.CutPrefix(in.Text(), "stop "); ok && v != "-1" {
			for _, f := range strings.Split(v, ",") {
				n, _ := strconv.ParseInt(f, 10, 64)
				published = append(published, n)
			}
		}
	}
	close(w.stop)
	w.wg.Wait()
	res := w.report("result")
	res.Gaps, res.Tail = w.lost.Load(), w.tail(published)
	res.Lost = res.Gaps + res.Tail
	return out.Encode(res)
}

// tail counts, over every client, the events each publisher published
// after the last one the client received from it.
func (w *worker) tail(published []int64) int64 {
	var tail int64
	for _, c := range w.clients {
		for k, n := range published {
			last := int64(-1)
			if k < len(c.lastOf) {
				last = c.lastOf[k]
			}
			tail += n - 1 - last
		}
	}
	return tail
}

type worker struct {
	job    job
	target *url.URL
	stop   chan struct{}
	wg     sync.WaitGroup

	opened, failed, events, lost, dupes, reconnects, done, churned atomic.Int64
	historyLost                                                    atomic.Int64
	errOnce                                                        sync.Once
	firstErr                                                       atomic.Value

	lat     *hist
	clients []*client
}

type client struct {
	path   string
	local  net.IP
	lastID string
	last   int64   // storm: last sequence number received
	lastOf []int64 // fanout: per publisher, the last sequence number received
	retry  time.Duration

	mu      sync.Mutex // guards conn and churned: the churn closes conns
	conn    net.Conn   // the open connection; nil between connections
	churned bool       // conn was closed by the churn: reconnect at once
}

// setConn records the client's open connection, or its end (nil), and
// says whether the churn had closed it.
func (c *client) setConn(conn net.Conn) (churned bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if conn == nil && c.conn != nil {
		_ = c.conn.Close()
	}
	c.conn, churned, c.churned = conn, c.churned, false
	return churned
}

// disconnect closes the client's connection, if it has one, as the churn
// does; the client reconnects at once.
func (c *client) disconnect() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil || c.churned {
		return false
	}
	c.churned = true
	_ = c.conn.Close()
	return true
}

func (w *worker) report(kind string) report {
	r := report{Kind: kind, Opened: w.opened.Load(), Failed: w.failed.Load(), Events: w.events.Load(),
		Lost: w.lost.Load(), Dupes: w.dupes.Load(), Reconnects: w.reconnects.Load(), Done: w.done.Load(),
		HistoryLost: w.historyLost.Load(), Churned: w.churned.Load()}
	if e, ok := w.firstErr.Load().(string); ok {
		r.FirstErr = e
	}
	if kind == "result" {
		r.Latency = w.lat // every client has stopped
	}
	return r
}

func (w *worker) fail(err error) {
	w.failed.Add(1)
	w.errOnce.Do(func() { w.firstErr.Store(err.Error()) })
}

// start opens every connection, at most 256 handshakes at a time (storm:
// all at once), and returns when each has its response headers or failed.
func (w *worker) start() {
	var ready sync.WaitGroup
	limit := make(chan struct{}, 256)
	if w.job.Mode == "storm" {
		limit = make(chan struct{}, w.job.N)
	}
	t0 := time.Now()
	for i := range w.job.N {
		path := w.job.Paths[(w.job.First+i)%len(w.job.Paths)]
		if w.job.Numbered {
			path = fmt.Sprintf(w.job.Paths[0], w.job.First+i)
		}
		c := &client{path: path, lastID: w.job.LastID, last: -1, retry: time.Second}
		if len(w.job.Sources) > 0 {
			c.local = net.ParseIP(w.job.Sources[i%len(w.job.Sources)])
		}
		if w.job.Mode == "storm" {
			c.last = 0 // the cursor is event 0's
		}
		w.clients = append(w.clients, c)
		ready.Add(1)
		w.wg.Go(func() { w.run(c, &ready, limit, t0) })
	}
	ready.Wait()
}

// run holds one client's stream, reconnecting with its last event id like
// an EventSource until stopped (or, in a storm, until it has everything).
func (w *worker) run(c *client, ready *sync.WaitGroup, limit chan struct{}, t0 time.Time) {
	first := true
	signal := func() {
		if first {
			first = false
			ready.Done()
		}
	}
	defer signal()
	for {
		limit <- struct{}{}
		br, conn, err := w.connect(c)
		<-limit
		if err != nil {
			w.fail(err)
			signal()
			select {
			case <-w.stop:
				return
			case <-time.After(c.retry):
			}
			w.reconnects.Add(1)
			continue
		}
		if first {
			w.opened.Add(1)
		}
		signal()
		c.setConn(conn)
		stopped := make(chan struct{})
		go func() {
			select {
			case <-w.stop:
				conn.Close()
			case <-stopped:
			}
		}()
		complete := w.read(c, br, t0)
		close(stopped)
		churned := c.setConn(nil)
		if complete {
			return
		}
		if churned {
			select {
			case <-w.stop:
				return
			default:
			}
			continue // a new connection at once, as a page reload would
		}
		select {
		case <-w.stop:
			return
		case <-time.After(c.retry):
		}
		w.reconnects.Add(1)
	}
}

func (w *worker) connect(c *client) (*bufio.Reader, net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if c.local != nil {
		d.LocalAddr = &net.TCPAddr{IP: c.local}
	}
	conn, err := d.Dial("tcp", w.target.Host)
	if err != nil {
		return nil, nil, err
	}
	var req bytes.Buffer
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n", c.path, w.target.Host)
	if c.lastID != "" {
		fmt.Fprintf(&req, "Last-Event-ID: %s\r\n", c.lastID)
	}
	req.WriteString("\r\n")
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write(req.Bytes()); err != nil {
		conn.Close()
		return nil, nil, err
	}
	br := bufio.NewReaderSize(conn, 4096)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		conn.Close()
		return nil, nil, fmt.Errorf("status %s, content type %q", res.Status, res.Header.Get("Content-Type"))
	}
	_ = conn.SetDeadline(time.Time{})
	// The body, chunked or not, is read through net/http's body reader.
	return bufio.NewReaderSize(res.Body, 4096), conn, nil
}

// churn disconnects job.Churn random streams a second until stopped.
func (w *worker) churn() {
	tick := time.NewTicker(time.Duration(float64(time.Second) / w.job.Churn))
	defer tick.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-tick.C:
			if w.clients[rand.IntN(len(w.clients))].disconnect() {
				w.churned.Add(1)
			}
		}
	}
}

// read parses the event stream. Event data is "<seq> <unix nanos>[ pad]".
// It reports whether the client is complete (storm).
func (w *worker) read(c *client, br *bufio.Reader, t0 time.Time) bool {
	var data []byte
	hasData := false
	var id string
	idSet := false
	lost := false // the event is a history-lost
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return false
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			if idSet {
				c.lastID = id
			}
			switch {
			case hasData && lost:
				w.historyLost.Add(1)
			case hasData:
				d, ok := data, true
				if w.job.Named {
					d, ok = unwrapNamed(data)
				}
				if ok && w.event(c, d, t0) {
					return true
				}
			}
			data, hasData, idSet, lost = data[:0], false, false, false
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data = append(data, value...)
			hasData = true
		case "id":
			id, idSet = string(value), true
		case "event":
			lost = string(value) == "history-lost"
		case "retry":
			if ms, err := strconv.Atoi(string(value)); err == nil {
				c.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
}

// event accounts one event; true when a storm client has all it wanted.
func (w *worker) event(c *client, data []byte, t0 time.Time) bool {
	now := time.Now()
	if w.job.Mode == "soak" {
		w.events.Add(1) // the tracked clients check delivery; these only hold streams
		return false
	}
	if w.job.Mode == "storm" {
		seqB, _, _ := bytes.Cut(data, []byte(" "))
		seq, err := strconv.ParseInt(string(seqB), 10, 64)
		if err != nil {
			return false // not a benchmark event (a history-lost notice, say)
		}
		w.events.Add(1)
		switch {
		case seq <= c.last:
			w.dupes.Add(1)
		case seq > c.last+1:
			w.lost.Add(seq - c.last - 1)
		}
		c.last = max(c.last, seq)
		if seq >= w.job.Expect {
			w.lat.add(now.Sub(t0))
			w.done.Add(1)
			return true
		}
		return false
	}
	// Fanout: "<publisher> <seq> <unix nanos>[ pad]".
	f := bytes.SplitN(data, []byte(" "), 4)
	if len(f) < 3 {
		return false
	}
	k, err1 := strconv.Atoi(string(f[0]))
	seq, err2 := strconv.ParseInt(string(f[1]), 10, 64)
	if err1 != nil || err2 != nil || k < 0 || k >= max(w.job.Publishers, 1) {
		return false
	}
	w.events.Add(1)
	for len(c.lastOf) <= k {
		c.lastOf = append(c.lastOf, -1)
	}
	switch last := c.lastOf[k]; {
	case seq <= last:
		w.dupes.Add(1)
		return false
	case seq > last+1:
		w.lost.Add(seq - last - 1) // skipped: lost
	}
	c.lastOf[k] = seq
	rest := f[2]
	if ts, err := strconv.ParseInt(string(rest), 10, 64); err == nil {
		w.lat.add(now.Sub(time.Unix(0, ts)))
	}
	return false
}

// unwrapNamed returns the published data of an event of a pattern stream,
// whose data is {"topic":"<topic>","data":"<data>"} (see docs/subscribing.md,
// "Pattern subscriptions"). The benchmark's own data needs no escapes, so
// it is cut out in place; anything else goes through encoding/json. ok is
// false for data of another shape.
func unwrapNamed(b []byte) (data []byte, ok bool) {
	const head, mid = `{"topic":"`, `","data":"`
	if rest, ok := bytes.CutPrefix(b, []byte(head)); ok {
		if i := bytes.Index(rest, []byte(mid)); i >= 0 && !bytes.ContainsRune(rest[:i], '\\') {
			d := rest[i+len(mid):]
			if inner, ok := bytes.CutSuffix(d, []byte(`"}`)); ok && !bytes.ContainsAny(inner, `"\\`) {
				return inner, true
			}
		}
	}
	var v struct {
		Topic *string `json:"topic"`
		Data  *string `json:"data"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.Topic == nil || v.Data == nil {
		return nil, false
	}
	return []byte(*v.Data), true
}
