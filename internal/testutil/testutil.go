// Package testutil holds the helpers the project's tests share.
package testutil

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// WaitFor polls cond every couple of milliseconds until it holds, and fails
// the test if it has not within 15 seconds (generous: CI machines are
// loaded; a condition that holds returns at once).
func WaitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// MercureToken signs an HS256 token with key whose mercure claim is claim
// (none if nil), expiring at exp (never if zero).
func MercureToken(tb testing.TB, key string, claim map[string]any, exp time.Time) string {
	tb.Helper()
	c := jwt.MapClaims{}
	if claim != nil {
		c["mercure"] = claim
	}
	if !exp.IsZero() {
		c["exp"] = exp.Unix()
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(key))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
