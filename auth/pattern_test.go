package auth

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func TestPattern_Match(t *testing.T) {
	cases := []struct {
		pattern, topic string
		want           bool
	}{
		{"a", "a", true},
		{"a", "a/b", false},
		{"a", "ab", false},
		{"a", "", false},
		{"ab", "a", false},
		{"news/*", "news/world", true},
		{"news/*", "news", false},
		{"news/*", "news/", false},
		{"news/*", "news/world/eu", false},
		{"news/**", "news/world/eu", true},
		{"news/**", "news", false},
		{"news/**", "news/", false},
		{"user:*/inbox", "user:42/inbox", true},
		{"user:*/inbox", "user:/inbox", false},
		{"user:*/inbox", "user:4/2/inbox", false},
		{"*", "a", true},
		{"*", "a/b", false},
		{"**", "a/b/c", true},
		{"x*y", "xay", true},
		{"x*y", "xy", false},
		{"x*y", "xaay", true},
		{"*/*", "a/b", true},
		{"*/*", "a/b/c", false},
		{"a/**/z", "a/b/c/z", true},
		{"a/**/z", "a/z", false},
		{"*.*.*.*.*.*.*.*.*.*.*.*.*.*.*x", "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.y", false},
	}
	for _, c := range cases {
		p, err := ParsePattern(c.pattern)
		if err != nil {
			t.Fatalf("ParsePattern(%q): %v", c.pattern, err)
		}
		if got := p.Match(c.topic); got != c.want {
			t.Errorf("%q.Match(%q) = %v, want %v", c.pattern, c.topic, got, c.want)
		}
	}
}

func TestParsePattern_invalid(t *testing.T) {
	for _, s := range []string{"", "a b", "a{b}", "a?", "a[b]", "***", "a\nb", string(make([]byte, 257)),
		"*a*b*c*d*e*f*g*h*i*j*k*l*m*n*o*p*q"} {
		if _, err := ParsePattern(s); err == nil {
			t.Errorf("ParsePattern(%q) accepted", s)
		}
	}
}

func FuzzPattern_Match(f *testing.F) {
	f.Add("news/*", "news/world")
	f.Add("a/**/z", "a/b/c/z")
	f.Fuzz(func(t *testing.T, pattern, topic string) {
		p, err := ParsePattern(pattern)
		if err != nil {
			return
		}
		// Without wildcards a pattern matches exactly itself.
		if got := p.Match(topic); got && !containsStar(pattern) && topic != pattern {
			t.Fatalf("%q matched %q", pattern, topic)
		}
	})
}

func containsStar(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '*' {
			return true
		}
	}
	return false
}

func TestPattern_Covers(t *testing.T) {
	cases := []struct {
		grant, sub string
		want       bool
	}{
		{"orders/*", "orders/*", true},
		{"orders/**", "orders/*", true},
		{"orders/**", "orders/**", true},
		{"orders/**", "orders/*/items", true},
		{"orders/42", "orders/*", false},
		{"orders/*", "orders/**", false},
		{"orders/*", "orders/*/items", false},
		{"**", "orders/*", true},
		{"*", "orders/*", false},
		{"orders/*", "orders/4*", true},
		{"orders/4*", "orders/*", false},
		{"orders/*/items", "orders/*/items", true},
		{"orders/*/*", "orders/*/items", true},
		{"orders/*/items", "orders/*/*", false},
		{"user:*/inbox", "user:*/inbox", true},
		{"user:**", "user:4/*", true},
		{"orders/*", "orders/42", true},
		{"orders/*", "orders/42/x", false},
		{"a**b", "a*b", true},
		{"a*b", "a**b", false},
	}
	for _, c := range cases {
		g, _ := ParsePattern(c.grant)
		s, _ := ParsePattern(c.sub)
		if got := g.Covers(s); got != c.want {
			t.Errorf("%q covers %q = %v, want %v", c.grant, c.sub, got, c.want)
		}
	}
}

// TestPattern_Covers_sound: when a grant covers a subscription pattern,
// every topic the subscription matches, the grant matches too. Random
// patterns and topics over a small alphabet.
func TestPattern_Covers_sound(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	atoms := []string{"a", "b", "/", "*", "**"}
	chars := "ab/"
	pat := func() string {
		var sb strings.Builder
		for range 1 + r.IntN(5) {
			sb.WriteString(atoms[r.IntN(len(atoms))])
		}
		return sb.String()
	}
	covered := 0
	for range 3000 {
		gs, ss := pat(), pat()
		g, err1 := ParsePattern(gs)
		s, err2 := ParsePattern(ss)
		if err1 != nil || err2 != nil || !g.Covers(s) {
			continue
		}
		covered++
		for range 200 {
			var sb strings.Builder
			for range 1 + r.IntN(6) {
				sb.WriteByte(chars[r.IntN(len(chars))])
			}
			topic := sb.String()
			if s.Match(topic) && !g.Match(topic) {
				t.Fatalf("%q covers %q, but %q matches only the latter", gs, ss, topic)
			}
		}
	}
	if covered < 100 {
		t.Fatalf("only %d covering pairs tried", covered)
	}
}
