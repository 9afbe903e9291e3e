package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/rs/zerolog"

	"github.com/ssegateway/ssegateway/auth"
	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/gateway/fanout"
	"github.com/ssegateway/ssegateway/pubsub"
	"github.com/ssegateway/ssegateway/replay"
)

// Config holds the node's settings. Zero fields take the defaults below.
type Config struct {
	Heartbeat       time.Duration // comment line after this much silence; 15s
	Retry           time.Duration // reconnect delay sent to clients; 2s
	WriteTimeout    time.Duration // deadline of each write and flush; 10s
	MaxTopics       int           // topics per stream; 32
	MaxTopicLen     int           // bytes per topic name; 256
	MaxQueueBytes   int           // a stream's unsent bytes before eviction; 1 MiB
	MaxPublishBytes int64         // POST /publish body size; 1 MiB
	ReplayBatch     int64         // entries per history read; 512
	// PositionCheck is how often the node compares every topic it serves
	// with the newest id on record, to catch a pub/sub feed that went
	// silent; 5s. Negative disables it.
	PositionCheck time.Duration
	// MaxReplayReads bounds the history reads a node makes at once for
	// reconnecting streams; 32.
	MaxReplayReads   int
	UnsubscribeGrace time.Duration // keep an unused topic subscribed this long; 5s
	// DrainPeriod spreads the closing of streams on shutdown over this long,
	// in waves, so their clients reconnect to other nodes gradually; 5s.
	DrainPeriod time.Duration
	// ShutdownTimeout bounds the whole graceful shutdown, drain included;
	// 15s. It must be longer than DrainPeriod.
	ShutdownTimeout time.Duration
	// MaxConnectionAge, when set, closes each stream (with a retry hint)
	// after this long, plus up to 20% jitter, so load spreads over nodes
	// added since. 0 keeps streams open indefinitely.
	MaxConnectionAge time.Duration
	// AllowAnonymous lets anyone subscribe to and publish on any topic. With
	// no authentication configured it must be set explicitly.
	AllowAnonymous bool
	// Auth verifies tokens; nil means no authentication.
	Auth auth.Verifier
	// PublicTopics may be subscribed to without a token.
	PublicTopics auth.Patterns
	// TokenCookie names a cookie that may carry a subscriber's token (for an
	// EventSource with withCredentials); empty disables it.
	TokenCookie string
	// TokenQueryParam names a query parameter that may carry a subscriber's
	// token; empty (the default) disables it, since URLs end up in logs.
	TokenQueryParam string
	// CORSOrigins are the origins allowed to subscribe and publish from a
	// browser ("*" for any); empty sends no CORS headers.
	CORSOrigins []string
	// CORSCredentials lets those origins send cookies (EventSource
	// withCredentials). Not allowed with "*".
	CORSCredentials bool
	// MaxConnections bounds the streams open on the node; 0 is unbounded.
	// A stream over it gets a 200 that ends at once with a retry hint, so
	// the client tries again, possibly on another node.
	MaxConnections int
	// MaxStreamsPerClient bounds the streams one client holds open on the
	// node: per token subject when the stream is authenticated, else per
	// client address (an IPv6 client per /64). Over it, as over
	// MaxConnections, a stream gets a 200 that ends with a retry hint. 0
	// takes the default, 100: room for a browser with many tabs over one
	// HTTP/2 connection, or a few dozen anonymous readers behind one NAT
	// address, while one client cannot take the node. Negative is unbounded.
	MaxStreamsPerClient int
	// PublishRate bounds POST /publish per publisher (the token's subject,
	// or the client address without a token) in events per second, with
	// bursts of PublishBurst; 0 is unbounded.
	PublishRate  float64
	PublishBurst int
	// TrustedProxies are the networks of the load balancers in front of the
	// node. A request whose socket peer is in one of them has its client
	// address taken from X-Forwarded-For (the rightmost address that is not
	// a trusted proxy); any other request's client is its peer, whatever
	// its headers say. Empty (the default) believes no header.
	TrustedProxies []netip.Prefix
	// ReadHeaderTimeout bounds how long a client may take to send its
	// request headers (against slowloris); 10s. MaxHeaderBytes bounds their
	// size; 64 KiB (a larger request gets 431).
	ReadHeaderTimeout time.Duration
	MaxHeaderBytes    int
	// BodyTimeout bounds how long a request body may take to arrive after
	// the headers; 30s. MinBodyRate is the least average rate, in bytes per
	// second, at which it must arrive once BodyRateGrace (5s) has passed;
	// 1024, negative disables it. A body cut off gets 408 and its
	// connection is closed. POST /publish checks the token before it reads
	// the body at all.
	BodyTimeout   time.Duration
	MinBodyRate   int
	BodyRateGrace time.Duration
	// TLS, when set, makes Serve speak TLS with HTTP/2 (and HTTP/1.1 for
	// clients that do not offer h2). Certificates come from its
	// GetCertificate or Certificates.
	TLS *tls.Config
	// H2C also accepts unencrypted HTTP/2 with prior knowledge, for load
	// balancers that speak it to their backends. Ignored with TLS.
	H2C bool
	// MaxStreamsPerConnection bounds concurrent HTTP/2 streams (SSE streams
	// and requests) on one client connection; 250.
	MaxStreamsPerConnection int
	// AdminOnlyMetrics serves /metrics only on the admin handler, not on
	// the public one.
	AdminOnlyMetrics bool
	// SendBuffer, when set, fixes the kernel send buffer (SO_SNDBUF) of each
	// HTTP/1.1 stream's connection, bounding what a slow client can leave
	// queued in the kernel: it then falls MaxQueueBytes behind sooner, is
	// evicted and catches up from Redis. 0 keeps the kernel's autotuning
	// (up to several MB per connection).
	SendBuffer int
	// Mercure, when set, serves the Mercure protocol at /.well-known/mercure
	// (see MercureConfig). Its keys count as authentication configured: a
	// node with them and no other auth serves /events only to public topics.
	Mercure *MercureConfig
	// Version is the build the node reports in ssegateway_build_info
	// {version}; "unknown" when empty. The gateway command passes its own
	// (stamped at build time, else its module version or commit).
	Version string
}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Heartbeat, 15*time.Second)
	def(&c.Retry, 2*time.Second)
	def(&c.WriteTimeout, 10*time.Second)
	def(&c.UnsubscribeGrace, 5*time.Second)
	def(&c.DrainPeriod, 5*time.Second)
	def(&c.ShutdownTimeout, 15*time.Second)
	if c.MaxTopics == 0 {
		c.MaxTopics = 32
	}
	if c.MaxTopicLen == 0 {
		c.MaxTopicLen = contract.MaxTopicLen
	}
	if c.MaxQueueBytes == 0 {
		c.MaxQueueBytes = 1 << 20
	}
	if c.MaxPublishBytes == 0 {
		c.MaxPublishBytes = 1 << 20
	}
	if c.ReplayBatch == 0 {
		c.ReplayBatch = 512
	}
	def(&c.PositionCheck, 5*time.Second)
	def(&c.ReadHeaderTimeout, 10*time.Second)
	def(&c.BodyTimeout, 30*time.Second)
	def(&c.BodyRateGrace, 5*time.Second)
	if c.MinBodyRate == 0 {
		c.MinBodyRate = 1024
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 64 << 10
	}
	if c.MaxReplayReads == 0 {
		c.MaxReplayReads = 32
	}
	if c.MaxStreamsPerConnection == 0 {
		c.MaxStreamsPerConnection = 250
	}
	if c.MaxStreamsPerClient == 0 {
		c.MaxStreamsPerClient = DefaultMaxStreamsPerClient
	}
	if c.Version == "" {
		c.Version = "unknown"
	}
}

// DefaultMaxStreamsPerClient is Config.MaxStreamsPerClient's default.
const DefaultMaxStreamsPerClient = 100

func (c *Config) validate() error {
	switch {
	case c.Heartbeat < 0 || c.Retry < 0 || c.WriteTimeout < 0 || c.UnsubscribeGrace < 0 || c.ShutdownTimeout < 0 ||
		c.DrainPeriod < 0 || c.MaxConnectionAge < 0 || c.BodyTimeout < 0 || c.BodyRateGrace < 0:
		return errors.New("durations must not be negative")
	case c.DrainPeriod >= c.ShutdownTimeout:
		return fmt.Errorf("the drain period (%v) must be shorter than the shutdown timeout (%v)", c.DrainPeriod, c.ShutdownTimeout)
	case c.MaxTopics < 0 || c.MaxTopicLen < 0 || c.MaxQueueBytes < 0 || c.MaxPublishBytes < 0 || c.ReplayBatch < 0 ||
		c.MaxConnections < 0 || c.PublishRate < 0 || c.PublishBurst < 0 || c.MaxStreamsPerConnection < 0 || c.SendBuffer < 0:
		return errors.New("limits must not be negative")
	case c.MaxTopicLen > contract.MaxTopicLen:
		return fmt.Errorf("max topic length %d is over the contract's %d", c.MaxTopicLen, contract.MaxTopicLen)
	case !c.AllowAnonymous && c.Auth == nil && c.Mercure == nil:
		return errors.New("no authentication is configured; configure token verification or allow anonymous access explicitly (--insecure-no-auth)")
	case c.CORSCredentials && slices.Contains(c.CORSOrigins, "*"):
		return errors.New("CORS credentials cannot be allowed for every origin (*); list the origins")
	}
	return nil
}

// Publisher publishes one event and returns its id; *pubsub.Publisher
// implements it. Errors wrapping contract.ErrInvalid or contract.ErrTooLarge are
// the caller's fault; any other error is Redis's.
type Publisher interface {
	Publish(ctx context.Context, m pubsub.Message) (string, error)
}

// Subscriber is the node's pub/sub connection; *pubsub.Subscriber
// implements it.
type Subscriber interface {
	Subscribe(topics ...string)
	Unsubscribe(topics ...string)
	Healthy() bool
	Run(ctx context.Context, h pubsub.Handler) error
}

// Deps are the parts a Server is built from.
type Deps struct {
	Publisher  Publisher
	Subscriber Subscriber
	History    replay.Store
	// Ping checks that Redis answers; /readyz uses it.
	Ping   func(ctx context.Context) error
	Logger zerolog.Logger
	// Bridge, if set, runs beside the node while it serves: the contract v1
	// bridge (pubsub.Bridge). Give it Server.BridgedV1 as OnBridged.
	Bridge interface {
		Run(ctx context.Context) error
	}
}

// Server is one gateway node. Build it with NewServer and run it with Serve.
type Server struct {
	cfg  Config
	log  zerolog.Logger
	pub  Publisher
	sub  Subscriber
	hist replay.Store
	ping func(ctx context.Context) error
	// bridge is Deps.Bridge.
	bridge interface {
		Run(ctx context.Context) error
	}
	hub *fanout.Hub
	// mercure is the Mercure endpoint's state; nil when it is off.
	mercure *mercureHub
	reads   *readGroup
	m       *metrics
	// streamDeps is what the node lends its streams.
	streamDeps *streamDeps

	publishLimit *rateLimiter    // nil: unbounded
	batch        *publishBatcher // nil when the Publisher cannot batch
	e            *echo.Echo
	metricsH     http.Handler

	draining atomic.Bool

	streamsMu sync.Mutex
	streams   map[*stream]string // open streams, with their client's key; nil once draining
	perClient map[string]int     // open streams per client key (clientKey)
	detached  sync.WaitGroup     // streams running after their handler returned
}

// NewServer validates cfg and builds a node. It starts nothing.
func NewServer(cfg Config, d Deps) (*Server, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if d.Publisher == nil || d.Subscriber == nil || d.History == nil || d.Ping == nil {
		return nil, errors.New("gateway: Publisher, Subscriber, History and Ping are all required")
	}
	s := &Server{
		cfg: cfg, log: d.Logger, pub: d.Publisher, sub: d.Subscriber, hist: d.History, ping: d.Ping, bridge: d.Bridge,
		m:         newMetrics(cfg.Version),
		streams:   make(map[*stream]string),
		perClient: make(map[string]int),
	}
	if cfg.Mercure != nil {
		var err error
		if s.mercure, err = newMercureHub(*cfg.Mercure, d.Publisher, cfg.MaxPublishBytes); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	s.hub = fanout.New(fanout.Config{
		NewIndex: s.newIndex,
		Grace:    cfg.UnsubscribeGrace, Check: max(cfg.PositionCheck, 0), Batch: cfg.ReplayBatch,
		Logger: d.Logger.With().Str("component", "hub").Logger(),
		Counters: fanout.Counters{Received: s.m.received, Repaired: s.m.repaired, HistoryLost: s.m.historyLost,
			Stalls: s.m.stalls, Disconnects: s.m.pubsubReconnects, Sources: s.m.topics},
	}, d.Subscriber, d.History)
	s.reads = newReadGroup(d.History, cfg.MaxReplayReads, s.m)
	s.streamDeps = &streamDeps{
		heartbeat: cfg.Heartbeat, retry: cfg.Retry, writeTimeout: cfg.WriteTimeout,
		maxAge: cfg.MaxConnectionAge, batch: cfg.ReplayBatch,
		log: d.Logger, m: s.m, hub: s.hub, reads: s.reads, bufs: &bufPool{},
	}
	if cfg.PublishRate > 0 {
		s.publishLimit = newRateLimiter(cfg.PublishRate, max(cfg.PublishBurst, 1))
	}
	if bp, ok := d.Publisher.(BatchPublisher); ok {
		s.batch = newPublishBatcher(bp)
	}
	s.registerState()
	s.e = s.routes()
	return s, nil
}

// Handler returns the node's HTTP handler.
func (s *Server) Handler() http.Handler { return s.e }

// Serve runs the node on ln until ctx ends, then shuts down gracefully:
// readiness turns false, streams end with a retry hint, in-flight requests
// finish (bounded by ShutdownTimeout) and every goroutine started here
// exits before Serve returns. It returns nil after a shutdown, or the error
// that stopped the listener.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	bg, stopBG := context.WithCancel(context.Background())
	s.reads.base = bg // before any request can read
	var wg sync.WaitGroup
	defer func() {
		if s.batch != nil {
			s.batch.running.Store(false)
		}
		stopBG()
		wg.Wait()
		s.reads.wg.Wait()
	}()
	wg.Go(func() {
		if err := s.sub.Run(bg, s.hub); err != nil {
			s.log.Error().Err(err).Msg("pub/sub subscriber stopped")
		}
	})
	wg.Go(func() { s.hub.Run(bg) })
	if s.bridge != nil {
		wg.Go(func() {
			if err := s.bridge.Run(bg); err != nil {
				s.log.Error().Err(err).Msg("contract v1 bridge stopped")
			}
		})
	}
	if s.mercure != nil && s.mercure.cfg.Subscriptions {
		wg.Go(func() {
			if err := s.mercure.cfg.Registry.Run(bg); err != nil && bg.Err() == nil {
				s.log.Error().Err(err).Msg("mercure subscriptions registry stopped")
			}
		})
	}
	if s.batch != nil {
		s.batch.run(bg, &wg)
	}

	hs := s.httpServer()
	served := make(chan error, 1)
	go func() {
		if hs.TLSConfig != nil {
			served <- hs.ServeTLS(ln, "", "")
		} else {
			served <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-served:
		return fmt.Errorf("gateway: serve: %w", err)
	case <-ctx.Done():
	}

	start := time.Now()
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	s.drain(sctx)
	s.log.Info().Dur("took", time.Since(start)).Msg("streams drained; stopping")
	if err := hs.Shutdown(sctx); err != nil {
		s.log.Warn().Err(err).Msg("shutdown timed out; closing remaining connections")
		_ = hs.Close()
	}
	s.detached.Wait()
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Warn().Err(err).Msg("serve")
	}
	return nil
}

// httpServer is the node's HTTP server: HTTP/1.1, plus HTTP/2 over TLS
// or, with H2C, in the clear.
func (s *Server) httpServer() *http.Server {
	hs := &http.Server{
		Handler:           s.e,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          log.New(httpErrorLog{s.log}, "", 0),
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: s.cfg.MaxStreamsPerConnection},
	}
	var p http.Protocols
	p.SetHTTP1(true)
	if s.cfg.TLS != nil {
		hs.TLSConfig = s.cfg.TLS.Clone()
		p.SetHTTP2(true)
	} else if s.cfg.H2C {
		p.SetUnencryptedHTTP2(true)
	}
	hs.Protocols = &p
	return hs
}

// BridgedV1 counts events the contract v1 bridge republished for topic.
func (s *Server) BridgedV1(_ string, n int) {
	if s != nil {
		s.m.bridgedV1.Add(float64(n))
	}
}

// newIndex gives the Mercure hub's feed its matcher; other feeds get the
// pattern index.
func (s *Server) newIndex(source string) fanout.Index {
	if source == mercureFeed && s.mercure != nil {
		return newMercureIndex(s.mercure.cache)
	}
	return nil
}

// publish publishes m, batched with other requests' events when the
// batcher runs (under Serve), directly otherwise.
func (s *Server) publish(ctx context.Context, m pubsub.Message) (string, error) {
	if s.batch != nil && s.batch.running.Load() {
		return s.batch.publish(ctx, m)
	}
	return s.pub.Publish(ctx, m)
}

// register adds a stream of the client named key (clientKey) to the open
// set. It refuses, saying why, when the node is draining, when the client
// already holds MaxStreamsPerClient streams, or when the node holds
// MaxConnections; refusals by a limit are counted.
func (s *Server) register(st *stream, key string) (bool, closeReason) {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	switch {
	case s.streams == nil:
		return false, closeShutdown
	case s.cfg.MaxStreamsPerClient > 0 && s.perClient[key] >= s.cfg.MaxStreamsPerClient:
		s.m.limited.WithLabelValues(limitStreamsPerClient).Inc()
		return false, closeLimit
	case s.cfg.MaxConnections > 0 && len(s.streams) >= s.cfg.MaxConnections:
		s.m.limited.WithLabelValues(limitConnections).Inc()
		return false, closeLimit
	}
	s.streams[st] = key
	s.perClient[key]++
	return true, 0
}

// queuedBytes sums what waits in the open streams' queues.
func (s *Server) queuedBytes() int {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	n := 0
	for st := range s.streams {
		n += st.box.QueuedBytes()
	}
	return n
}

func (s *Server) unregister(st *stream, key string) {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	delete(s.streams, st)
	if s.perClient[key]--; s.perClient[key] <= 0 {
		delete(s.perClient, key)
	}
}

// drainWaves is how many groups the streams are closed in.
const drainWaves = 10

// drain turns the node unready, refuses new streams and closes the open
// ones in waves spread over DrainPeriod, in random order, each with a
// jittered retry hint, so that their clients reconnect — through the load
// balancer, to other nodes — gradually rather than all at once. It returns
// when every stream has ended or ctx ends.
func (s *Server) drain(ctx context.Context) {
	s.draining.Store(true)
	s.streamsMu.Lock()
	open := make([]*stream, 0, len(s.streams))
	for st := range s.streams {
		open = append(open, st)
	}
	s.streams = nil
	s.streamsMu.Unlock()
	s.log.Info().Int("streams", len(open)).Dur("period", s.cfg.DrainPeriod).Msg("draining: closing streams in waves")
	rand.Shuffle(len(open), func(i, j int) { open[i], open[j] = open[j], open[i] })
	waves := min(drainWaves, len(open))
	for w := range waves {
		if s.cfg.DrainPeriod > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(s.cfg.DrainPeriod / time.Duration(waves)):
			}
		}
		for _, st := range open[w*len(open)/waves : (w+1)*len(open)/waves] {
			st.kick(closeShutdown)
		}
	}
	for _, st := range open {
		select {
		case <-st.done:
		case <-ctx.Done():
			// Out of time: close the connections of the streams still
			// open (net/http closes its own; taken-over ones are ours).
			for _, st := range open {
				if st.abort != nil {
					st.abort()
				}
			}
			return
		}
	}
}

// httpErrorLog sends net/http's own error log to zerolog.
type httpErrorLog struct{ log zerolog.Logger }

func (l httpErrorLog) Write(p []byte) (int, error) {
	l.log.Debug().Str("component", "http").Msg(string(p))
	return len(p), nil
}
