package auth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ssegateway/ssegateway/auth"
)

// claimsOf is a caller's own claims type, as the Mercure front door has.
type claimsOf struct {
	Sub     string `json:"sub"`
	Mercure struct {
		Publish []string `json:"publish"`
		Payload any      `json:"payload"`
	} `json:"mercure"`
}

func mercureClaims(extra map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub":     "user-1",
		"exp":     time.Now().Add(time.Hour).Unix(),
		"mercure": map[string]any{"publish": []string{"*"}, "payload": map[string]any{"b": 1, "a": "x"}},
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func newKeyVerifier(t *testing.T, alg string, key []byte) *auth.KeyVerifier {
	t.Helper()
	v, err := auth.NewKeyVerifier(auth.KeyConfig{Alg: alg, Key: key})
	if err != nil {
		t.Fatalf("NewKeyVerifier(%s): %v", alg, err)
	}
	return v
}

func TestKeyVerifier_VerifyClaims(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	rsaPKCS1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
	for _, c := range []struct {
		alg    string
		key    []byte
		method jwt.SigningMethod
		signer any
	}{
		{"HS256", k.secret1, jwt.SigningMethodHS256, k.secret1},
		{"HS512", k.secret2, jwt.SigningMethodHS512, k.secret2},
		{"RS256", k.rsaPEM, jwt.SigningMethodRS256, k.rsa},
		{"RS512", rsaPKCS1, jwt.SigningMethodRS512, k.rsa},
		{"PS256", k.rsaPEM, jwt.SigningMethodPS256, k.rsa},
		{"ES256", k.ecPEM, jwt.SigningMethodES256, k.ec},
		{"EdDSA", k.edPEM, jwt.SigningMethodEdDSA, k.ed},
	} {
		v := newKeyVerifier(t, c.alg, c.key)
		exp := time.Now().Add(time.Hour).Truncate(time.Second)
		var got claimsOf
		tok, err := v.VerifyClaims(sign(t, c.method, c.signer, mercureClaims(map[string]any{"exp": exp.Unix()})), &got)
		if err != nil {
			t.Errorf("%s: %v", c.alg, err)
			continue
		}
		if tok.Subject != "user-1" || !tok.Expires.Equal(exp) || got.Sub != "user-1" ||
			len(got.Mercure.Publish) != 1 || got.Mercure.Publish[0] != "*" || got.Mercure.Payload == nil {
			t.Errorf("%s: token %+v, claims %+v", c.alg, tok, got)
		}
	}
}

func TestKeyVerifier_refuses(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	hs := newKeyVerifier(t, "HS256", k.secret1)
	rs := newKeyVerifier(t, "RS256", k.rsaPEM)
	now := time.Now()
	for _, c := range []struct {
		name  string
		v     *auth.KeyVerifier
		token string
		want  string
	}{
		{"expired", hs, sign(t, jwt.SigningMethodHS256, k.secret1, mercureClaims(map[string]any{"exp": now.Add(-2 * time.Second).Unix()})), "expired"},
		{"not yet valid", hs, sign(t, jwt.SigningMethodHS256, k.secret1, mercureClaims(map[string]any{"nbf": now.Add(time.Minute).Unix()})), "not valid yet"},
		{"other algorithm of the same key", hs, sign(t, jwt.SigningMethodHS512, k.secret1, mercureClaims(nil)), "not valid"},
		{"other secret", hs, sign(t, jwt.SigningMethodHS256, k.secret2, mercureClaims(nil)), "signature"},
		{"alg none", hs, sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, mercureClaims(nil)), "not valid"},
		{"HS256 signed with the RSA public key", rs, sign(t, jwt.SigningMethodHS256, k.rsaPEM, mercureClaims(nil)), "not valid"},
		{"PS256 when RS256 is configured", rs, sign(t, jwt.SigningMethodPS256, k.rsa, mercureClaims(nil)), "not valid"},
		{"tampered", hs, tamper(sign(t, jwt.SigningMethodHS256, k.secret1, mercureClaims(nil))), "signature"},
		{"claims of the wrong type", hs, sign(t, jwt.SigningMethodHS256, k.secret1, mercureClaims(map[string]any{"mercure": map[string]any{"publish": "*"}})), "claims"},
		{"empty", hs, "", "no token"},
		{"garbage", hs, "a.b.c", "malformed"},
	} {
		var got claimsOf
		if _, err := c.v.VerifyClaims(c.token, &got); !errors.Is(err, auth.ErrInvalidToken) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrInvalidToken mentioning %q", c.name, err, c.want)
		}
	}
	// Without exp, a token does not expire; iat is not checked (as Mercure).
	if _, err := hs.VerifyClaims(sign(t, jwt.SigningMethodHS256, k.secret1, mercureClaims(map[string]any{"exp": nil, "iat": now.Add(time.Hour).Unix()})), nil); err != nil {
		t.Errorf("no exp, iat in the future: %v", err)
	}
}

func TestKeyVerifier_leeway(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	v, err := auth.NewKeyVerifier(auth.KeyConfig{Alg: "HS256", Key: k.secret1, Leeway: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.VerifyClaims(sign(t, jwt.SigningMethodHS256, k.secret1, mercureClaims(map[string]any{"exp": time.Now().Add(-10 * time.Second).Unix()})), nil); err != nil {
		t.Errorf("expired within the leeway: %v", err)
	}
}

// Mercure's own conformance suite publishes with this token, signed with
// the key its CI configures.
func TestKeyVerifier_mercureConformanceToken(t *testing.T) {
	t.Parallel()
	v := newKeyVerifier(t, "HS256", []byte("!ChangeThisMercureHubJWTSecretKey!"))
	var got struct {
		Mercure struct{ Publish, Subscribe []string } `json:"mercure"`
	}
	tok, err := v.VerifyClaims("eyJhbGciOiJIUzI1NiJ9.eyJtZXJjdXJlIjp7InB1Ymxpc2giOlsiKiJdLCJzdWJzY3JpYmUiOlsiKiJdfX0.bVXdlWXwfw9ySx7-iV5OpUSHo34RkjUdVzDLBcc6l_g", &got)
	if err != nil || !tok.Expires.IsZero() || len(got.Mercure.Publish) != 1 || got.Mercure.Publish[0] != "*" {
		t.Fatalf("%+v %+v %v", tok, got, err)
	}
}

func TestNewKeyVerifier_refuses(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for name, cfg := range map[string]auth.KeyConfig{
		"no algorithm":        {Key: k.secret1},
		"unknown algorithm":   {Alg: "HS1024", Key: k.secret1},
		"none":                {Alg: "none", Key: k.secret1},
		"no key":              {Alg: "HS256"},
		"short secret":        {Alg: "HS256", Key: []byte("secret")},
		"secret under a min":  {Alg: "HS256", Key: k.secret1, MinHMACBytes: 64},
		"RSA alg, EC key":     {Alg: "RS256", Key: k.ecPEM},
		"EC alg, RSA key":     {Alg: "ES256", Key: k.rsaPEM},
		"ES384 with a P-256":  {Alg: "ES384", Key: k.ecPEM},
		"EdDSA with RSA key":  {Alg: "EdDSA", Key: k.rsaPEM},
		"not PEM":             {Alg: "RS256", Key: []byte("not pem")},
		"ES256 with a P-384":  {Alg: "ES256", Key: pemOf(t, &p384.PublicKey)},
		"HS with empty min 0": {Alg: "HS384", Key: []byte(strings.Repeat("s", 31))},
	} {
		if _, err := auth.NewKeyVerifier(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := auth.NewKeyVerifier(auth.KeyConfig{Alg: "HS256", Key: []byte("short"), MinHMACBytes: -1}); err != nil {
		t.Errorf("a short secret with MinHMACBytes -1: %v", err)
	}
	if _, err := auth.NewKeyVerifier(auth.KeyConfig{Alg: "ES384", Key: pemOf(t, &p384.PublicKey)}); err != nil {
		t.Errorf("ES384 with a P-384 key: %v", err)
	}
}
