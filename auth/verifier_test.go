package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"

	"github.com/ssegateway/ssegateway/auth"
)

type keys struct {
	secret1, secret2 []byte
	rsa              *rsa.PrivateKey
	rsaPEM           []byte
	ec               *ecdsa.PrivateKey
	ecPEM            []byte
	ed               ed25519.PrivateKey
	edPEM            []byte
}

func pemOf(t *testing.T, pub any) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func newKeys(t *testing.T) *keys {
	k := &keys{secret1: []byte(strings.Repeat("s", 32)), secret2: []byte(strings.Repeat("t", 40))}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	k.rsaPEM = pemOf(t, &k.rsa.PublicKey)
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	k.ecPEM = pemOf(t, &k.ec.PublicKey)
	var pub ed25519.PublicKey
	if pub, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	k.edPEM = pemOf(t, pub)
	return k
}

func sign(t *testing.T, m jwt.SigningMethod, key any, claims jwt.MapClaims, header ...string) string {
	tok := jwt.NewWithClaims(m, claims)
	if len(header) == 2 {
		tok.Header[header[0]] = header[1]
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func grantClaims(extra map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub": "user-1", "iss": "https://issuer.example", "aud": "ssegateway",
		"exp": time.Now().Add(time.Hour).Unix(),
		"sse": map[string]any{"subscribe": []string{"orders/42", "news/*"}, "publish": []string{"orders/**"}},
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

func TestJWTVerifier_Verify(t *testing.T) {
	k := newKeys(t)
	v, err := auth.NewJWTVerifier(context.Background(), auth.JWTConfig{
		HMACSecrets:   [][]byte{k.secret1, k.secret2},
		PublicKeysPEM: [][]byte{k.rsaPEM, k.ecPEM, k.edPEM},
		Issuer:        "https://issuer.example", Audience: "ssegateway", Logger: zerolog.Nop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	now := time.Now()
	cases := []struct {
		name  string
		token string
		want  string // "" for valid, else a word of the reason
	}{
		{"HS256", sign(t, jwt.SigningMethodHS256, k.secret1, grantClaims(nil)), ""},
		{"HS512 with the second (rotated) secret", sign(t, jwt.SigningMethodHS512, k.secret2, grantClaims(nil)), ""},
		{"RS256", sign(t, jwt.SigningMethodRS256, k.rsa, grantClaims(nil)), ""},
		{"PS256", sign(t, jwt.SigningMethodPS256, k.rsa, grantClaims(nil)), ""},
		{"ES256", sign(t, jwt.SigningMethodES256, k.ec, grantClaims(nil)), ""},
		{"EdDSA", sign(t, jwt.SigningMethodEdDSA, k.ed, grantClaims(nil)), ""},
		{"no exp", sign(t, jwt.SigningMethodHS256, k.secret1, grantClaims(map[string]any{"exp": nil})), ""},
		{"expired within leeway", sign(t, jwt.SigningMethodHS256, k.secret1, grantClaims(map[string]any{"exp": now.Add(-2 * time.Second).Unix()})), ""},
		{"expired", sign(t, jwt.SigningMethodHS256, k.secret1, grantClaims(map[string]any{"exp": now.Add(-time.Minute).Unix()})), "expired"},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, k.secret1, grantClaims(map[string]any{"nbf": now.Add(time.Minute).Unix()})), "not valid yet"},
		{"issued in the future", sign(t, jwt.SigningMethodHS256, k.secret1, grantClaims(map[string]any{"iat": now.Add(time.Minute).Unix()})), "not valid yet"},
		{"wrong issuer", sign(t, jwt.SigningMethodHS256, k.secret1, grantClaims(map[string]any{"iss": "https://evil.example"})), "issuer"},
		{"no issuer", sign(t, jwt.SigningMethodHS256, k.secret1, grantClaims(map[string]any{"iss": nil})), "issuer or audience"},
		{"wrong audience", sign(t, jwt.SigningMethodHS256, k.secret1, grantClaims(map[string]any{"aud": "other"})), "audience"},
		{"unknown secret", sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), grantClaims(nil)), "signature"},
		{"unknown RSA key", sign(t, jwt.SigningMethodRS256, otherRSA, grantClaims(nil)), "signature"},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, grantClaims(nil)), "not valid"},
		{"HS256 signed with the RSA public key", sign(t, jwt.SigningMethodHS256, k.rsaPEM, grantClaims(nil)), "signature"},
		{"bad pattern in claim", sign(t, jwt.SigningMethodHS256, k.secret1, grantClaims(map[string]any{"sse": map[string]any{"subscribe": []string{"a b"}}})), "sse.subscribe"},
		{"empty", "", "no token"},
		{"garbage", "abc", "malformed"},
		{"three garbage parts", "a.b.c", "malformed"},
		{"tampered payload", tamper(sign(t, jwt.SigningMethodHS256, k.secret1, grantClaims(nil))), "signature"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := v.Verify(context.Background(), c.token)
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused a valid token: %v", err)
				}
				if g.Subject != "user-1" || !g.Subscribe.Allows("news/world") || g.Subscribe.Allows("orders/43") || !g.Publish.Allows("orders/42/x") {
					t.Fatalf("grant %+v", g)
				}
				return
			}
			if !errors.Is(err, auth.ErrInvalidToken) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Verify = %v, want ErrInvalidToken mentioning %q", err, c.want)
			}
		})
	}
}

// tamper changes the payload's subject without re-signing.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	m["sse"] = map[string]any{"subscribe": []string{"**"}}
	b, _ = json.Marshal(m)
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

// TestJWTVerifier_onlyRSAConfigured: the classic confusion attack — the
// server has only an RSA public key, the attacker signs HS256 with it.
func TestJWTVerifier_onlyRSAConfigured(t *testing.T) {
	k := newKeys(t)
	v, err := auth.NewJWTVerifier(context.Background(), auth.JWTConfig{PublicKeysPEM: [][]byte{k.rsaPEM}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{
		sign(t, jwt.SigningMethodHS256, k.rsaPEM, grantClaims(nil)),
		sign(t, jwt.SigningMethodHS256, x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey), grantClaims(nil)),
		sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, grantClaims(nil)),
	} {
		if _, err := v.Verify(context.Background(), tok); !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("accepted %q: %v", tok[:20], err)
		}
	}
	if _, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodRS256, k.rsa, grantClaims(nil))); err != nil {
		t.Fatal(err)
	}
}

func jwks(t *testing.T, k *keys) []byte {
	set := map[string]any{"keys": []any{map[string]any{
		"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
		"n": base64.RawURLEncoding.EncodeToString(k.rsa.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.rsa.E)).Bytes()),
	}, map[string]any{
		"kty": "oct", "kid": "sym", "k": base64.RawURLEncoding.EncodeToString(k.secret1),
	}}}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestJWTVerifier_JWKS(t *testing.T) {
	k := newKeys(t)
	set := jwks(t, k)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(set)
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for name, cfg := range map[string]auth.JWTConfig{
		"file": {JWKS: set},
		"url":  {JWKSURLs: []string{srv.URL}, Logger: zerolog.Nop()},
	} {
		t.Run(name, func(t *testing.T) {
			v, err := auth.NewJWTVerifier(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			good := sign(t, jwt.SigningMethodRS256, k.rsa, grantClaims(nil), "kid", "k1")
			if _, err := v.Verify(ctx, good); err != nil {
				t.Fatalf("JWKS key refused: %v", err)
			}
			// An oct key in the set must not verify HS tokens.
			sym := sign(t, jwt.SigningMethodHS256, k.secret1, grantClaims(nil), "kid", "sym")
			if _, err := v.Verify(ctx, sym); !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("HS256 token verified by a JWKS oct key: %v", err)
			}
		})
	}
}

func TestNewJWTVerifier_rejects(t *testing.T) {
	for name, cfg := range map[string]auth.JWTConfig{
		"no keys":      {},
		"short secret": {HMACSecrets: [][]byte{[]byte("short")}},
		"bad PEM":      {PublicKeysPEM: [][]byte{[]byte("not pem")}},
		"bad JWKS":     {JWKS: []byte("{")},
	} {
		if _, err := auth.NewJWTVerifier(context.Background(), cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
