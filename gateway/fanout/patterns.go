package fanout

import (
	"strings"

	"github.com/ssegateway/ssegateway/auth"
)

// patternIndex finds the streams a feed's event goes to: the distinct
// patterns its streams hold, indexed by path segment, so an event is
// matched once per distinct pattern that can match it, not once per stream
// and not by trying every pattern. Patterns share the feed's first segment;
// the trie starts after it.
//
//   - a literal segment is a map lookup;
//   - a segment that is just "*" is one edge, taken by any non-empty segment;
//   - a segment with "*" inside ("user:*") is matched against one segment;
//   - from the first segment holding "**" on, the rest of the pattern can
//     span segments: it is matched against the rest of the topic as a whole.
//
// It is guarded by its source's lock.
type patternIndex struct {
	root    pnode
	entries map[string]*pentry // pattern → its streams
}

// pentry is one distinct pattern and the streams that hold it.
type pentry struct {
	members map[*Member]struct{}
}

type pnode struct {
	lit   map[string]*pnode
	star  *pnode
	globs wild[*globEdge]
	tails wild[*tailEdge]
	end   *pentry // patterns that end here
}

type globEdge struct {
	p    auth.Pattern
	next *pnode
}

type tailEdge struct {
	p     auth.Pattern
	entry *pentry
}

// NewPatternIndex returns the index of a feed whose streams want it by
// patterns: a Want's Filter is its []auth.Pattern, each of whose first
// segment is the feed's.
func NewPatternIndex() Index {
	return &patternIndex{entries: make(map[string]*pentry)}
}

// Add implements Index.
func (x *patternIndex) Add(m *Member) {
	ps, _ := m.Want().Filter.([]auth.Pattern)
	for _, p := range ps {
		x.add(p, m)
	}
}

// Remove implements Index.
func (x *patternIndex) Remove(m *Member) {
	ps, _ := m.Want().Filter.([]auth.Pattern)
	for _, p := range ps {
		x.remove(p, m)
	}
}

// Match implements Index.
func (x *patternIndex) Match(ev *Event, visit func(*Member)) {
	x.match(ev.Topic, func(e *pentry) {
		for m := range e.members {
			visit(m)
		}
	})
}

// add registers m under p. p's first segment is the feed's.
func (x *patternIndex) add(p auth.Pattern, m *Member) {
	raw := p.String()
	e := x.entries[raw]
	if e == nil {
		e = &pentry{members: make(map[*Member]struct{})}
		x.entries[raw] = e
		x.insert(raw, e)
	}
	e.members[m] = struct{}{}
}

// remove takes m off p, and p off the index once no stream holds it.
func (x *patternIndex) remove(p auth.Pattern, m *Member) {
	raw := p.String()
	e := x.entries[raw]
	if e == nil {
		return
	}
	delete(e.members, m)
	if len(e.members) == 0 {
		delete(x.entries, raw)
		x.root.prune(afterFirst(raw))
	}
}

// afterFirst returns what follows a pattern's or topic's first segment.
func afterFirst(s string) string {
	_, rest, _ := strings.Cut(s, "/")
	return rest
}

func (x *patternIndex) insert(raw string, e *pentry) {
	n := &x.root
	rest := afterFirst(raw)
	for {
		seg, after, more := strings.Cut(rest, "/")
		switch {
		case strings.Contains(seg, "**"):
			p, _ := auth.ParsePattern(rest) // a piece of a valid pattern is valid
			n.tails.add(rest, &tailEdge{p: p, entry: e})
			return
		case seg == "*":
			if n.star == nil {
				n.star = &pnode{}
			}
			n = n.star
		case strings.Contains(seg, "*"):
			g, ok := n.globs.get(seg)
			if !ok {
				p, _ := auth.ParsePattern(seg)
				g = &globEdge{p: p, next: &pnode{}}
				n.globs.add(seg, g)
			}
			n = g.next
		default:
			if n.lit == nil {
				n.lit = make(map[string]*pnode)
			}
			c := n.lit[seg]
			if c == nil {
				c = &pnode{}
				n.lit[seg] = c
			}
			n = c
		}
		if !more {
			n.end = e
			return
		}
		rest = after
	}
}

// prune removes the pattern whose part after the feed segment is rest, and
// the nodes it leaves empty. It reports whether n is empty now.
func (n *pnode) prune(rest string) bool {
	seg, after, more := strings.Cut(rest, "/")
	var child *pnode
	switch {
	case strings.Contains(seg, "**"):
		n.tails.remove(rest)
		return n.empty()
	case seg == "*":
		child = n.star
	case strings.Contains(seg, "*"):
		if g, ok := n.globs.get(seg); ok {
			child = g.next
		}
	default:
		child = n.lit[seg]
	}
	if child == nil {
		return n.empty()
	}
	var gone bool
	if more {
		gone = child.prune(after)
	} else {
		child.end = nil
		gone = child.empty()
	}
	if gone {
		switch {
		case seg == "*":
			n.star = nil
		case strings.Contains(seg, "*"):
			n.globs.remove(seg)
		default:
			delete(n.lit, seg)
		}
	}
	return n.empty()
}

func (n *pnode) empty() bool {
	return n.end == nil && n.star == nil && len(n.lit) == 0 && n.globs.len() == 0 && n.tails.len() == 0
}

// match calls visit for every distinct pattern that matches topic (a topic
// of the index's feed). A stream holding several of them is visited once
// per pattern; the caller delivers once per event.
func (x *patternIndex) match(topic string, visit func(*pentry)) {
	x.root.walk(afterFirst(topic), visit)
}

// walk matches rest, the topic after the segments consumed so far.
func (n *pnode) walk(rest string, visit func(*pentry)) {
	n.tails.candidates(rest, func(t *tailEdge) {
		if t.p.Match(rest) {
			visit(t.entry)
		}
	})
	seg, after, more := strings.Cut(rest, "/")
	next := func(c *pnode) {
		if more {
			c.walk(after, visit)
		} else if c.end != nil {
			visit(c.end)
		}
	}
	if c := n.lit[seg]; c != nil {
		next(c)
	}
	if n.star != nil && seg != "" {
		next(n.star)
	}
	n.globs.candidates(seg, func(g *globEdge) {
		if g.p.Match(seg) {
			next(g.next)
		}
	})
}

// wild holds the patterns of one kind at a node — globs matched against a
// segment, or tails against the rest of a topic — indexed by their literal
// prefix (the text before the first "*"), or, when they start with a
// wildcard, by their literal suffix (after the last "*"): a string is
// tried only against the patterns whose prefix or suffix it has, found by
// one map lookup per distinct prefix or suffix length, not against all.
// The zero value is empty.
type wild[T any] struct {
	byRaw    map[string]T
	byPrefix map[string]map[string]T // prefix → raw → pattern
	bySuffix map[string]map[string]T
	prefixes map[int]int // prefix length → how many patterns have one that long
	suffixes map[int]int
	other    map[string]T // "*.*" and the like: no literal end to index by
}

// ends returns the literal prefix and suffix of a pattern.
func ends(raw string) (prefix, suffix string) {
	return raw[:strings.IndexByte(raw, '*')], raw[strings.LastIndexByte(raw, '*')+1:]
}

func (w *wild[T]) len() int { return len(w.byRaw) }

func (w *wild[T]) get(raw string) (T, bool) {
	v, ok := w.byRaw[raw]
	return v, ok
}

func (w *wild[T]) add(raw string, v T) {
	if w.byRaw == nil {
		w.byRaw, w.byPrefix, w.bySuffix = map[string]T{}, map[string]map[string]T{}, map[string]map[string]T{}
		w.prefixes, w.suffixes, w.other = map[int]int{}, map[int]int{}, map[string]T{}
	}
	w.byRaw[raw] = v
	prefix, suffix := ends(raw)
	switch {
	case prefix != "":
		put(w.byPrefix, w.prefixes, prefix, raw, v)
	case suffix != "":
		put(w.bySuffix, w.suffixes, suffix, raw, v)
	default:
		w.other[raw] = v
	}
}

func put[T any](by map[string]map[string]T, lens map[int]int, key, raw string, v T) {
	if by[key] == nil {
		by[key] = map[string]T{}
	}
	by[key][raw] = v
	lens[len(key)]++
}

func (w *wild[T]) remove(raw string) {
	if _, ok := w.byRaw[raw]; !ok {
		return
	}
	delete(w.byRaw, raw)
	prefix, suffix := ends(raw)
	switch {
	case prefix != "":
		drop(w.byPrefix, w.prefixes, prefix, raw)
	case suffix != "":
		drop(w.bySuffix, w.suffixes, suffix, raw)
	default:
		delete(w.other, raw)
	}
}

func drop[T any](by map[string]map[string]T, lens map[int]int, key, raw string) {
	delete(by[key], raw)
	if len(by[key]) == 0 {
		delete(by, key)
	}
	if lens[len(key)]--; lens[len(key)] == 0 {
		delete(lens, len(key))
	}
}

// candidates calls f for the patterns s may match: those whose literal
// prefix (or, for those starting with a wildcard, suffix) s has.
func (w *wild[T]) candidates(s string, f func(T)) {
	if len(w.byRaw) == 0 {
		return
	}
	for l := range w.prefixes {
		if l <= len(s) {
			for _, v := range w.byPrefix[s[:l]] {
				f(v)
			}
		}
	}
	for l := range w.suffixes {
		if l <= len(s) {
			for _, v := range w.bySuffix[s[len(s)-l:]] {
				f(v)
			}
		}
	}
	for _, v := range w.other {
		f(v)
	}
}
