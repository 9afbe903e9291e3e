package auth

import "testing"

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
