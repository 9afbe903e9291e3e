package pubsub

import "testing"

// TestSlotOf checks the hash slot against the values the Redis Cluster
// specification and CLUSTER KEYSLOT give.
func TestSlotOf(t *testing.T) {
	for key, want := range map[string]int{
		"123456789":      12739, // CRC16/XMODEM check value 0x31C3
		"somekey":        11058,
		"foo{hash_tag}":  2515,
		"bar{hash_tag}":  2515,
		"foo":            12182,
		"{foo}:stream":   12182,
		"x{}{foo}":       slotOf("x{}{foo}"), // an empty tag hashes the whole key: checked below
		"sse:{a}:events": slotOf("a"),
	} {
		if got := slotOf(key); got != want {
			t.Errorf("slotOf(%q) = %d, want %d", key, got, want)
		}
	}
	if slotOf("x{}{foo}") == slotOf("foo") {
		t.Error("an empty hash tag must not select the next one")
	}
}
