package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/ssegateway/ssegateway/auth"
	"github.com/ssegateway/ssegateway/gateway"
	"github.com/ssegateway/ssegateway/mercure"
)

// mercureFlags configure the Mercure endpoint, named as a Mercure user
// knows them (its Caddyfile's publisher_jwt, subscriber_jwt, anonymous,
// subscriptions, cors_origins, publish_origins).
type mercureFlags struct {
	pubKey, pubAlg, subKey, subAlg string
	anonymous, subscriptions       bool
	corsOrigins, publishOrigins    string
	lease                          time.Duration
}

func (m *mercureFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.pubKey, "mercure-publisher-jwt-key", "", "serve the Mercure protocol at /.well-known/mercure: the key verifying publishers' tokens "+
		"(an HMAC secret, or a PEM public key for the asymmetric algorithms) [GATEWAY_MERCURE_PUBLISHER_JWT_KEY, or MERCURE_PUBLISHER_JWT_KEY]")
	fs.StringVar(&m.pubAlg, "mercure-publisher-jwt-alg", "HS256", "its algorithm: HS256/384/512, RS256/384/512, PS256/384/512, ES256/384/512 or EdDSA "+
		"[GATEWAY_MERCURE_PUBLISHER_JWT_ALG, or MERCURE_PUBLISHER_JWT_ALG]")
	fs.StringVar(&m.subKey, "mercure-subscriber-jwt-key", "", "the key verifying Mercure subscribers' tokens; without it only anonymous subscribers "+
		"(--mercure-anonymous) are served [GATEWAY_MERCURE_SUBSCRIBER_JWT_KEY, or MERCURE_SUBSCRIBER_JWT_KEY]")
	fs.StringVar(&m.subAlg, "mercure-subscriber-jwt-alg", "HS256", "its algorithm [GATEWAY_MERCURE_SUBSCRIBER_JWT_ALG, or MERCURE_SUBSCRIBER_JWT_ALG]")
	fs.BoolVar(&m.anonymous, "mercure-anonymous", false, "let Mercure subscribers without a token receive public updates [GATEWAY_MERCURE_ANONYMOUS]")
	fs.BoolVar(&m.subscriptions, "mercure-subscriptions", false, "publish Mercure subscription events and serve the subscriptions API, "+
		"listing every node's subscribers [GATEWAY_MERCURE_SUBSCRIPTIONS]")
	fs.DurationVar(&m.lease, "mercure-subscriptions-lease", mercure.DefaultLease, "how long a node's Mercure subscribers stay listed after "+
		"the node stops renewing them (it died): its subscriptions end then [GATEWAY_MERCURE_SUBSCRIPTIONS_LEASE]")
	fs.StringVar(&m.corsOrigins, "mercure-cors-origins", "", "comma-separated origins allowed to use the Mercure endpoint from a browser, or * "+
		"[GATEWAY_MERCURE_CORS_ORIGINS]")
	fs.StringVar(&m.publishOrigins, "mercure-publish-origins", "", "comma-separated origins allowed to publish with the mercureAuthorization cookie, or * "+
		"[GATEWAY_MERCURE_PUBLISH_ORIGINS]")
}

// fromMercureEnv fills the keys and algorithms from Mercure's own
// environment variables when neither the flag nor GATEWAY_* set them.
func (m *mercureFlags) fromMercureEnv(fs *flag.FlagSet, getenv func(string) string) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for flagName, env := range map[string]string{
		"mercure-publisher-jwt-key":  "MERCURE_PUBLISHER_JWT_KEY",
		"mercure-publisher-jwt-alg":  "MERCURE_PUBLISHER_JWT_ALG",
		"mercure-subscriber-jwt-key": "MERCURE_SUBSCRIBER_JWT_KEY",
		"mercure-subscriber-jwt-alg": "MERCURE_SUBSCRIBER_JWT_ALG",
	} {
		if set[flagName] || getenv(envName(flagName)) != "" {
			continue
		}
		if v := getenv(env); v != "" {
			_ = fs.Set(flagName, v)
		}
	}
}

func (m mercureFlags) configured() bool { return m.pubKey != "" }

// verifier builds a key verifier. Mercure accepts HMAC secrets of any
// length: so do we, warning below 32 bytes.
func mercureVerifier(what, alg, key string, log zerolog.Logger) (*auth.KeyVerifier, error) {
	v, err := auth.NewKeyVerifier(auth.KeyConfig{Alg: alg, Key: []byte(key), MinHMACBytes: -1})
	if err != nil {
		return nil, fmt.Errorf("--mercure-%s-jwt-key: %w", what, err)
	}
	if len(alg) == 5 && alg[:2] == "HS" && len(key) < 32 {
		log.Warn().Str("key", what).Int("bytes", len(key)).Msg("the Mercure HMAC key is shorter than 32 bytes; use a longer random secret")
	}
	return v, nil
}

// config builds the endpoint's configuration. The registry of active
// subscribers, when subscriptions are on, lives in rdb under prefix;
// onExpired receives the subscribers of dead nodes this node reaps.
func (m mercureFlags) config(ctx context.Context, rdb redis.Cmdable, prefix string, log zerolog.Logger,
	onExpired func([]mercure.RegisteredSubscriber)) (*gateway.MercureConfig, error) {
	cfg := &gateway.MercureConfig{Anonymous: m.anonymous, Subscriptions: m.subscriptions,
		CORSOrigins: list(m.corsOrigins), PublishOrigins: list(m.publishOrigins)}
	var err error
	if cfg.Publisher, err = mercureVerifier("publisher", m.pubAlg, m.pubKey, log); err != nil {
		return nil, err
	}
	if m.subKey != "" {
		if cfg.Subscriber, err = mercureVerifier("subscriber", m.subAlg, m.subKey, log); err != nil {
			return nil, err
		}
	}
	if m.subscriptions {
		host, _ := os.Hostname()
		node := fmt.Sprintf("%.40s-%s", sanitizeNode(host), rand.Text()[:10])
		cfg.Registry, err = mercure.NewRegistry(rdb, mercure.RegistryConfig{Prefix: prefix, Node: node, Lease: m.lease, OnExpired: onExpired,
			OnError: func(err error) {
				if ctx.Err() == nil {
					log.Warn().Err(err).Msg("mercure subscriptions registry")
				}
			}})
		if err != nil {
			return nil, fmt.Errorf("mercure subscriptions: %w", err)
		}
	}
	return cfg, nil
}

// sanitizeNode keeps the characters a registry node id may have.
func sanitizeNode(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '-'
		}
	}
	if len(b) == 0 {
		return "node"
	}
	return string(b)
}
