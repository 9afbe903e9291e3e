package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"
)

// Grant is what a verified token allows.
type Grant struct {
	Subject   string
	Subscribe Patterns
	Publish   Patterns
	// Expires is when the token stops being valid; zero if it has no exp.
	Expires time.Time
}

// ErrInvalidToken is matched (errors.Is) by every error about a token that
// is missing, malformed, badly signed, expired or not meant for us.
var ErrInvalidToken = errors.New("auth: invalid token")

// Verifier checks tokens. Implementations are safe for concurrent use.
type Verifier interface {
	// Verify returns the grant of a valid token, or an error matching
	// ErrInvalidToken that says why it is not valid.
	Verify(ctx context.Context, token string) (*Grant, error)
}

// MinHMACBytes is the shortest HMAC secret a [JWTVerifier] accepts, and the
// default floor of a [KeyVerifier]'s.
const MinHMACBytes = 32

// JWTConfig configures a [JWTVerifier]. At least one source of keys is
// required. Each key only ever verifies the algorithms of its own kind, so
// "none" and HS/RS confusion (an HS256 token "signed" with an RSA public key)
// are refused.
type JWTConfig struct {
	// HMACSecrets verify HS256, HS384 and HS512. Several may be given so a
	// secret can be rotated: a token signed with any of them is accepted.
	// Each must be at least [MinHMACBytes] long.
	HMACSecrets [][]byte
	// PublicKeysPEM are PEM public keys (or certificates): RSA keys verify
	// RS* and PS*, ECDSA keys ES256/384/512 by curve, Ed25519 keys EdDSA.
	PublicKeysPEM [][]byte
	// JWKSURLs are JSON Web Key Sets fetched over HTTP(S), cached and
	// refreshed hourly and when a token names an unknown kid (rate limited).
	JWKSURLs []string
	// JWKS is a JSON Web Key Set given inline (from a file). Symmetric (oct)
	// keys in key sets are ignored: HMAC secrets are configured explicitly.
	JWKS []byte
	// Issuer and Audience, when set, must match the token's iss and aud.
	Issuer, Audience string
	// Leeway tolerates clock skew on exp, nbf and iat; default 5s.
	Leeway time.Duration
	Logger zerolog.Logger
}

// JWTVerifier verifies JWTs; see [JWTConfig].
type JWTVerifier struct {
	cfg     JWTConfig
	hmac    []jwt.VerificationKey
	rsa     []jwt.VerificationKey
	ecdsa   map[string][]jwt.VerificationKey // by alg
	ed25519 []jwt.VerificationKey
	sets    []keyfunc.Keyfunc
	algs    []string
	parser  *jwt.Parser
}

var _ Verifier = (*JWTVerifier)(nil)

// NewJWTVerifier checks cfg and loads its keys. When JWKS URLs are given it
// fetches them and keeps refreshing them until ctx ends (keyfunc's refresh
// goroutine is bound to ctx); it starts nothing otherwise.
func NewJWTVerifier(ctx context.Context, cfg JWTConfig) (*JWTVerifier, error) {
	if cfg.Leeway == 0 {
		cfg.Leeway = 5 * time.Second
	}
	v := &JWTVerifier{cfg: cfg, ecdsa: map[string][]jwt.VerificationKey{}}
	for i, s := range cfg.HMACSecrets {
		if len(s) < MinHMACBytes {
			return nil, fmt.Errorf("auth: HMAC secret %d is %d bytes; use at least %d random bytes", i+1, len(s), MinHMACBytes)
		}
		v.hmac = append(v.hmac, s)
	}
	if len(v.hmac) > 0 {
		v.algs = append(v.algs, "HS256", "HS384", "HS512")
	}
	for i, p := range cfg.PublicKeysPEM {
		if err := v.addPEM(p); err != nil {
			return nil, fmt.Errorf("auth: public key %d: %w", i+1, err)
		}
	}
	if len(cfg.JWKS) > 0 {
		kf, err := keyfunc.NewJWKSetJSON(json.RawMessage(cfg.JWKS))
		if err != nil {
			return nil, fmt.Errorf("auth: JWKS: %w", err)
		}
		v.sets = append(v.sets, kf)
	}
	if len(cfg.JWKSURLs) > 0 {
		log := cfg.Logger
		kf, err := keyfunc.NewDefaultOverrideCtx(ctx, cfg.JWKSURLs, keyfunc.Override{
			RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
				return func(_ context.Context, err error) {
					log.Warn().Err(err).Str("url", u).Msg("refreshing a JWKS failed; keeping the keys we have")
				}
			},
		})
		if err != nil {
			return nil, fmt.Errorf("auth: JWKS URLs: %w", err)
		}
		v.sets = append(v.sets, kf)
	}
	if len(v.sets) > 0 {
		v.algs = append(v.algs, "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
	}
	v.algs = slices.Compact(sortedAlgs(v.algs))
	if len(v.algs) == 0 {
		return nil, errors.New("auth: no keys configured (HMAC secrets, public keys or a JWKS)")
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(v.algs), jwt.WithLeeway(cfg.Leeway), jwt.WithIssuedAt()}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

func sortedAlgs(a []string) []string { slices.Sort(a); return a }

func (v *JWTVerifier) addPEM(data []byte) error {
	block, _ := pem.Decode(data)
	if block == nil {
		return errors.New("no PEM block found")
	}
	var key crypto.PublicKey
	var err error
	switch block.Type {
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	}
	if err != nil {
		return err
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		v.rsa = append(v.rsa, k)
		v.algs = append(v.algs, "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
	case *ecdsa.PublicKey:
		alg := map[elliptic.Curve]string{elliptic.P256(): "ES256", elliptic.P384(): "ES384", elliptic.P521(): "ES512"}[k.Curve]
		if alg == "" {
			return errors.New("unsupported elliptic curve")
		}
		v.ecdsa[alg] = append(v.ecdsa[alg], k)
		v.algs = append(v.algs, alg)
	case ed25519.PublicKey:
		v.ed25519 = append(v.ed25519, k)
		v.algs = append(v.algs, "EdDSA")
	default:
		return fmt.Errorf("unsupported key type %T", key)
	}
	return nil
}

// SSEClaim is the "sse" claim of a token: the topic patterns (see
// [Pattern]) it grants.
type SSEClaim struct {
	Subscribe []string `json:"subscribe,omitempty"`
	Publish   []string `json:"publish,omitempty"`
}

// verifiedClaims is the token body the gateway reads.
type verifiedClaims struct {
	jwt.RegisteredClaims
	SSE SSEClaim `json:"sse"`
}

// keys returns the candidate keys for the token's algorithm: only keys of
// that algorithm's own kind.
func (v *JWTVerifier) keys(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		alg := t.Method.Alg()
		var set jwt.VerificationKeySet
		switch {
		case strings.HasPrefix(alg, "HS"):
			set.Keys = v.hmac
		case strings.HasPrefix(alg, "RS"), strings.HasPrefix(alg, "PS"):
			set.Keys = slices.Clone(v.rsa)
		case strings.HasPrefix(alg, "ES"):
			set.Keys = slices.Clone(v.ecdsa[alg])
		case alg == "EdDSA":
			set.Keys = slices.Clone(v.ed25519)
		}
		if !strings.HasPrefix(alg, "HS") {
			for _, kf := range v.sets {
				k, err := kf.KeyfuncCtx(ctx)(t)
				if err != nil {
					continue
				}
				if ks, ok := k.(jwt.VerificationKeySet); ok {
					for _, key := range ks.Keys {
						if _, sym := key.([]byte); !sym {
							set.Keys = append(set.Keys, key)
						}
					}
				} else if _, sym := k.([]byte); !sym {
					set.Keys = append(set.Keys, k)
				}
			}
		}
		if len(set.Keys) == 0 {
			return nil, fmt.Errorf("no key for %s", alg)
		}
		return set, nil
	}
}

// Verify implements [Verifier].
func (v *JWTVerifier) Verify(ctx context.Context, token string) (*Grant, error) {
	if token == "" {
		return nil, fmt.Errorf("%w: no token", ErrInvalidToken)
	}
	var c verifiedClaims
	if _, err := v.parser.ParseWithClaims(token, &c, v.keys(ctx)); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidToken, describe(err))
	}
	g := &Grant{Subject: c.Subject}
	var err error
	if g.Subscribe, err = ParsePatterns(c.SSE.Subscribe); err != nil {
		return nil, fmt.Errorf("%w: sse.subscribe: %v", ErrInvalidToken, err)
	}
	if g.Publish, err = ParsePatterns(c.SSE.Publish); err != nil {
		return nil, fmt.Errorf("%w: sse.publish: %v", ErrInvalidToken, err)
	}
	if c.ExpiresAt != nil {
		g.Expires = c.ExpiresAt.Time
	}
	return g, nil
}

// describe turns a jwt error into a short reason safe to show a client.
func describe(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "signature not valid for any configured key"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token not valid yet"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "a required claim (issuer or audience) is missing"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	}
	return "token not valid"
}
