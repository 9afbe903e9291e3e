package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/ssegateway/ssegateway/auth"
	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/gateway"
	"github.com/ssegateway/ssegateway/pubsub"
)

// serveConfig is everything `gateway` is configured with.
type serveConfig struct {
	addr, prefix        string
	redis               redisFlags
	adminAddr           string
	tlsCert, tlsKey     string
	logLevel, logFormat string
	history             historyFlags
	node                gateway.Config
	auth                authFlags
	mercure             mercureFlags
	bridgeV1            bool
}

// authFlags configure token verification and where tokens come from.
type authFlags struct {
	secret, secretFile, publicKeys, jwksURLs, jwksFile string
	issuer, audience                                   string
	publicTopics, corsOrigins                          string
	trustedProxies                                     string
}

// configured reports whether any source of keys was given.
func (a authFlags) configured() bool {
	return a.secret != "" || a.secretFile != "" || a.publicKeys != "" || a.jwksURLs != "" || a.jwksFile != ""
}

// list splits a comma-separated flag value, dropping empty items.
func list(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// redisFlags say where Redis is; `gateway` and `gateway publish` share
// them.
type redisFlags struct {
	url, sentinelMaster, sentinelAddrs, clusterAddrs, username, password string
	passwordFile                                                         string
}

func (r *redisFlags) register(fs *flag.FlagSet, urlNote string) {
	fs.StringVar(&r.url, "redis-url", "", "Redis: redis://[user:password@]host:port[/db] (rediss:// for TLS), "+
		"redis-sentinel://[user:password@]s1:26379,s2:26379/primary[/db], or redis-cluster://[user:password@]n1:6379,n2:6379"+urlNote+" [GATEWAY_REDIS_URL]")
	fs.StringVar(&r.sentinelMaster, "redis-sentinel-master", "", "Sentinel: the primary's name (instead of a URL) [GATEWAY_REDIS_SENTINEL_MASTER]")
	fs.StringVar(&r.sentinelAddrs, "redis-sentinel-addrs", "", "Sentinel: comma-separated sentinel host:port [GATEWAY_REDIS_SENTINEL_ADDRS]")
	fs.StringVar(&r.clusterAddrs, "redis-cluster-addrs", "", "Redis Cluster: comma-separated seed nodes host:port (instead of a URL) [GATEWAY_REDIS_CLUSTER_ADDRS]")
	fs.StringVar(&r.username, "redis-username", "", "Redis user, with --redis-password [GATEWAY_REDIS_USERNAME]")
	fs.StringVar(&r.password, "redis-password", "", "Redis password, for a URL without one or the Sentinel or cluster flags (keeps it out of the URL); "+
		"prefer the variable or --redis-password-file: any user on the machine can read a process's flags [GATEWAY_REDIS_PASSWORD]")
	fs.StringVar(&r.passwordFile, "redis-password-file", "", "file holding the Redis password (one line), instead of --redis-password [GATEWAY_REDIS_PASSWORD_FILE]")
}

// readPasswordFile fills the password from --redis-password-file.
func (r *redisFlags) readPasswordFile() error {
	if r.passwordFile == "" {
		return nil
	}
	if r.password != "" {
		return errors.New("--redis-password and --redis-password-file: give one")
	}
	b, err := os.ReadFile(r.passwordFile)
	if err != nil {
		return fmt.Errorf("--redis-password-file: %w", err)
	}
	r.password = strings.TrimRight(string(b), "\r\n")
	if r.password == "" {
		return fmt.Errorf("--redis-password-file: %s is empty", r.passwordFile)
	}
	return nil
}

func (r redisFlags) config() pubsub.RedisConfig {
	return pubsub.RedisConfig{URL: r.url, SentinelMaster: r.sentinelMaster, SentinelAddrs: list(r.sentinelAddrs),
		ClusterAddrs: list(r.clusterAddrs), Username: r.username, Password: r.password}
}

// historyFlags are the retention settings every publisher must share, so
// they are flags of both `gateway` and `gateway publish`.
type historyFlags struct {
	maxLen, feedMaxLen int64
	maxAge             time.Duration
	maxEvent           int
}

func (h *historyFlags) register(fs *flag.FlagSet) {
	fs.Int64Var(&h.maxLen, "history-max-len", pubsub.DefaultMaxLen,
		"events kept per topic for replay (approximate; 0 keeps all) [GATEWAY_HISTORY_MAX_LEN]")
	fs.Int64Var(&h.feedMaxLen, "feed-max-len", pubsub.DefaultFeedMaxLen,
		"events kept per feed (all topics under one first path segment, which pattern subscriptions resume from; approximate; 0 keeps all) [GATEWAY_FEED_MAX_LEN]")
	fs.DurationVar(&h.maxAge, "history-max-age", pubsub.DefaultMaxAge,
		"how long events are kept for replay; a topic's history expires after this long without events (0 keeps all) [GATEWAY_HISTORY_MAX_AGE]")
	fs.IntVar(&h.maxEvent, "max-event-bytes", pubsub.DefaultMaxDataBytes,
		"largest event data accepted for publishing [GATEWAY_MAX_EVENT_BYTES]")
}

func (h historyFlags) publisher(keys contract.Keys, maxTopicLen int) pubsub.PublisherConfig {
	cfg := pubsub.PublisherConfig{Keys: keys, MaxLen: h.maxLen, FeedMaxLen: h.feedMaxLen, MaxAge: h.maxAge,
		MaxDataBytes: h.maxEvent, MaxTopicLen: maxTopicLen}
	// In the flags 0 means "keep all"; in PublisherConfig that is -1.
	if h.maxLen == 0 {
		cfg.MaxLen = -1
	}
	if h.feedMaxLen == 0 {
		cfg.FeedMaxLen = -1
	}
	if h.maxAge == 0 {
		cfg.MaxAge = -1
	}
	return cfg
}

func (h historyFlags) validate() error {
	switch {
	case h.maxLen < 0:
		return errors.New("--history-max-len must not be negative")
	case h.feedMaxLen < 0:
		return errors.New("--feed-max-len must not be negative")
	case h.maxAge < 0:
		return errors.New("--history-max-age must not be negative")
	case h.maxAge > 0 && h.maxAge < time.Millisecond:
		return errors.New("--history-max-age must be at least 1ms")
	case h.maxEvent <= 0:
		return errors.New("--max-event-bytes must be positive")
	}
	return nil
}

func parseServe(args []string, getenv func(string) string, stderr io.Writer) (*serveConfig, error) {
	c := &serveConfig{}
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `gateway: a horizontally scalable Server-Sent Events gateway on Redis.

Usage:
  gateway [flags]                               run a node
  gateway publish --topic T [--type X] DATA     publish one event (gateway publish -h)
  gateway token [--subscribe P] [--publish P]   mint a JWT for development (gateway token -h)
  gateway script                                print the publish Lua script
  gateway healthcheck [--ready]                 exit 0 if the local node is healthy (for containers)
  gateway sleep DURATION                        wait, then exit 0 (a preStop pause in an image with no shell)
  gateway version                               print the version

Every flag can also be set by the environment variable in brackets; a flag
on the command line wins. With no --redis-url the node runs single-node on an
embedded in-process Redis.

Flags:
`)
		fs.PrintDefaults()
	}
	n := &c.node
	fs.StringVar(&c.addr, "addr", ":8080", "listen address [GATEWAY_ADDR]")
	c.redis.register(fs, "; with no Redis configured the node runs on an embedded single-node Redis")
	fs.StringVar(&c.prefix, "redis-prefix", contract.DefaultPrefix, "prefix of every Redis key and channel the gateway uses [GATEWAY_REDIS_PREFIX]")
	c.history.register(fs)
	fs.DurationVar(&n.Heartbeat, "heartbeat", 15*time.Second, "send a comment line on idle streams this often; keep it below proxies' idle timeouts [GATEWAY_HEARTBEAT]")
	fs.DurationVar(&n.Retry, "retry", 2*time.Second, "reconnect delay sent to clients (retry:); streams the node ends itself get 1-2x this [GATEWAY_RETRY]")
	fs.DurationVar(&n.WriteTimeout, "write-timeout", 10*time.Second, "deadline for each write to a client; a client that misses it is disconnected [GATEWAY_WRITE_TIMEOUT]")
	fs.IntVar(&n.MaxTopics, "max-topics", 32, "topics per stream [GATEWAY_MAX_TOPICS]")
	fs.IntVar(&n.MaxTopicLen, "max-topic-length", contract.MaxTopicLen, "bytes per topic name [GATEWAY_MAX_TOPIC_LENGTH]")
	fs.IntVar(&n.MaxQueueBytes, "max-queue-bytes", 1<<20, "unsent bytes a stream may fall behind before it is evicted (it reconnects and catches up) [GATEWAY_MAX_QUEUE_BYTES]")
	fs.Int64Var(&n.MaxPublishBytes, "max-publish-bytes", 1<<20, "largest POST /publish body [GATEWAY_MAX_PUBLISH_BYTES]")
	fs.DurationVar(&n.UnsubscribeGrace, "unsubscribe-grace", 5*time.Second, "keep a topic subscribed this long after its last stream leaves [GATEWAY_UNSUBSCRIBE_GRACE]")
	fs.DurationVar(&n.DrainPeriod, "drain-period", 5*time.Second, "on SIGTERM, close streams in waves spread over this long so clients move to other nodes gradually [GATEWAY_DRAIN_PERIOD]")
	fs.DurationVar(&n.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "bound on a graceful shutdown, drain included; must exceed --drain-period [GATEWAY_SHUTDOWN_TIMEOUT]")
	fs.DurationVar(&n.MaxConnectionAge, "max-connection-age", 0, "close each stream after this long (plus up to 20% jitter) so load rebalances after a scale-out; the client resumes on any node; 0 is off [GATEWAY_MAX_CONNECTION_AGE]")
	fs.BoolVar(&n.AllowAnonymous, "insecure-no-auth", false, "allow anyone to subscribe and publish without credentials (implied in single-node mode unless a key is configured) [GATEWAY_INSECURE_NO_AUTH]")
	a := &c.auth
	fs.StringVar(&a.secret, "jwt-secret", "", "HMAC secret (at least 32 bytes) verifying HS256/384/512 tokens; "+
		"prefer the variable or --jwt-secret-file: any user on the machine can read a process's flags [GATEWAY_JWT_SECRET]")
	fs.StringVar(&a.secretFile, "jwt-secret-file", "", "file of HMAC secrets, one per line; a token signed with any is accepted (key rotation) [GATEWAY_JWT_SECRET_FILE]")
	fs.StringVar(&a.publicKeys, "jwt-public-key", "", "comma-separated PEM files of public keys: RSA (RS*/PS*), ECDSA (ES*), Ed25519 (EdDSA) [GATEWAY_JWT_PUBLIC_KEY]")
	fs.StringVar(&a.jwksURLs, "jwks-url", "", "comma-separated JWKS URLs, cached and refreshed hourly and on unknown kid [GATEWAY_JWKS_URL]")
	fs.StringVar(&a.jwksFile, "jwks-file", "", "a JWKS file [GATEWAY_JWKS_FILE]")
	fs.StringVar(&a.issuer, "jwt-issuer", "", "required iss of tokens, if set [GATEWAY_JWT_ISSUER]")
	fs.StringVar(&a.audience, "jwt-audience", "", "required aud of tokens, if set [GATEWAY_JWT_AUDIENCE]")
	fs.StringVar(&a.publicTopics, "public-topics", "", "comma-separated topic patterns anyone may subscribe to without a token, e.g. news/*,status [GATEWAY_PUBLIC_TOPICS]")
	fs.StringVar(&n.TokenCookie, "token-cookie", "sse_token", "cookie that may carry a subscriber's token (EventSource withCredentials); empty disables [GATEWAY_TOKEN_COOKIE]")
	fs.StringVar(&n.TokenQueryParam, "token-query-param", "", "query parameter that may carry a subscriber's token; off by default because URLs end up in logs [GATEWAY_TOKEN_QUERY_PARAM]")
	fs.StringVar(&a.corsOrigins, "cors-origins", "", "comma-separated origins allowed to use the gateway from a browser, or * [GATEWAY_CORS_ORIGINS]")
	fs.StringVar(&a.trustedProxies, "trusted-proxies", "", "comma-separated networks (CIDRs, or single addresses) of the load balancers in front of the node: "+
		"only from them is X-Forwarded-For believed for the client address (logs, per-client limits); empty believes no header [GATEWAY_TRUSTED_PROXIES]")
	fs.DurationVar(&n.ReadHeaderTimeout, "read-header-timeout", 10*time.Second, "time a client has to send its request headers (against slowloris) [GATEWAY_READ_HEADER_TIMEOUT]")
	fs.IntVar(&n.MaxHeaderBytes, "max-header-bytes", 64<<10, "largest request headers; larger requests get 431 [GATEWAY_MAX_HEADER_BYTES]")
	fs.DurationVar(&n.BodyTimeout, "body-timeout", 30*time.Second, "time a client has to send a request body after its headers; a body not in by then gets 408 and the connection is closed [GATEWAY_BODY_TIMEOUT]")
	fs.IntVar(&n.MinBodyRate, "min-body-rate", 1024, "bytes per second a request body must arrive at, on average, after its first 5s; slower gets 408 and the connection is closed; 0 is off [GATEWAY_MIN_BODY_RATE]")
	fs.IntVar(&n.SendBuffer, "send-buffer", 0, "kernel send buffer per HTTP/1.1 stream in bytes (SO_SNDBUF): bounds what a slow client leaves queued in the kernel, so it is evicted and catches up from Redis sooner; 0 keeps the kernel's autotuning [GATEWAY_SEND_BUFFER]")
	fs.IntVar(&n.MaxConnections, "max-connections", 0, "streams per node; over it a stream gets a 200 with a retry hint and ends, so the client tries again (likely on another node); 0 is unbounded [GATEWAY_MAX_CONNECTIONS]")
	fs.IntVar(&n.MaxStreamsPerClient, "max-streams-per-client", gateway.DefaultMaxStreamsPerClient, "streams one client may hold open on the node: per token subject, or per client address without a token (an IPv6 client per /64); "+
		"over it a stream gets a 200 with a retry hint and ends; 0 is unbounded [GATEWAY_MAX_STREAMS_PER_CLIENT]")
	fs.Float64Var(&n.PublishRate, "publish-rate", 0, "POST /publish events per second per publisher (token subject, else client address); over it: 429; 0 is unbounded [GATEWAY_PUBLISH_RATE]")
	fs.IntVar(&n.PublishBurst, "publish-burst", 20, "bursts allowed above --publish-rate [GATEWAY_PUBLISH_BURST]")
	fs.BoolVar(&n.CORSCredentials, "cors-credentials", false, "let those origins send cookies (needed for cookie tokens across origins; not with *) [GATEWAY_CORS_CREDENTIALS]")
	fs.StringVar(&c.adminAddr, "admin-addr", "", "private listener for /metrics, /healthz, /readyz and pprof (/debug/pprof/), e.g. :9090; when set, /metrics is served only there [GATEWAY_ADMIN_ADDR]")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "PEM certificate (chain) file: serve HTTPS with HTTP/2; reloaded when the file changes [GATEWAY_TLS_CERT]")
	fs.StringVar(&c.tlsKey, "tls-key", "", "PEM private key file for --tls-cert; reloaded with it [GATEWAY_TLS_KEY]")
	fs.BoolVar(&n.H2C, "h2c", false, "also accept unencrypted HTTP/2 (prior knowledge), for load balancers that speak it to backends [GATEWAY_H2C]")
	fs.IntVar(&n.MaxStreamsPerConnection, "http2-max-streams", 250, "concurrent HTTP/2 streams per client connection [GATEWAY_HTTP2_MAX_STREAMS]")
	c.mercure.register(fs)
	fs.BoolVar(&c.bridgeV1, "bridge-contract-v1", true, "republish events that publishers of the version 1 contract write to topics with / "+
		"(old scripts, old nodes in a rolling upgrade) through version 2, keeping their ids; one Redis and Sentinel only [GATEWAY_BRIDGE_CONTRACT_V1]")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error [GATEWAY_LOG_LEVEL]")
	fs.StringVar(&c.logFormat, "log-format", "auto", "json, console, or auto (console on a terminal) [GATEWAY_LOG_FORMAT]")
	if err := parseFlags(fs, args, getenv); err != nil {
		return nil, err
	}
	c.mercure.fromMercureEnv(fs, getenv)
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gateway: unexpected argument %q (see gateway -h)\n", fs.Arg(0))
		return nil, errUsage
	}
	if err := c.history.validate(); err != nil {
		return nil, err
	}
	if err := c.redis.readPasswordFile(); err != nil {
		return nil, err
	}
	var err error
	if n.PublicTopics, err = auth.ParsePatterns(list(c.auth.publicTopics)); err != nil {
		return nil, fmt.Errorf("--public-topics: %w", err)
	}
	n.CORSOrigins = list(c.auth.corsOrigins)
	if n.TrustedProxies, err = parsePrefixes(list(c.auth.trustedProxies)); err != nil {
		return nil, fmt.Errorf("--trusted-proxies: %w", err)
	}
	switch {
	case n.Heartbeat <= 0:
		return nil, errors.New("--heartbeat must be positive")
	case n.Retry <= 0:
		return nil, errors.New("--retry must be positive")
	case n.WriteTimeout <= 0:
		return nil, errors.New("--write-timeout must be positive")
	case n.MaxTopics <= 0:
		return nil, errors.New("--max-topics must be positive")
	case n.MaxTopicLen <= 0 || n.MaxTopicLen > contract.MaxTopicLen:
		return nil, fmt.Errorf("--max-topic-length must be 1 to %d", contract.MaxTopicLen)
	case n.MaxQueueBytes < c.history.maxEvent:
		return nil, fmt.Errorf("--max-queue-bytes (%d) must hold at least one largest event (--max-event-bytes %d)", n.MaxQueueBytes, c.history.maxEvent)
	case n.MaxPublishBytes <= 0:
		return nil, errors.New("--max-publish-bytes must be positive")
	case n.UnsubscribeGrace < 0 || n.DrainPeriod < 0 || n.MaxConnectionAge < 0:
		return nil, errors.New("--unsubscribe-grace, --drain-period and --max-connection-age must not be negative")
	case (c.tlsCert == "") != (c.tlsKey == ""):
		return nil, errors.New("--tls-cert and --tls-key go together")
	case c.tlsCert != "" && n.H2C:
		return nil, errors.New("--h2c is for plain-text listeners; with TLS, HTTP/2 is on already")
	case n.BodyTimeout <= 0:
		return nil, errors.New("--body-timeout must be positive")
	case n.MinBodyRate < 0:
		return nil, errors.New("--min-body-rate must not be negative")
	case n.MaxConnections < 0:
		return nil, errors.New("--max-connections must not be negative")
	case n.MaxStreamsPerClient < 0:
		return nil, errors.New("--max-streams-per-client must not be negative")
	case n.SendBuffer < 0:
		return nil, errors.New("--send-buffer must not be negative")
	case n.MaxStreamsPerConnection <= 0:
		return nil, errors.New("--http2-max-streams must be positive")
	case n.DrainPeriod >= n.ShutdownTimeout:
		return nil, fmt.Errorf("--drain-period (%v) must be shorter than --shutdown-timeout (%v)", n.DrainPeriod, n.ShutdownTimeout)
	}
	// 0 turns these off; in gateway.Config 0 takes the default.
	if n.MaxStreamsPerClient == 0 {
		n.MaxStreamsPerClient = -1
	}
	if n.MinBodyRate == 0 {
		n.MinBodyRate = -1
	}
	return c, nil
}

// parsePrefixes reads networks: CIDRs (10.0.0.0/8, fd00::/8) or single
// addresses (a /32 or /128).
func parsePrefixes(ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ss {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a network (10.0.0.0/8) nor an address", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap().WithZone(""), a.Unmap().BitLen()))
	}
	return out, nil
}

// secretFlag reports whether a flag's value is a secret, never to be shown.
func secretFlag(name string) bool {
	switch name {
	case "jwt-secret", "redis-password":
		return true
	}
	return false
}

// redacted stands for a secret in what the node shows.
const redacted = "REDACTED"

// redactArgs is the command line with its secrets replaced: the values of
// secret flags, and in any value that is a URL, its user information and
// the values of query parameters named like a password.
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case !strings.HasPrefix(a, "-") || a == "--":
			out[i] = redactURL(a)
		case secretFlag(name) && hasValue:
			out[i] = a[:len(a)-len(value)] + redacted
		case secretFlag(name):
			out[i] = a
			if i+1 < len(args) {
				i++
				out[i] = redacted
			}
		case hasValue:
			out[i] = a[:len(a)-len(value)] + redactURL(value)
		default:
			out[i] = a
		}
	}
	return out
}

// redactURL hides the credentials of v if it is a URL: everything between
// the scheme and the last @, and the values of parameters whose name
// contains "password" (redis-sentinel://…?sentinel_password=…).
func redactURL(v string) string {
	scheme, rest, ok := strings.Cut(v, "://")
	if !ok {
		return v
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		rest = redacted + rest[at:]
	}
	if base, query, ok := strings.Cut(rest, "?"); ok {
		params := strings.Split(query, "&")
		for i, p := range params {
			if k, _, ok := strings.Cut(p, "="); ok && strings.Contains(strings.ToLower(k), "password") {
				params[i] = k + "=" + redacted
			}
		}
		rest = base + "?" + strings.Join(params, "&")
	}
	return scheme + "://" + rest
}

// envName is the environment variable behind a flag: GATEWAY_ + the flag
// name in upper case with - as _.
func envName(flagName string) string {
	return "GATEWAY_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// namedEnv is getenv answering only for the variables that fs's flags name
// in their help, each its own ("[GATEWAY_X]", or "[GATEWAY_X, or …]"): given
// to parseFlags, a flag whose help names no variable reads none.
func namedEnv(fs *flag.FlagSet, getenv func(string) string) func(string) string {
	named := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		if n := envName(f.Name); strings.Contains(f.Usage, "["+n+"]") || strings.Contains(f.Usage, "["+n+",") {
			named[n] = true
		}
	})
	return func(name string) string {
		if !named[name] {
			return ""
		}
		return getenv(name)
	}
}

// parseFlags parses args, then fills every flag not given on the command
// line from its environment variable.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		name := envName(f.Name)
		if v := getenv(name); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, e)
			}
		}
	})
	return err
}

// hmacSecrets are the HMAC secrets of the flags, in order: --jwt-secret,
// then each non-blank line of --jwt-secret-file (surrounding white space
// trimmed). Their length is checked by auth.NewJWTVerifier.
func (a authFlags) hmacSecrets() ([][]byte, error) {
	var out [][]byte
	if a.secret != "" {
		out = append(out, []byte(a.secret))
	}
	if a.secretFile != "" {
		b, err := os.ReadFile(a.secretFile)
		if err != nil {
			return nil, fmt.Errorf("--jwt-secret-file: %w", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				out = append(out, []byte(line))
			}
		}
	}
	return out, nil
}

// verifier builds the token verifier from the flags, reading key files.
// Its JWKS refresh, if any, lives as long as ctx.
func (a authFlags) verifier(ctx context.Context, log zerolog.Logger) (*auth.JWTVerifier, error) {
	cfg := auth.JWTConfig{Issuer: a.issuer, Audience: a.audience, Logger: log, JWKSURLs: list(a.jwksURLs)}
	var err error
	if cfg.HMACSecrets, err = a.hmacSecrets(); err != nil {
		return nil, err
	}
	for _, f := range list(a.publicKeys) {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--jwt-public-key: %w", err)
		}
		cfg.PublicKeysPEM = append(cfg.PublicKeysPEM, b)
	}
	if a.jwksFile != "" {
		b, err := os.ReadFile(a.jwksFile)
		if err != nil {
			return nil, fmt.Errorf("--jwks-file: %w", err)
		}
		cfg.JWKS = b
	}
	return auth.NewJWTVerifier(ctx, cfg)
}
