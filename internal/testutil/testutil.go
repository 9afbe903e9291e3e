// Package testutil holds the helpers the project's tests share.
package testutil

import (
	"testing"
	"time"
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
