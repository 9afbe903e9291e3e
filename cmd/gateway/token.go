package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/ssegateway/ssegateway/auth"
	"github.com/ssegateway/ssegateway/mercure"
)

// runToken is `gateway token`: it mints a JWT for development, signed with
// the key a node is configured with, so that the secured examples of the
// docs can be followed by hand. It prints the token alone on stdout.
func runToken(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gateway token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: gateway token [--sub S] [--subscribe P]... [--publish P]... [--ttl D] [--mercure] [--private-key FILE]

Mints a JWT for development and prints it, alone, on standard output:

  TOKEN=$(gateway token --subscribe 'orders/*')
  curl -N -H "Authorization: Bearer $TOKEN" 'http://localhost:8080/events?topic=orders/*'

--subscribe and --publish take one topic pattern each; repeat them for more.
The token carries them in its "sse" claim, with sub from --sub, iss and aud
from --jwt-issuer and --jwt-audience, iat now and exp --ttl from now.

It is signed as a node verifies: with the HMAC secret of --jwt-secret, else
the first secret of --jwt-secret-file (HS256), taken from the same flags and
environment variables as the node's, and refused where the node refuses it
(shorter than 32 bytes); or, instead, with the private key of --private-key,
whose public key the node has in --jwt-public-key (RSA: RS256; ECDSA: ES256,
ES384 or ES512 by curve; Ed25519: EdDSA).

With --mercure the token carries the Mercure claim instead, {"mercure":
{"publish": [...], "subscribe": [...]}} (selectors, * for all), for the
node's /.well-known/mercure. It is signed with the hub's publisher key when
--publish is given, else with its subscriber key, in the algorithm the hub
verifies that key with (--mercure-publisher-jwt-alg or
--mercure-subscriber-jwt-alg): for HS256/384/512 the key is the HMAC secret
of --mercure-publisher-jwt-key or --mercure-subscriber-jwt-key (or Mercure's
own variables); for the others the hub holds a public key, so give the
private key with --private-key.

Only the environment variables named below are read.

Flags:
`)
		fs.PrintDefaults()
	}
	var (
		sub, privateKey    string
		subscribe, publish repeatedFlag
		ttl                time.Duration
		forMercure         bool
		a                  authFlags
		m                  mercureFlags
	)
	fs.StringVar(&sub, "sub", "", "the token's subject (sub): per-client limits count per subject; empty leaves it out")
	fs.Var(&subscribe, "subscribe", "a topic `pattern` (with --mercure, a selector) the token may subscribe to; one per flag, repeat it for more")
	fs.Var(&publish, "publish", "a topic `pattern` (with --mercure, a selector) the token may publish to; one per flag, repeat it for more")
	fs.DurationVar(&ttl, "ttl", time.Hour, "how long the token is valid (exp); 0 gives it no exp")
	fs.BoolVar(&forMercure, "mercure", false, "write the Mercure claim (mercure.publish, mercure.subscribe) instead of sse, signed with the Mercure publisher or subscriber key")
	fs.StringVar(&privateKey, "private-key", "", "PEM private key `file` to sign with instead of an HMAC secret: RSA (RS256), ECDSA (ES256/384/512 by curve) or Ed25519 (EdDSA); "+
		"with --mercure, in the hub's algorithm")
	fs.StringVar(&a.secret, "jwt-secret", "", "HMAC secret to sign with (HS256), as the node's --jwt-secret; at least 32 bytes [GATEWAY_JWT_SECRET]")
	fs.StringVar(&a.secretFile, "jwt-secret-file", "", "file of HMAC secrets, one per line, as the node's --jwt-secret-file: signs with the first [GATEWAY_JWT_SECRET_FILE]")
	fs.StringVar(&a.issuer, "jwt-issuer", "", "the token's iss, as the node's --jwt-issuer requires [GATEWAY_JWT_ISSUER]")
	fs.StringVar(&a.audience, "jwt-audience", "", "the token's aud, as the node's --jwt-audience requires [GATEWAY_JWT_AUDIENCE]")
	fs.StringVar(&m.pubKey, "mercure-publisher-jwt-key", "", "with --mercure and --publish: the hub's publisher key, an HMAC secret to sign with "+
		"[GATEWAY_MERCURE_PUBLISHER_JWT_KEY, or MERCURE_PUBLISHER_JWT_KEY]")
	fs.StringVar(&m.pubAlg, "mercure-publisher-jwt-alg", "HS256", "the algorithm the hub verifies publishers' tokens with "+
		"[GATEWAY_MERCURE_PUBLISHER_JWT_ALG, or MERCURE_PUBLISHER_JWT_ALG]")
	fs.StringVar(&m.subKey, "mercure-subscriber-jwt-key", "", "with --mercure and no --publish: the hub's subscriber key, an HMAC secret to sign with "+
		"[GATEWAY_MERCURE_SUBSCRIBER_JWT_KEY, or MERCURE_SUBSCRIBER_JWT_KEY]")
	fs.StringVar(&m.subAlg, "mercure-subscriber-jwt-alg", "HS256", "the algorithm the hub verifies subscribers' tokens with "+
		"[GATEWAY_MERCURE_SUBSCRIBER_JWT_ALG, or MERCURE_SUBSCRIBER_JWT_ALG]")
	if err := parseFlags(fs, args, namedEnv(fs, getenv)); err != nil {
		return err
	}
	m.fromMercureEnv(fs, getenv)
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "gateway token: unexpected argument %q (see gateway token -h)\n", fs.Arg(0))
		return errUsage
	case len(subscribe) == 0 && len(publish) == 0:
		fmt.Fprintln(stderr, "gateway token: a token must grant something: give --subscribe or --publish, or both (see gateway token -h)")
		return errUsage
	case ttl < 0 || ttl > 0 && ttl < time.Second:
		return fmt.Errorf("--ttl %v: use 0 (no exp) or at least 1s", ttl)
	}
	log, err := newLogger("warn", "auto", stderr)
	if err != nil {
		return err
	}

	now := time.Now()
	c := auth.Claims{Subject: sub, Issuer: a.issuer, Audience: a.audience, IssuedAt: now.Unix()}
	if ttl > 0 {
		c.Expires = now.Add(ttl).Unix()
	}
	var s *auth.Signer
	var claims any
	if forMercure {
		if s, err = mercureSigner(m, privateKey, len(publish) > 0, log); err != nil {
			return err
		}
		if len(publish) > 0 && len(subscribe) > 0 && (m.subKey != m.pubKey || m.subAlg != m.pubAlg) {
			log.Warn().Msg("signed with the Mercure publisher key; the hub verifies subscribers with another key (--mercure-subscriber-jwt-key), " +
				"so this token cannot subscribe: mint a second one without --publish")
		}
		claims = struct {
			auth.Claims
			Mercure mercure.Claim `json:"mercure"`
		}{c, mercure.Claim{Publish: publish, Subscribe: subscribe}}
	} else {
		for _, f := range []struct {
			name     string
			patterns []string
		}{{"--subscribe", subscribe}, {"--publish", publish}} {
			if _, err := auth.ParsePatterns(f.patterns); err != nil {
				return fmt.Errorf("%s: %w", f.name, err)
			}
		}
		if s, err = gatewaySigner(ctx, a, privateKey); err != nil {
			return err
		}
		c.SSE = &auth.SSEClaim{Subscribe: subscribe, Publish: publish}
		claims = c
	}
	tok, err := s.Sign(claims)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

// gatewaySigner signs tokens for the gateway's own endpoints: with the
// private key file if one is given, else with the first HMAC secret of the
// flags, once the node's own check has accepted them all.
func gatewaySigner(ctx context.Context, a authFlags, privateKey string) (*auth.Signer, error) {
	if privateKey != "" {
		return privateKeySigner(privateKey, "", "")
	}
	secrets, err := a.hmacSecrets()
	if err != nil {
		return nil, err
	}
	if len(secrets) == 0 {
		return nil, errors.New("no key to sign with: set the node's HMAC secret with --jwt-secret [GATEWAY_JWT_SECRET] or --jwt-secret-file [GATEWAY_JWT_SECRET_FILE], " +
			"or give a private key with --private-key FILE")
	}
	if _, err := a.verifier(ctx, zerolog.Nop()); err != nil {
		return nil, fmt.Errorf("refusing a key the node would refuse: %w", err)
	}
	s, err := auth.NewSigner(auth.SignerConfig{HMACSecret: secrets[0]})
	if err != nil {
		return nil, fmt.Errorf("--jwt-secret: %w", err)
	}
	return s, nil
}

// mercureSigner signs tokens for the Mercure endpoint with the publisher
// key, or the subscriber key, in the algorithm the hub verifies it with:
// the HMAC secret of the key flag, or the private key file for the
// asymmetric algorithms.
func mercureSigner(m mercureFlags, privateKey string, publisher bool, log zerolog.Logger) (*auth.Signer, error) {
	role, key, alg := "subscriber", m.subKey, m.subAlg
	if publisher {
		role, key, alg = "publisher", m.pubKey, m.pubAlg
	}
	flagName := "mercure-" + role + "-jwt-key"
	if privateKey != "" {
		return privateKeySigner(privateKey, alg, fmt.Sprintf("the hub verifies %ss' tokens with %s (--mercure-%s-jwt-alg)", role, alg, role))
	}
	switch alg {
	case "HS256", "HS384", "HS512":
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA":
		return nil, fmt.Errorf("the hub verifies %ss' tokens with %s (--mercure-%s-jwt-alg), so --%s is a public key: sign with the private key, --private-key FILE",
			role, alg, role, flagName)
	default:
		return nil, fmt.Errorf("--mercure-%s-jwt-alg %q: use HS256/384/512, RS256/384/512, PS256/384/512, ES256/384/512 or EdDSA, as on the node", role, alg)
	}
	if key == "" {
		return nil, fmt.Errorf("no Mercure %s key to sign with: set the node's --%s [%s, or %s], or give a private key with --private-key FILE",
			role, flagName, envName(flagName), strings.TrimPrefix(envName(flagName), "GATEWAY_"))
	}
	// The node's own check: any length, with a warning below 32 bytes.
	if _, err := mercureVerifier(role, alg, key, log); err != nil {
		return nil, err
	}
	s, err := auth.NewSigner(auth.SignerConfig{HMACSecret: []byte(key), Alg: alg, MinHMACBytes: -1})
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flagName, err)
	}
	return s, nil
}

// privateKeySigner signs with the PEM private key in file, in alg (empty:
// the key's own); why, if not empty, says where alg comes from.
func privateKeySigner(file, alg, why string) (*auth.Signer, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--private-key: %w", err)
	}
	s, err := auth.NewSigner(auth.SignerConfig{PrivateKeyPEM: b, Alg: alg})
	if err != nil && why != "" {
		return nil, fmt.Errorf("--private-key %s: %w; %s", file, err, why)
	}
	if err != nil {
		return nil, fmt.Errorf("--private-key %s: %w", file, err)
	}
	return s, nil
}

// repeatedFlag collects the values of a flag given several times, one
// value each.
type repeatedFlag []string

func (r *repeatedFlag) String() string { return strings.Join(*r, " ") }

func (r *repeatedFlag) Set(v string) error {
	if v == "" {
		return errors.New("empty")
	}
	*r = append(*r, v)
	return nil
}
