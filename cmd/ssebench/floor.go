package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ssegateway/ssegateway/auth"
	"github.com/ssegateway/ssegateway/gateway/fanout"
)

// The floor server is the least work a correct SSE fan-out does on this
// machine, so that a gateway figure can be read as a ratio to it: what the
// gateway's guarantees and design (Redis history, resume, gap repair,
// per-stream queues and writers, slow-client eviction, a goroutine watching
// each connection) cost.
//
// It takes the gateway's subscribe and publish shapes — GET
// /events?topic=… (topics, or patterns such as bench/*) and POST /publish
// with {"topic","type","data"} — and keeps nothing but its subscribers: no
// Redis, no history, no resume, no goroutine or queue per stream. A stream
// is a hijacked connection, a member of each of its subscriptions. A
// publish is parsed, encoded once per form (plain, or named with its topic
// for pattern streams, with the gateway's encoder), numbered (id:) in each
// subscription it goes to and kept in that subscription's ring of recent
// events, and answered.
//
// A few writer goroutines, one per CPU, write: each owns a share of every
// subscription's members and, woken by a publish, passes over them, writing
// each member everything it lacks in one write. On a quiet machine that is
// one write per delivery; when a pass takes longer than events take to
// arrive, a write carries several, as the gateway's writer sends what is
// queued (without it the floor would make more system calls than the
// gateway under load, and stop being a floor). Every member gets a
// subscription's events in one order. There is no isolation: a socket
// that blocks holds up its writer's other streams (to --write-timeout,
// then it is dropped), and a member that falls a whole ring behind is
// dropped. A stream with several subscriptions that match one event gets
// it once per subscription (the benchmark never overlaps them).

// floorRing is how many of a subscription's newest events are kept for
// its members' writers.
const floorRing = 4096

// floorBatch is the most events one write carries.
const floorBatch = 64

// floorServer is the floor's state.
type floorServer struct {
	writeTimeout time.Duration
	published    atomic.Int64
	delivered    atomic.Int64 // events written to streams
	writes       atomic.Int64 // writes (system calls) to streams
	writers      []*floorWriter
	next         atomic.Int64 // streams joined, to spread them over the writers

	mu       sync.RWMutex
	topics   map[string]*floorSource
	patterns map[string]*floorSource
	closed   bool // streams that come later are closed at once
}

// floorSource is one topic's or pattern's subscription: its members, split
// by writer, and its newest events.
type floorSource struct {
	pattern auth.Pattern // zero for a topic
	prefix  string       // a pattern of the form prefix/*: the part before '*'
	named   bool         // frames carry their topic ({"topic","data"})

	mu    sync.Mutex // orders publishes; guards changes of parts
	head  atomic.Int64
	ring  atomic.Pointer[[floorRing]atomic.Pointer[floorFrame]] // made on the first event: a subscription that gets none costs no ring
	parts []atomic.Pointer[[]*floorMember]                      // per writer; elements are only appended in place
}

// floorFrame is one encoded event of a source.
type floorFrame struct {
	seq int64
	b   []byte
}

// floorMember is one stream in one source. Its writer owns sent and dead.
type floorMember struct {
	conn net.Conn
	sent int64 // the newest event written
	dead bool
}

// floorWriter is one writer goroutine and the sources it has to look at.
type floorWriter struct {
	i    int
	kick chan struct{} // capacity 1

	mu    sync.Mutex
	dirty map[*floorSource]struct{}
}

func newFloorServer(writeTimeout time.Duration, writers int) *floorServer {
	fl := &floorServer{writeTimeout: writeTimeout, topics: map[string]*floorSource{}, patterns: map[string]*floorSource{}}
	for i := range writers {
		fl.writers = append(fl.writers, &floorWriter{i: i, kick: make(chan struct{}, 1), dirty: map[*floorSource]struct{}{}})
	}
	return fl
}

func (fl *floorServer) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /events", fl.handleEvents)
	mux.HandleFunc("POST /publish", fl.handlePublish)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	// The two counters ssebench reads from a gateway, under the gateway's
	// names, so it reads events per write from both the same way.
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "ssegateway_events_delivered_total %d\nssegateway_stream_writes_total %d\n", fl.delivered.Load(), fl.writes.Load())
	})
	return mux
}

const floorHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"

func (fl *floorServer) handleEvents(w http.ResponseWriter, r *http.Request) {
	names := r.URL.Query()["topic"]
	if len(names) == 0 || len(names) > 32 {
		http.Error(w, "want 1 to 32 topic parameters", http.StatusBadRequest)
		return
	}
	for _, n := range names {
		if _, err := auth.ParsePattern(n); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "cannot take the connection over (HTTP/1.1 only)", http.StatusHTTPVersionNotSupported)
		return
	}
	_ = conn.SetWriteDeadline(time.Now().Add(fl.writeTimeout))
	if _, err := io.WriteString(conn, floorHead); err != nil {
		conn.Close()
		return
	}
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.closed {
		conn.Close()
		return
	}
	part := int(fl.next.Add(1)) % len(fl.writers)
	for _, n := range names {
		fl.sourceLocked(n).join(conn, part)
	}
}

// sourceLocked returns the source of a topic or pattern, creating it. fl.mu
// must be held for writing.
func (fl *floorServer) sourceLocked(name string) *floorSource {
	set := fl.topics
	if strings.Contains(name, "*") {
		set = fl.patterns
	}
	if s := set[name]; s != nil {
		return s
	}
	s := &floorSource{parts: make([]atomic.Pointer[[]*floorMember], len(fl.writers))}
	for i := range s.parts {
		s.parts[i].Store(&[]*floorMember{})
	}
	if strings.Contains(name, "*") {
		s.pattern, _ = auth.ParsePattern(name) // checked by the handler
		s.named = true
		if p, ok := strings.CutSuffix(name, "*"); ok && strings.HasSuffix(p, "/") && !strings.Contains(p, "*") {
			s.prefix = p
		}
	}
	set[name] = s
	return s
}

// join adds a stream to s in a writer's part, live from the next event.
func (s *floorSource) join(c net.Conn, part int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := &floorMember{conn: c, sent: s.head.Load()}
	// Appending in place is safe: a writer reads only the elements of the
	// list it loaded, and no list is ever shortened in place.
	ms := append(*s.parts[part].Load(), m)
	s.parts[part].Store(&ms)
}

// matches reports whether a pattern source's pattern matches topic; a
// prefix/* pattern is a prefix check.
func (s *floorSource) matches(topic string) bool {
	if s.prefix != "" {
		rest, ok := strings.CutPrefix(topic, s.prefix)
		return ok && rest != "" && !strings.Contains(rest, "/")
	}
	return s.pattern.Match(topic)
}

func (fl *floorServer) handlePublish(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Topic string          `json:"topic"`
		Type  string          `json:"type"`
		Data  json.RawMessage `json:"data"`
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil || req.Topic == "" || strings.Contains(req.Topic, "*") || len(req.Data) == 0 {
		http.Error(w, `{"error":"want {\"topic\": a topic, \"data\": …}"}`, http.StatusBadRequest)
		return
	}
	data := string(req.Data)
	if req.Data[0] == '"' {
		if err := json.Unmarshal(req.Data, &data); err != nil {
			http.Error(w, `{"error":"data is not a JSON string"}`, http.StatusBadRequest)
			return
		}
	}
	fl.publish(req.Topic, req.Type, data)
	id := fl.published.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, `{"id":"%d"}`, id)
}

// publish numbers an event in its topic's subscription and in every
// pattern subscription that matches it, each form encoded once, and wakes
// the writers.
func (fl *floorServer) publish(topic, typ, data string) {
	var targets [8]*floorSource
	ts := targets[:0]
	fl.mu.RLock()
	if s := fl.topics[topic]; s != nil {
		ts = append(ts, s)
	}
	for _, s := range fl.patterns {
		if s.matches(topic) {
			ts = append(ts, s)
		}
	}
	fl.mu.RUnlock()
	var plain, named []byte
	for _, s := range ts {
		body := &plain
		if s.named {
			body = &named
		}
		if *body == nil {
			if s.named {
				*body = fanout.AppendNamedBody(nil, typ, topic, data)
			} else {
				*body = fanout.AppendBody(nil, typ, data)
			}
		}
		s.append(*body)
		for _, w := range fl.writers {
			w.mark(s)
		}
	}
}

// append numbers an event of s and keeps it in the ring.
func (s *floorSource) append(body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seq := s.head.Load() + 1
	frame := make([]byte, 0, len(body)+24)
	frame = append(frame, "id: "...)
	frame = strconv.AppendInt(frame, seq, 10)
	frame = append(frame, '\n')
	frame = append(frame, body...)
	ring := s.ring.Load()
	if ring == nil {
		ring = new([floorRing]atomic.Pointer[floorFrame])
		s.ring.Store(ring) // before head: a writer that sees an event sees the ring
	}
	ring[seq%floorRing].Store(&floorFrame{seq: seq, b: frame})
	s.head.Store(seq)
}

// mark has the writer look at s on its next pass, and wakes it.
func (w *floorWriter) mark(s *floorSource) {
	w.mu.Lock()
	w.dirty[s] = struct{}{}
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// run is writer w's loop: a pass over its members of every source marked
// since the last, until stop is closed.
func (fl *floorServer) run(w *floorWriter, stop <-chan struct{}) {
	var batch []*floorSource
	for {
		select {
		case <-stop:
			return
		case <-w.kick:
		}
		w.mu.Lock()
		for s := range w.dirty {
			batch = append(batch, s)
		}
		clear(w.dirty)
		w.mu.Unlock()
		for _, s := range batch {
			fl.pass(s, w.i)
		}
		clear(batch)
		batch = batch[:0]
	}
}

// pass writes to each of the writer's members of s everything it lacks, in
// one write, and forgets members whose write failed.
func (fl *floorServer) pass(s *floorSource, part int) {
	head := s.head.Load()
	ring := s.ring.Load()
	if ring == nil {
		return // no event yet
	}
	dead := false
	var delivered, writes int64
	var frames [floorBatch][]byte
	for _, m := range *s.parts[part].Load() {
		for !m.dead && m.sent < head {
			n := 0
			for ; n < floorBatch && m.sent+int64(n) < head; n++ {
				f := ring[(m.sent+int64(n)+1)%floorRing].Load()
				if f == nil || f.seq != m.sent+int64(n)+1 {
					break
				}
				frames[n] = f.b
			}
			if n == 0 {
				m.kill() // a whole ring behind
				break
			}
			_ = m.conn.SetWriteDeadline(time.Now().Add(fl.writeTimeout))
			var err error
			if n == 1 {
				_, err = m.conn.Write(frames[0])
			} else {
				bufs := net.Buffers(frames[:n])
				_, err = bufs.WriteTo(m.conn)
			}
			if err != nil {
				m.kill()
				break
			}
			m.sent += int64(n)
			delivered += int64(n)
			writes++
		}
		dead = dead || m.dead
	}
	clear(frames[:])
	fl.delivered.Add(delivered)
	fl.writes.Add(writes)
	if dead {
		s.mu.Lock()
		live := slices.DeleteFunc(slices.Clone(*s.parts[part].Load()), func(m *floorMember) bool { return m.dead })
		s.parts[part].Store(&live)
		s.mu.Unlock()
	}
}

// kill drops a member; only its writer calls it.
func (m *floorMember) kill() {
	m.dead = true
	m.conn.Close()
}

// closeStreams closes every stream; later ones are closed as they come.
// The writers see their writes fail.
func (fl *floorServer) closeStreams() {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.closed = true
	for _, set := range []map[string]*floorSource{fl.topics, fl.patterns} {
		for _, s := range set {
			s.mu.Lock()
			for i := range s.parts {
				for _, m := range *s.parts[i].Load() {
					m.conn.Close()
				}
			}
			s.mu.Unlock()
		}
	}
}

// cmdFloorServer runs the floor server until ctx ends (SIGINT or SIGTERM).
func cmdFloorServer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ssebench floor-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	writeTimeout := fs.Duration("write-timeout", 10*time.Second, "deadline of each write to a stream; a stream whose write fails is dropped")
	writers := fs.Int("writers", 0, "writer goroutines, each writing to its share of the streams (0: one per CPU)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("floor-server: unexpected arguments %q", fs.Args())
	}
	if *writeTimeout <= 0 {
		return errors.New("floor-server: --write-timeout must be positive")
	}
	if *writers < 0 {
		return errors.New("floor-server: --writers must be 0 (one per CPU) or more")
	}
	if *writers == 0 {
		*writers = runtime.GOMAXPROCS(0)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("floor-server: %w", err)
	}
	fl := newFloorServer(*writeTimeout, *writers)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, w := range fl.writers {
		wg.Go(func() { fl.run(w, stop) })
	}
	srv := &http.Server{Handler: fl.routes(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "floor-server listening on %s\n", ln.Addr())
	var serveErr error
	select {
	case <-ctx.Done():
		_ = srv.Close()
		serveErr = <-served
	case serveErr = <-served:
	}
	fl.closeStreams()
	close(stop)
	wg.Wait()
	if !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("floor-server: %w", serveErr)
	}
	return nil
}
