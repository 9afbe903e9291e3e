package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/gateway"
	"github.com/ssegateway/ssegateway/mercure"
	"github.com/ssegateway/ssegateway/pubsub"
	"github.com/ssegateway/ssegateway/replay"
)

// errUsage marks command-line mistakes; the message has been printed.
var errUsage = errors.New("usage error")

// run is the whole program. It returns when ctx ends and the node has shut
// down, or on a startup error.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "publish":
			return runPublish(ctx, args[1:], getenv, stdout, stderr)
		case "token":
			return runToken(ctx, args[1:], getenv, stdout, stderr)
		case "script":
			_, err := io.WriteString(stdout, contract.PublishScript())
			return err
		case "healthcheck":
			return runHealthcheck(ctx, args[1:], getenv, stdout, stderr)
		case "sleep":
			return runSleep(ctx, args[1:], stderr)
		case "version":
			return runVersion(args[1:], stdout, stderr)
		}
	}
	cfg, err := parseServe(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger, err := newLogger(cfg.logLevel, cfg.logFormat, stderr)
	if err != nil {
		return err
	}
	keys, err := contract.NewKeys(cfg.prefix)
	if err != nil {
		return err
	}

	if cfg.tlsCert != "" {
		r, err := newCertReloader(cfg.tlsCert, cfg.tlsKey, logger.With().Str("component", "tls").Logger())
		if err != nil {
			return err
		}
		cfg.node.TLS = r.tlsConfig()
	}
	cfg.node.AdminOnlyMetrics = cfg.adminAddr != ""
	cfg.node.Version = buildVersion()

	if cfg.auth.configured() {
		v, err := cfg.auth.verifier(ctx, logger.With().Str("component", "auth").Logger())
		if err != nil {
			return err
		}
		cfg.node.Auth = v
	}

	rc := cfg.redis.config()
	if !rc.Configured() {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return fmt.Errorf("start embedded redis: %w", err)
		}
		defer mr.Close()
		stopClock := embeddedClock(mr)
		defer stopClock()
		rc = pubsub.RedisConfig{URL: "redis://" + mr.Addr()}
		access := "Anyone may subscribe and publish."
		if cfg.node.Auth == nil {
			cfg.node.AllowAnonymous = true
		} else {
			access = "Tokens are required as configured."
		}
		logger.Warn().Msg("SINGLE-NODE MODE: no --redis-url given, so this node runs on an embedded in-process Redis. " +
			"Nothing is shared with other nodes and history is lost on exit. " + access +
			" This is a demo, not a production mode.")
	} else if cfg.node.AllowAnonymous {
		logger.Warn().Msg("--insecure-no-auth: anyone who can reach this node may subscribe to and publish on any topic")
	}
	if n := cfg.node; n.MaxConnections > 0 && (n.MaxStreamsPerClient < 0 || n.MaxStreamsPerClient >= n.MaxConnections) {
		logger.Warn().Int("max_connections", n.MaxConnections).Int("max_streams_per_client", n.MaxStreamsPerClient).
			Msg("--max-streams-per-client is not below --max-connections: one client can hold every stream of this node")
	}

	rdb, topology, err := rc.Client()
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	defer rdb.Close()

	pcfg := cfg.history.publisher(keys, cfg.node.MaxTopicLen)
	pcfg.Sharded = topology == pubsub.Cluster
	scfg := pubsub.SubscriberConfig{Keys: keys, Logger: logger.With().Str("component", "pubsub").Logger()}
	var sub gateway.Subscriber
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		sub = pubsub.NewShardedSubscriber(cc, scfg)
	} else {
		sub = pubsub.NewSubscriber(rdb, scfg)
	}
	pub := pubsub.NewPublisher(rdb, pcfg)
	var srv *gateway.Server
	if cfg.mercure.configured() {
		mlog := logger.With().Str("component", "mercure").Logger()
		cfg.node.Mercure, err = cfg.mercure.config(ctx, rdb, keys.Prefix(), mlog,
			func(regs []mercure.RegisteredSubscriber) { srv.ExpireMercureSubscribers(regs) })
		if err != nil {
			return err
		}
		cfg.node.Mercure.MaxDataBytes = cfg.history.maxEvent
	}
	var bridge gateway.Deps
	if cfg.bridgeV1 && topology != pubsub.Cluster {
		bridge.Bridge = pubsub.NewBridge(rdb, pub, pubsub.BridgeConfig{Logger: logger.With().Str("component", "v1-bridge").Logger(),
			OnBridged: func(topic string, n int) { srv.BridgedV1(topic, n) }})
	}
	srv, err = gateway.NewServer(cfg.node, gateway.Deps{
		Bridge:     bridge.Bridge,
		Publisher:  pub,
		Subscriber: sub,
		History:    replay.NewRedisStore(rdb, keys),
		Ping:       func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		Logger:     logger,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	if cfg.adminAddr != "" {
		aln, err := net.Listen("tcp", cfg.adminAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen on %s (--admin-addr): %w", cfg.adminAddr, err)
		}
		stop := serveAdmin(aln, srv.AdminHandler(append([]string{os.Args[0]}, redactArgs(args)...)), logger)
		defer stop()
		logger.Info().Str("addr", aln.Addr().String()).Msg("admin listening")
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	if err := rdb.Ping(pctx).Err(); err != nil {
		logger.Warn().Err(err).Str("redis", rc.Describe()).Msg("redis is not reachable yet; streams wait for it and /readyz fails until it is")
	}
	cancel()
	scheme := "http"
	if cfg.node.TLS != nil {
		scheme = "https"
	}
	logger.Info().Str("addr", ln.Addr().String()).Str("scheme", scheme).Bool("h2c", cfg.node.H2C).
		Str("redis", rc.Describe()).Stringer("topology", topology).Str("prefix", keys.Prefix()).Msg("listening")
	return srv.Serve(ctx, ln)
}

// serveAdmin serves the admin handler on ln until stop is called. It
// outlives the public listener's drain, so metrics and readiness stay
// observable while the node shuts down.
func serveAdmin(ln net.Listener, h http.Handler, log zerolog.Logger) (stop func()) {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("admin listener stopped")
		}
	})
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if hs.Shutdown(ctx) != nil {
			_ = hs.Close()
		}
		wg.Wait()
	}
}

// embeddedClock makes key expiry work on the embedded Redis, whose clock
// only moves when told to.
func embeddedClock(mr *miniredis.Miniredis) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				mr.FastForward(time.Second)
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func newLogger(level, format string, w io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(strings.ToLower(level))
	if err != nil || lvl == zerolog.NoLevel {
		return zerolog.Logger{}, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	switch format {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	case "auto":
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
			}
		}
	default:
		return zerolog.Logger{}, fmt.Errorf("--log-format %q: use json, console or auto", format)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}
