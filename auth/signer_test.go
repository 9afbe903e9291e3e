package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ssegateway/ssegateway/auth"
)

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func pkcs8PEM(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pemBlock("PRIVATE KEY", der)
}

// secPEM is key in SEC 1 form ("EC PRIVATE KEY").
func secPEM(t *testing.T, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pemBlock("EC PRIVATE KEY", der)
}

func newSigner(t *testing.T, cfg auth.SignerConfig) *auth.Signer {
	t.Helper()
	s, err := auth.NewSigner(cfg)
	if err != nil {
		t.Fatalf("NewSigner: %v", err)
	}
	return s
}

// TestSigner_Sign_verifies: a token of every kind of key verifies with a
// JWTVerifier holding the matching key, with the grant it was signed with,
// and with no other key.
func TestSigner_Sign_verifies(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	ec384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ec521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// openssl ecparam -genkey writes the curve's parameters first.
	ecWithParams := append(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}}),
		secPEM(t, k.ec)...)
	cases := []struct {
		name    string
		cfg     auth.SignerConfig
		alg     string
		verify  auth.JWTConfig
		another auth.JWTConfig // a verifier with other keys of the same kind
	}{
		{"HS256", auth.SignerConfig{HMACSecret: k.secret1}, "HS256",
			auth.JWTConfig{HMACSecrets: [][]byte{k.secret2, k.secret1}}, auth.JWTConfig{HMACSecrets: [][]byte{k.secret2}}},
		{"HS512", auth.SignerConfig{HMACSecret: k.secret2, Alg: "HS512"}, "HS512",
			auth.JWTConfig{HMACSecrets: [][]byte{k.secret2}}, auth.JWTConfig{HMACSecrets: [][]byte{k.secret1}}},
		{"RSA PKCS #1", auth.SignerConfig{PrivateKeyPEM: pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k.rsa))}, "RS256",
			auth.JWTConfig{PublicKeysPEM: [][]byte{k.rsaPEM}}, auth.JWTConfig{PublicKeysPEM: [][]byte{k.ecPEM, k.edPEM}}},
		{"RSA PKCS #8 PS384", auth.SignerConfig{PrivateKeyPEM: pkcs8PEM(t, k.rsa), Alg: "PS384"}, "PS384",
			auth.JWTConfig{PublicKeysPEM: [][]byte{k.rsaPEM}}, auth.JWTConfig{PublicKeysPEM: [][]byte{pemOf(t, &ec384.PublicKey)}}},
		{"ECDSA P-256 SEC 1 after EC PARAMETERS", auth.SignerConfig{PrivateKeyPEM: ecWithParams}, "ES256",
			auth.JWTConfig{PublicKeysPEM: [][]byte{k.ecPEM}}, auth.JWTConfig{PublicKeysPEM: [][]byte{k.rsaPEM}}},
		{"ECDSA P-384 SEC 1", auth.SignerConfig{PrivateKeyPEM: secPEM(t, ec384)}, "ES384",
			auth.JWTConfig{PublicKeysPEM: [][]byte{pemOf(t, &ec384.PublicKey)}}, auth.JWTConfig{PublicKeysPEM: [][]byte{k.ecPEM}}},
		{"ECDSA P-521 PKCS #8", auth.SignerConfig{PrivateKeyPEM: pkcs8PEM(t, ec521), Alg: "ES512"}, "ES512",
			auth.JWTConfig{PublicKeysPEM: [][]byte{pemOf(t, &ec521.PublicKey)}}, auth.JWTConfig{PublicKeysPEM: [][]byte{pemOf(t, &ec384.PublicKey)}}},
		{"Ed25519", auth.SignerConfig{PrivateKeyPEM: pkcs8PEM(t, k.ed)}, "EdDSA",
			auth.JWTConfig{PublicKeysPEM: [][]byte{k.edPEM}}, auth.JWTConfig{PublicKeysPEM: [][]byte{k.rsaPEM}}},
	}
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	claims := auth.Claims{Subject: "user-1", Issuer: "https://issuer.example", Audience: "ssegateway",
		IssuedAt: time.Now().Unix(), Expires: exp.Unix(),
		SSE: &auth.SSEClaim{Subscribe: []string{"orders/42", "news/*"}, Publish: []string{"orders/**"}}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSigner(t, c.cfg)
			if s.Alg() != c.alg {
				t.Errorf("Alg() = %s, want %s", s.Alg(), c.alg)
			}
			tok, err := s.Sign(claims)
			if err != nil {
				t.Fatal(err)
			}
			var header struct{ Alg, Typ string }
			b, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
			if err := json.Unmarshal(b, &header); err != nil || header.Alg != c.alg || header.Typ != "JWT" {
				t.Errorf("header %s (%v)", b, err)
			}
			c.verify.Issuer, c.verify.Audience = "https://issuer.example", "ssegateway"
			v, err := auth.NewJWTVerifier(context.Background(), c.verify)
			if err != nil {
				t.Fatal(err)
			}
			g, err := v.Verify(context.Background(), tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if g.Subject != "user-1" || !g.Expires.Equal(exp) || !g.Subscribe.Allows("news/world") || g.Subscribe.Allows("orders/43") ||
				!g.Publish.Allows("orders/42/x") || g.Publish.Allows("news/world") {
				t.Errorf("grant %+v", g)
			}
			other, err := auth.NewJWTVerifier(context.Background(), c.another)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := other.Verify(context.Background(), tok); !errors.Is(err, auth.ErrInvalidToken) {
				t.Errorf("a verifier with other keys accepted it: %v", err)
			}
		})
	}
}

// TestSigner_Sign_ownClaims: claims of another shape, embedding Claims,
// verify with a KeyVerifier and decode as the caller's type; an empty
// Claims leaves every registered claim out.
func TestSigner_Sign_ownClaims(t *testing.T) {
	t.Parallel()
	key := []byte("short") // a Mercure hub accepts any length
	s := newSigner(t, auth.SignerConfig{HMACSecret: key, Alg: "HS384", MinHMACBytes: -1})
	type mercure struct {
		auth.Claims
		Mercure struct {
			Publish []string `json:"publish"`
		} `json:"mercure"`
	}
	var c mercure
	c.Subject = "svc"
	c.Mercure.Publish = []string{"*"}
	tok, err := s.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if string(b) != `{"sub":"svc","mercure":{"publish":["*"]}}` {
		t.Errorf("claims %s", b)
	}
	v, err := auth.NewKeyVerifier(auth.KeyConfig{Alg: "HS384", Key: key, MinHMACBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	var got mercure
	if tk, err := v.VerifyClaims(tok, &got); err != nil || tk.Subject != "svc" || !tk.Expires.IsZero() || got.Mercure.Publish[0] != "*" {
		t.Fatalf("VerifyClaims = %+v, %+v, %v", tk, got, err)
	}
	for _, bad := range []any{nil, "a string", []string{"x"}, func() {}, map[string]any{"x": func() {}}} {
		if tok, err := s.Sign(bad); err == nil {
			t.Errorf("Sign(%T) = %q, want an error", bad, tok)
		}
	}
}

func TestNewSigner_rejects(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		cfg  auth.SignerConfig
		want string
	}{
		{"no key", auth.SignerConfig{}, "no signing key"},
		{"both", auth.SignerConfig{HMACSecret: k.secret1, PrivateKeyPEM: pkcs8PEM(t, k.rsa)}, "not both"},
		{"short secret", auth.SignerConfig{HMACSecret: []byte(strings.Repeat("s", 31))}, "31 bytes; use at least 32"},
		{"short for its own floor", auth.SignerConfig{HMACSecret: k.secret1, MinHMACBytes: 64}, "at least 64"},
		{"HMAC with RS256", auth.SignerConfig{HMACSecret: k.secret1, Alg: "RS256"}, "RS256 does not sign with an HMAC secret"},
		{"HMAC with none", auth.SignerConfig{HMACSecret: k.secret1, Alg: "none"}, `algorithm "none"`},
		{"public key", auth.SignerConfig{PrivateKeyPEM: k.rsaPEM}, "found a PUBLIC KEY, not a private key"},
		{"not PEM", auth.SignerConfig{PrivateKeyPEM: []byte("not pem")}, "no PEM private key"},
		{"encrypted", auth.SignerConfig{PrivateKeyPEM: pemBlock("ENCRYPTED PRIVATE KEY", []byte{1})}, "unencrypted"},
		{"broken DER", auth.SignerConfig{PrivateKeyPEM: pemBlock("PRIVATE KEY", []byte{1, 2, 3})}, "private key"},
		{"RSA with ES256", auth.SignerConfig{PrivateKeyPEM: pkcs8PEM(t, k.rsa), Alg: "ES256"}, "an RSA key, which signs RS256/384/512 or PS256/384/512, not ES256"},
		{"P-256 with ES384", auth.SignerConfig{PrivateKeyPEM: pkcs8PEM(t, k.ec), Alg: "ES384"}, "an ECDSA P-256 key, which signs ES256, not ES384"},
		{"Ed25519 with HS256", auth.SignerConfig{PrivateKeyPEM: pkcs8PEM(t, k.ed), Alg: "HS256"}, "not HS256"},
		{"private key with none", auth.SignerConfig{PrivateKeyPEM: pkcs8PEM(t, k.ed), Alg: "none"}, `not algorithm "none"`},
		{"unknown algorithm", auth.SignerConfig{PrivateKeyPEM: pkcs8PEM(t, k.rsa), Alg: "RS1"}, `not algorithm "RS1"`},
		{"P-224", auth.SignerConfig{PrivateKeyPEM: secPEM(t, p224)}, "unsupported elliptic curve P-224"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := auth.NewSigner(c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("NewSigner = %v, %v; want an error mentioning %q", s, err, c.want)
			}
		})
	}
}
