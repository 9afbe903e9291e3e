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
	globs map[string]*globEdge
	tails map[string]*tailEdge
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
			if n.tails == nil {
				n.tails = make(map[string]*tailEdge)
			}
			p, _ := auth.ParsePattern(rest) // a piece of a valid pattern is valid
			n.tails[rest] = &tailEdge{p: p, entry: e}
			return
		case seg == "*":
			if n.star == nil {
				n.star = &pnode{}
			}
			n = n.star
		case strings.Contains(seg, "*"):
			if n.globs == nil {
				n.globs = make(map[string]*globEdge)
			}
			g := n.globs[seg]
			if g == nil {
				p, _ := auth.ParsePattern(seg)
				g = &globEdge{p: p, next: &pnode{}}
				n.globs[seg] = g
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
		delete(n.tails, rest)
		return n.empty()
	case seg == "*":
		child = n.star
	case strings.Contains(seg, "*"):
		if g := n.globs[seg]; g != nil {
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
			delete(n.globs, seg)
		default:
			delete(n.lit, seg)
		}
	}
	return n.empty()
}

func (n *pnode) empty() bool {
	return n.end == nil && n.star == nil && len(n.lit) == 0 && len(n.globs) == 0 && len(n.tails) == 0
}

// match calls visit for every distinct pattern that matches topic (a topic
// of the index's feed). A stream holding several of them is visited once
// per pattern; the caller delivers once per event.
func (x *patternIndex) match(topic string, visit func(*pentry)) {
	x.root.walk(afterFirst(topic), visit)
}

// walk matches rest, the topic after the segments consumed so far.
func (n *pnode) walk(rest string, visit func(*pentry)) {
	for _, t := range n.tails {
		if t.p.Match(rest) {
			visit(t.entry)
		}
	}
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
	for _, g := range n.globs {
		if g.p.Match(seg) {
			next(g.next)
		}
	}
}
