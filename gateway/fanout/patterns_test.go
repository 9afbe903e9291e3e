package fanout

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ssegateway/ssegateway/auth"
	"github.com/ssegateway/ssegateway/internal/memhistory"
	"github.com/ssegateway/ssegateway/internal/testutil"
)

// TestPatternIndex_matchesLikeAuth holds the index to auth's matcher: for
// random patterns and topics of one feed, the index finds exactly the
// patterns that match, also after patterns are removed.
func TestPatternIndex_matchesLikeAuth(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	segs := []string{"a", "b", "ab", "*", "**", "a*", "*b", "x:*", "a**", "**b", "*.*"}
	topicSegs := []string{"a", "b", "ab", "aab", "x:1", "1.2", "", "abb"}
	pattern := func() string {
		n := 1 + r.IntN(3)
		parts := []string{"f"}
		for range n {
			parts = append(parts, segs[r.IntN(len(segs))])
		}
		return strings.Join(parts, "/")
	}
	topic := func() string {
		n := 1 + r.IntN(4)
		parts := []string{"f"}
		for range n {
			parts = append(parts, topicSegs[r.IntN(len(topicSegs))])
		}
		return strings.Join(parts, "/")
	}
	x := NewPatternIndex().(*patternIndex)
	name := map[*Member]string{}
	held := map[string]*Member{}
	for round := range 400 {
		raw := pattern()
		p, err := auth.ParsePattern(raw)
		if err != nil {
			t.Fatalf("pattern %q: %v", raw, err)
		}
		if m, ok := held[raw]; ok && round%3 == 0 {
			x.remove(p, m)
			delete(held, raw)
		} else if !ok {
			m := &Member{}
			name[m] = raw
			x.add(p, m)
			held[raw] = m
		}
		for range 20 {
			tp := topic()
			var want, got []string
			for raw := range held {
				if mustPattern(t, raw).Match(tp) {
					want = append(want, raw)
				}
			}
			x.match(tp, func(e *pentry) {
				for m := range e.members {
					got = append(got, name[m])
				}
			})
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("topic %q: index found %q, auth matches %q", tp, got, want)
			}
		}
	}
	// Removing every pattern leaves the trie empty.
	for raw, m := range held {
		x.remove(mustPattern(t, raw), m)
	}
	if !x.root.empty() || len(x.entries) != 0 {
		t.Fatalf("index not empty after removing every pattern: %+v", x.root)
	}
}

func mustPattern(t *testing.T, s string) auth.Pattern {
	t.Helper()
	p, err := auth.ParsePattern(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func patterns(t *testing.T, ss ...string) []auth.Pattern {
	t.Helper()
	ps := make([]auth.Pattern, len(ss))
	for i, s := range ss {
		ps[i] = mustPattern(t, s)
	}
	return ps
}

// TestHub_feed_deliversByPattern: a feed's event reaches exactly the
// streams with a matching pattern, once per stream however many of its
// patterns match, in the form with its topic; a gap in the feed is repaired
// from the feed's history like a topic's.
func TestHub_feed_deliversByPattern(t *testing.T) {
	hist := memhistory.New()
	h, _, _ := startHub(t, hist, time.Minute)
	one := NewOutbox([]Want{{Source: "orders/**", Filter: patterns(t, "orders/*")}}, NamedForm{}, 1<<20)
	both := NewOutbox([]Want{{Source: "orders/**", Filter: patterns(t, "orders/*", "orders/**", "orders/1")}}, NamedForm{}, 1<<20)
	deep := NewOutbox([]Want{{Source: "orders/**", Filter: patterns(t, "orders/*/items")}}, NamedForm{}, 1<<20)
	for _, o := range []*Outbox{one, both, deep} {
		joinLive(t, h, o)
	}
	topics := map[int]string{1: "orders/1", 2: "orders/1/x", 3: "orders/2/items", 4: "orders/", 5: "orders/3"}
	for ms := 1; ms <= 5; ms++ {
		env := hist.AddTo("orders/**", topics[ms], ms, 1)[0]
		if ms != 4 { // 4 is lost by pub/sub: repaired from the history
			h.HandleEvent("orders/**", env)
		}
	}
	named := func(o *Outbox) func() []string {
		var got []string
		return func() []string {
			items, _ := o.Take()
			for _, q := range items {
				got = append(got, q.Frame.Topic)
				if !strings.Contains(string(q.Frame.Bytes(NamedForm{})), `"topic":"`+q.Frame.Topic+`"`) {
					t.Errorf("frame of %s lacks its topic: %q", q.Frame.Topic, q.Frame.Bytes(NamedForm{}))
				}
			}
			return got
		}
	}
	gOne, gBoth, gDeep := named(one), named(both), named(deep)
	testutil.WaitFor(t, "the repaired feed", func() bool { return len(gBoth()) == 4 })
	if got := gOne(); !slices.Equal(got, []string{"orders/1", "orders/3"}) {
		t.Errorf("orders/* got %v", got)
	}
	if got := gBoth(); !slices.Equal(got, []string{"orders/1", "orders/1/x", "orders/2/items", "orders/3"}) {
		t.Errorf("orders/*, orders/**, orders/1 got %v (each event once)", got)
	}
	if got := gDeep(); !slices.Equal(got, []string{"orders/2/items"}) {
		t.Errorf("orders/*/items got %v", got)
	}
}
