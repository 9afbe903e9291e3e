package auth

import (
	"fmt"
	"strings"
)

// MaxPatternLen is the longest pattern accepted.
const MaxPatternLen = 256

// Pattern matches topic names. Its syntax is a topic name (letters, digits
// and - _ . : / @ = + ~) in which "*" matches one or more characters other
// than "/" and "**" matches one or more characters of any kind:
//
//	orders/42        only orders/42
//	news/*           news/world, not news, news/, news/world/eu
//	news/**          news/world, news/world/eu, not news
//	user:*/inbox     user:42/inbox
//	*                any topic without a "/"
//	**               any topic
type Pattern struct {
	raw string
}

// ParsePattern validates s as a Pattern.
func ParsePattern(s string) (Pattern, error) {
	if s == "" || len(s) > MaxPatternLen {
		return Pattern{}, fmt.Errorf("auth: pattern must be 1 to %d bytes", MaxPatternLen)
	}
	if strings.Contains(s, "***") {
		return Pattern{}, fmt.Errorf("auth: pattern %q: use * or **, not ***", s)
	}
	if strings.Count(s, "*") > 16 {
		return Pattern{}, fmt.Errorf("auth: pattern %q has more than 16 wildcards", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.:/@=+~*", c) >= 0
		if !ok {
			return Pattern{}, fmt.Errorf("auth: pattern %q has %q at byte %d", s, c, i)
		}
	}
	return Pattern{raw: s}, nil
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.raw }

// Match reports whether topic matches p.
func (p Pattern) Match(topic string) bool { return match(p.raw, topic) }

// match reports whether pat matches all of s, in O(len(pat) x len(s)) time
// whatever the wildcards (a backtracking matcher is exponential in them).
// next[j] says whether the rest of the pattern after the current element
// matches s[j:]; cur is computed from it, from the end of the pattern back.
func match(pat, s string) bool {
	next := make([]bool, len(s)+1)
	cur := make([]bool, len(s)+1)
	next[len(s)] = true // the empty pattern matches only the empty rest
	for i := len(pat) - 1; i >= 0; i-- {
		var star, any bool
		if pat[i] == '*' {
			star = true
			if i > 0 && pat[i-1] == '*' {
				any = true
				i--
			}
		}
		cur[len(s)] = false
		for j := len(s) - 1; j >= 0; j-- {
			switch {
			case !star:
				cur[j] = s[j] == pat[i] && next[j+1]
			case !any && s[j] == '/':
				cur[j] = false
			default:
				// The wildcard takes s[j], then stops or takes more.
				cur[j] = next[j+1] || cur[j+1]
			}
		}
		next, cur = cur, next
	}
	return next[0]
}

// Patterns is a list of patterns; a topic is allowed if any matches.
type Patterns []Pattern

// ParsePatterns validates each of ss.
func ParsePatterns(ss []string) (Patterns, error) {
	ps := make(Patterns, 0, len(ss))
	for _, s := range ss {
		p, err := ParsePattern(s)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// Allows reports whether any pattern matches topic.
func (ps Patterns) Allows(topic string) bool {
	for _, p := range ps {
		if p.Match(topic) {
			return true
		}
	}
	return false
}

// Covers reports whether p matches every topic q matches: a grant of p
// allows a subscription to the pattern q. It compares the two as token
// sequences — a literal character, "*" (one or more characters other than
// "/") or "**" (one or more of any) — in O(len(p) x len(q)): each of q's
// tokens must be taken by one of p's that takes everything it stands for.
// A topic (no wildcard) is covered exactly when p matches it.
func (p Pattern) Covers(q Pattern) bool {
	pt, qt := tokens(p.raw), tokens(q.raw)
	// next[j] says whether the rest of p after the current token covers
	// qt[j:]; as in match, cur is computed from it, back from p's end.
	next := make([]bool, len(qt)+1)
	cur := make([]bool, len(qt)+1)
	next[len(qt)] = true
	for i := len(pt) - 1; i >= 0; i-- {
		cur[len(qt)] = false
		for j := len(qt) - 1; j >= 0; j-- {
			switch t := pt[i]; t {
			case tokAny:
				cur[j] = next[j+1] || cur[j+1]
			case tokStar:
				cur[j] = qt[j] != tokAny && qt[j] != '/' && (next[j+1] || cur[j+1])
			default:
				cur[j] = qt[j] == t && next[j+1]
			}
		}
		next, cur = cur, next
	}
	return next[0]
}

// Pattern tokens: a byte for a literal character, or one of these.
const (
	tokStar = -1 // *
	tokAny  = -2 // **
)

func tokens(s string) []int {
	out := make([]int, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] != '*':
			out = append(out, int(s[i]))
		case i+1 < len(s) && s[i+1] == '*':
			out = append(out, tokAny)
			i++
		default:
			out = append(out, tokStar)
		}
	}
	return out
}

// Covers reports whether one of the patterns covers q (see [Pattern.Covers]).
// A pattern that only several of them cover together is not allowed: name
// it in one grant.
func (ps Patterns) Covers(q Pattern) bool {
	for _, p := range ps {
		if p.Covers(q) {
			return true
		}
	}
	return false
}
