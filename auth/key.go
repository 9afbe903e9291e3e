package auth

import (
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// KeyConfig configures a [KeyVerifier]: one key and the one algorithm it
// verifies, the way a Mercure hub's publisher or subscriber key is
// configured.
type KeyConfig struct {
	// Alg is the algorithm: HS256, HS384 or HS512 (Key is the secret),
	// RS256/384/512 or PS256/384/512 (Key is an RSA public key in PEM),
	// ES256/384/512 (an ECDSA public key in PEM), or EdDSA (an Ed25519
	// public key in PEM). PEM keys may be PKIX public keys, PKCS #1 RSA
	// public keys or certificates.
	Alg string
	Key []byte
	// MinHMACBytes is the shortest secret accepted for HS*: 0 means the
	// package's [MinHMACBytes] (32), negative means any non-empty secret
	// (Mercure accepts any).
	MinHMACBytes int
	// Leeway tolerates clock skew on exp and nbf; 0 means none, as
	// Mercure.
	Leeway time.Duration
}

// KeyVerifier verifies tokens signed with one key and one algorithm, and
// decodes their claims. A token is valid when its header names exactly the
// configured algorithm, its signature verifies with the key, and its exp
// and nbf (when present) hold; iat is not checked. It is safe for
// concurrent use and starts nothing.
type KeyVerifier struct {
	key    any
	parser *jwt.Parser
}

// NewKeyVerifier checks cfg and loads its key.
func NewKeyVerifier(cfg KeyConfig) (*KeyVerifier, error) {
	m := jwt.GetSigningMethod(cfg.Alg)
	if m == nil || cfg.Alg == "none" {
		return nil, fmt.Errorf("auth: unsupported algorithm %q (use HS256/384/512, RS256/384/512, PS256/384/512, ES256/384/512 or EdDSA)", cfg.Alg)
	}
	if len(cfg.Key) == 0 {
		return nil, fmt.Errorf("auth: no key for %s", cfg.Alg)
	}
	v := &KeyVerifier{}
	var err error
	switch m.(type) {
	case *jwt.SigningMethodHMAC:
		minLen := cfg.MinHMACBytes
		if minLen == 0 {
			minLen = MinHMACBytes
		}
		if len(cfg.Key) < minLen {
			return nil, fmt.Errorf("auth: %s secret is %d bytes; use at least %d random bytes", cfg.Alg, len(cfg.Key), minLen)
		}
		v.key = cfg.Key
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
		v.key, err = jwt.ParseRSAPublicKeyFromPEM(cfg.Key)
	case *jwt.SigningMethodECDSA:
		var k *ecdsa.PublicKey
		if k, err = jwt.ParseECPublicKeyFromPEM(cfg.Key); err == nil {
			// The curve must be the algorithm's: ES384 with a P-256 key
			// would verify nothing.
			if bits := m.(*jwt.SigningMethodECDSA).CurveBits; k.Curve.Params().BitSize != bits {
				err = fmt.Errorf("the key's curve is %s, %s needs a %d-bit curve", k.Curve.Params().Name, cfg.Alg, bits)
			}
			v.key = k
		}
	case *jwt.SigningMethodEd25519:
		v.key, err = jwt.ParseEdPublicKeyFromPEM(cfg.Key)
	default:
		return nil, fmt.Errorf("auth: unsupported algorithm %q", cfg.Alg)
	}
	if err != nil {
		return nil, fmt.Errorf("auth: %s key: %w", cfg.Alg, err)
	}
	v.parser = jwt.NewParser(jwt.WithValidMethods([]string{cfg.Alg}), jwt.WithLeeway(cfg.Leeway))
	return v, nil
}

// Token is what a verified token says about itself.
type Token struct {
	Subject string
	// Expires is when the token stops being valid; zero if it has no exp.
	Expires time.Time
}

// VerifyClaims verifies token and, when dst is not nil, decodes the token's
// whole claims object into dst as json.Unmarshal does (dst is a pointer to
// the caller's claims struct). Errors match [ErrInvalidToken] and say why
// in words safe to show a client; a claims object that does not decode
// into dst makes the token invalid.
func (v *KeyVerifier) VerifyClaims(token string, dst any) (Token, error) {
	if token == "" {
		return Token{}, fmt.Errorf("%w: no token", ErrInvalidToken)
	}
	var c rawClaims
	if _, err := v.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return v.key, nil }); err != nil {
		return Token{}, fmt.Errorf("%w: %s", ErrInvalidToken, describe(err))
	}
	if dst != nil {
		if err := json.Unmarshal(c.raw, dst); err != nil {
			return Token{}, fmt.Errorf("%w: claims: %s", ErrInvalidToken, jsonProblem(err))
		}
	}
	t := Token{Subject: c.Subject}
	if c.ExpiresAt != nil {
		t.Expires = c.ExpiresAt.Time
	}
	return t, nil
}

// jsonProblem describes a decoding error without quoting the token's
// content back.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%s is a JSON %s, not the expected type", te.Field, te.Value)
	}
	return "not valid JSON"
}

// rawClaims decodes the registered claims, for validation, and keeps the
// claims object's bytes for the caller's own type.
type rawClaims struct {
	jwt.RegisteredClaims
	raw []byte
}

func (c *rawClaims) UnmarshalJSON(b []byte) error {
	c.raw = append(c.raw[:0], b...)
	return json.Unmarshal(b, &c.RegisteredClaims)
}
