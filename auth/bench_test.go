package auth

import (
	"strings"
	"testing"
)

func BenchmarkPattern_Match(b *testing.B) {
	p, _ := ParsePattern("user:*/notifications/**")
	topic := "user:" + strings.Repeat("4", 20) + "/notifications/orders/" + strings.Repeat("9", 40)
	b.ReportAllocs()
	for b.Loop() {
		if !p.Match(topic) {
			b.Fatal("no match")
		}
	}
}
