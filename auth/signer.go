package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// Claims is a token body in the gateway's shape, for [Signer.Sign]: the
// registered claims a [JWTVerifier] checks and the "sse" claim it reads.
// Empty fields are left out. To carry another protocol's claim instead of
// "sse" (Mercure's "mercure"), embed Claims in a struct of your own with
// SSE nil.
type Claims struct {
	Subject  string `json:"sub,omitempty"`
	Issuer   string `json:"iss,omitempty"`
	Audience string `json:"aud,omitempty"`
	// IssuedAt and Expires are Unix times in seconds (iat and exp); 0
	// leaves the claim out, and a token without exp never expires.
	IssuedAt int64     `json:"iat,omitempty"`
	Expires  int64     `json:"exp,omitempty"`
	SSE      *SSEClaim `json:"sse,omitempty"`
}

// SignerConfig configures a [Signer]: an HMAC secret or a private key, one
// of the two.
type SignerConfig struct {
	// HMACSecret signs HS256 (or HS384, HS512 as Alg says).
	HMACSecret []byte
	// PrivateKeyPEM is a PEM private key: PKCS #8 ("PRIVATE KEY"), PKCS #1
	// ("RSA PRIVATE KEY") or SEC 1 ("EC PRIVATE KEY", after an optional "EC
	// PARAMETERS" block, as openssl writes it). Unencrypted.
	PrivateKeyPEM []byte
	// Alg is the algorithm. Empty picks the key's own: HS256 for a secret,
	// RS256 for an RSA key, ES256/384/512 by an ECDSA key's curve (P-256,
	// P-384, P-521), EdDSA for an Ed25519 key. When set it must suit the
	// key: HS* a secret, RS* or PS* an RSA key, ES* an ECDSA key on that
	// algorithm's curve, EdDSA an Ed25519 key.
	Alg string
	// MinHMACBytes is the shortest secret accepted: 0 means
	// [MinHMACBytes] (what a JWTVerifier accepts), negative any non-empty
	// secret (a Mercure hub accepts any).
	MinHMACBytes int
}

// Signer signs tokens with one key and one algorithm, for tests and
// development tools: a [JWTVerifier] or a [KeyVerifier] configured with
// the matching key verifies them. It is safe for concurrent use and starts
// nothing.
type Signer struct {
	method jwt.SigningMethod
	key    any
}

// NewSigner checks cfg and loads its key. Errors say what is wrong with the
// key without showing it.
func NewSigner(cfg SignerConfig) (*Signer, error) {
	switch {
	case len(cfg.HMACSecret) > 0 && len(cfg.PrivateKeyPEM) > 0:
		return nil, errors.New("auth: sign with an HMAC secret or a private key, not both")
	case len(cfg.HMACSecret) > 0:
		return hmacSigner(cfg)
	case len(cfg.PrivateKeyPEM) > 0:
		return keySigner(cfg)
	}
	return nil, errors.New("auth: no signing key (an HMAC secret or a private key)")
}

func hmacSigner(cfg SignerConfig) (*Signer, error) {
	alg := cfg.Alg
	if alg == "" {
		alg = "HS256"
	}
	m, ok := jwt.GetSigningMethod(alg).(*jwt.SigningMethodHMAC)
	if !ok {
		return nil, fmt.Errorf("auth: %s does not sign with an HMAC secret (HS256, HS384 or HS512 do)", describeAlg(alg))
	}
	minLen := cfg.MinHMACBytes
	if minLen == 0 {
		minLen = MinHMACBytes
	}
	if len(cfg.HMACSecret) < minLen {
		return nil, fmt.Errorf("auth: HMAC secret is %d bytes; use at least %d random bytes", len(cfg.HMACSecret), minLen)
	}
	return &Signer{method: m, key: cfg.HMACSecret}, nil
}

func keySigner(cfg SignerConfig) (*Signer, error) {
	key, err := parsePrivateKey(cfg.PrivateKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("auth: private key: %w", err)
	}
	// own is the key's own algorithm, suits all it signs, kind what it is.
	var own, suits, kind string
	switch k := key.(type) {
	case *rsa.PrivateKey:
		own, suits, kind = "RS256", "RS256/384/512 or PS256/384/512", "an RSA key"
	case *ecdsa.PrivateKey:
		own = map[elliptic.Curve]string{elliptic.P256(): "ES256", elliptic.P384(): "ES384", elliptic.P521(): "ES512"}[k.Curve]
		if own == "" {
			return nil, fmt.Errorf("auth: private key: unsupported elliptic curve %s (use P-256, P-384 or P-521)", k.Curve.Params().Name)
		}
		suits, kind = own, "an ECDSA "+k.Curve.Params().Name+" key"
	case ed25519.PrivateKey:
		own, suits, kind = "EdDSA", "EdDSA", "an Ed25519 key"
	default:
		return nil, fmt.Errorf("auth: private key: unsupported key type %T", key)
	}
	alg := cfg.Alg
	if alg == "" {
		alg = own
	}
	m := jwt.GetSigningMethod(alg)
	fits := false
	switch m.(type) {
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
		_, fits = key.(*rsa.PrivateKey)
	case *jwt.SigningMethodECDSA:
		fits = alg == own
	case *jwt.SigningMethodEd25519:
		_, fits = key.(ed25519.PrivateKey)
	}
	if !fits {
		return nil, fmt.Errorf("auth: the private key is %s, which signs %s, not %s", kind, suits, describeAlg(alg))
	}
	return &Signer{method: m, key: key}, nil
}

// describeAlg names alg in an error, quoted when it is not an algorithm.
func describeAlg(alg string) string {
	if m := jwt.GetSigningMethod(alg); m == nil || alg == "none" {
		return fmt.Sprintf("algorithm %q", alg)
	}
	return alg
}

// parsePrivateKey reads the first private key block of data, skipping
// anything before it (an "EC PARAMETERS" block, text).
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM private key found")
		}
		var key any
		var err error
		switch block.Type {
		case "EC PARAMETERS":
			continue
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE":
			return nil, fmt.Errorf("found a %s, not a private key", block.Type)
		default:
			return nil, fmt.Errorf("a %q block is not a private key this reads (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY, unencrypted)", block.Type)
		}
		if err != nil {
			return nil, err
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported key type %T", key)
		}
		return s, nil
	}
}

// Alg is the algorithm the signer signs with, as a token's header names it.
func (s *Signer) Alg() string { return s.method.Alg() }

// Sign returns a compact JWT of claims, which must encode (encoding/json)
// to a JSON object: a [Claims], a struct embedding one, or a map. Its
// header is {"alg": s.Alg(), "typ": "JWT"}.
func (s *Signer) Sign(claims any) (string, error) {
	body, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("auth: sign: %w", err)
	}
	if !bytes.HasPrefix(body, []byte("{")) {
		return "", fmt.Errorf("auth: sign: claims must be a JSON object, not %.20s", body)
	}
	header, err := json.Marshal(map[string]string{"alg": s.method.Alg(), "typ": "JWT"})
	if err != nil {
		return "", fmt.Errorf("auth: sign: %w", err)
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(header) + "." + enc.EncodeToString(body)
	sig, err := s.method.Sign(signing, s.key)
	if err != nil {
		return "", fmt.Errorf("auth: sign: %w", err)
	}
	return signing + "." + enc.EncodeToString(sig), nil
}
