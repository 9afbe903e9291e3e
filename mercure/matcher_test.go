package mercure_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ssegateway/ssegateway/mercure"
)

func add(t testing.TB, m *mercure.Matcher, f mercure.Filter) *mercure.Interest {
	t.Helper()
	in, err := m.Add(f)
	if err != nil {
		t.Fatalf("Add(%v): %v", f, err)
	}
	return in
}

func matched(m *mercure.Matcher, topics []string, private bool) []*mercure.Interest {
	return m.Match(nil, topics, private)
}

// The cases Mercure's conformance suite checks, as filters: what an
// anonymous subscriber with these selectors receives.
func TestMatcher_Match_conformanceCases(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name      string
		topics    []string // the update's
		selectors []string // the subscriber's
		private   bool
		want      bool
	}{
		{"raw string", []string{"r0"}, []string{"r0"}, false, true},
		{"multiple topics", []string{"other", "r1"}, []string{"r1"}, false, true},
		{"multiple topic selectors", []string{"r2"}, []string{"foo", "r2"}, false, true},
		{"URI", []string{"https://example.net/foo/r3"}, []string{"https://example.net/foo/r3"}, false, true},
		{"URI template", []string{"https://example.net/foo/r4"}, []string{"https://example.net/foo/{random}"}, false, true},
		{"nonmatching raw string", []string{"will-not-match}"}, []string{"another-name"}, false, false},
		{"nonmatching URI", []string{"https://example.net/foo/will-not-match}"}, []string{"https://example.net/foo/another-name"}, false, false},
		{"nonmatching URI template", []string{"https://example.net/foo/will-not-match}"}, []string{"https://example.net/bar/{var}"}, false, false},
		{"private raw string", []string{"r0"}, []string{"r0"}, true, false},
		{"private URI", []string{"https://example.net/foo/r3"}, []string{"https://example.net/foo/r3"}, true, false},
		{"private URI template", []string{"https://example.net/foo/r4"}, []string{"https://example.net/foo/{random}"}, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := mercure.NewMatcher(nil)
			in := add(t, m, mercure.Filter{Topics: c.selectors})
			got := slices.Contains(matched(m, c.topics, c.private), in)
			if got != c.want {
				t.Errorf("received = %v, want %v", got, c.want)
			}
		})
	}
}

func TestMatcher_Match_private(t *testing.T) {
	t.Parallel()
	m := mercure.NewMatcher(nil)
	books := "https://example.com/books/{id}"
	anon := add(t, m, mercure.Filter{Topics: []string{books}})
	foo := add(t, m, mercure.Filter{Topics: []string{books}, Private: []string{"https://example.com/users/foo/{?topic}"}})
	all := add(t, m, mercure.Filter{Topics: []string{books}, Private: []string{"*"}})
	// A token whose mercure.subscribe is empty unlocks nothing: the same
	// filter as an anonymous subscriber's.
	if none := add(t, m, mercure.Filter{Topics: []string{books}, Private: []string{}}); none != anon {
		t.Error("an empty mercure.subscribe made another interest than none")
	}
	canonicalOnly := add(t, m, mercure.Filter{Topics: []string{books}, Private: []string{"https://example.com/books/1"}})

	// The spec's example: the canonical topic matches the subscription, an
	// alternate matches the claim.
	alt := "https://example.com/users/foo/?topic=https%3A%2F%2Fexample.com%2Fbooks%2F1"
	check := func(topics []string, private bool, want ...*mercure.Interest) {
		t.Helper()
		got := matched(m, topics, private)
		if len(got) != len(want) {
			t.Errorf("%v private=%v: %d interests, want %d", topics, private, len(got), len(want))
		}
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("%v private=%v: %v missing", topics, private, w.Filter())
			}
		}
	}
	check([]string{"https://example.com/books/1", alt}, true, foo, all, canonicalOnly)
	check([]string{"https://example.com/books/1", alt}, false, anon, foo, all, canonicalOnly)
	check([]string{"https://example.com/books/2"}, true, all)
	check([]string{"https://example.com/books/1"}, true, all, canonicalOnly)
	// Matching the claim is not enough: the subscription must match too.
	check([]string{alt}, true)
	check([]string{"https://example.com/authors/1"}, false)
}

func TestMatcher_Add_sharesEqualFilters(t *testing.T) {
	t.Parallel()
	m := mercure.NewMatcher(nil)
	a := add(t, m, mercure.Filter{Topics: []string{"b", "a", "b"}, Private: []string{"y", "x"}})
	b := add(t, m, mercure.Filter{Topics: []string{"a", "b"}, Private: []string{"x", "y", "x"}})
	c := add(t, m, mercure.Filter{Topics: []string{"a", "b"}}) // anonymous: another filter
	if a != b {
		t.Error("equal filters got two interests")
	}
	if a == c {
		t.Error("a filter with private selectors shares an anonymous one's interest")
	}
	if f := a.Filter(); !slices.Equal(f.Topics, []string{"a", "b"}) || !slices.Equal(f.Private, []string{"x", "y"}) {
		t.Errorf("Filter() = %v", f)
	}
	if n, s := m.Len(); n != 2 || s != 4 {
		t.Errorf("Len() = %d interests, %d selectors; want 2, 4", n, s)
	}
	m.Remove(a)
	if got := matched(m, []string{"a"}, false); !slices.Contains(got, b) {
		t.Error("removing one of two registrations removed the interest")
	}
	m.Remove(b)
	m.Remove(b) // one too many: ignored
	if got := matched(m, []string{"a"}, false); len(got) != 1 || got[0] != c {
		t.Errorf("after removing both: %v", got)
	}
	m.Remove(c)
	if n, s := m.Len(); n != 0 || s != 0 {
		t.Errorf("after removing everything: %d interests, %d selectors", n, s)
	}
	if got := matched(m, []string{"a"}, false); len(got) != 0 {
		t.Errorf("an empty matcher matched %v", got)
	}
}

func TestMatcher_Add_refuses(t *testing.T) {
	t.Parallel()
	m := mercure.NewMatcher(nil)
	many := make([]string, mercure.MaxSubscribeTopics+1)
	for i := range many {
		many[i] = fmt.Sprint(i)
	}
	for _, f := range []mercure.Filter{
		{},
		{Topics: many},
		{Topics: []string{"a"}, Private: many},
		{Topics: []string{strings.Repeat("a", mercure.MaxTopicBytes+1)}},
		{Topics: []string{"a"}, Private: []string{"{" + strings.Repeat("v,", 40) + "v}"}},
	} {
		if _, err := m.Add(f); !errors.Is(err, mercure.ErrInvalid) {
			t.Errorf("Add(%.60v) = %v, want ErrInvalid", f, err)
		}
	}
	if _, err := m.Add(mercure.Filter{}); err.Error() != `Missing "topic" parameter.` {
		t.Errorf("no topics: %q, want Mercure's message", err)
	}
	if n, s := m.Len(); n != 0 || s != 0 {
		t.Errorf("refused filters left %d interests, %d selectors", n, s)
	}
}

// randomFilters draws filters from a small pool of selectors, so that they
// share selectors, templates overlap and exact selectors equal templates'
// texts.
var selectorPool = []string{
	"*", "a", "b", "c", "https://example.com/books/1", "https://example.com/books/2",
	"https://example.com/books/{id}", "https://example.com/{kind}/1", "https://example.com/{+rest}",
	"https://example.com/users/{u}/{?topic}", "https://example.com/users/u1/?topic=b1",
	"https://example.com/{broken", "{x}", "https://example.com/books/{id}{?q}",
}

var topicPool = []string{
	"a", "b", "c", "d", "https://example.com/books/1", "https://example.com/books/2",
	"https://example.com/books/x%2Fy", "https://example.com/authors/1", "https://example.com/a/b/c",
	"https://example.com/users/u1/?topic=b1", "https://example.com/books/{id}", "https://example.com/{broken",
	"x", "", "https://example.com/books/1?q=2",
}

func pick(r *rand.Rand, pool []string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = pool[r.IntN(len(pool))]
	}
	return out
}

// The matcher answers for many filters at once exactly what Filter.Matches
// answers for each, while filters come and go.
func TestMatcher_Match_agreesWithFilterMatches(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	m := mercure.NewMatcher(nil)
	cache := mercure.NewSelectorCache(0)
	type reg struct {
		f  mercure.Filter
		in *mercure.Interest
	}
	var regs []reg
	for step := range 3000 {
		switch {
		case len(regs) < 30 || len(regs) < 80 && r.IntN(2) == 0:
			f := mercure.Filter{Topics: pick(r, selectorPool, 1+r.IntN(3))}
			if r.IntN(2) == 0 {
				f.Private = pick(r, selectorPool, r.IntN(3))
			}
			regs = append(regs, reg{f, add(t, m, f)})
		default:
			i := r.IntN(len(regs))
			m.Remove(regs[i].in)
			regs = slices.Delete(regs, i, i+1)
		}
		topics := pick(r, topicPool, 1+r.IntN(3))
		private := r.IntN(2) == 0
		got := matched(m, topics, private)
		seen := make(map[*mercure.Interest]bool, len(got))
		for _, in := range got {
			if seen[in] {
				t.Fatalf("step %d: an interest returned twice", step)
			}
			seen[in] = true
		}
		for _, rg := range regs {
			want := rg.f.Matches(cache, topics, private)
			if seen[rg.in] != want {
				t.Fatalf("step %d: filter %v, update %q private=%v: matched %v, want %v",
					step, rg.f, topics, private, !want, want)
			}
		}
	}
}

func TestMatcher_concurrent(t *testing.T) {
	t.Parallel()
	m := mercure.NewMatcher(nil)
	keep := add(t, m, mercure.Filter{Topics: []string{"https://example.com/books/{id}"}})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 300 {
				in := add(t, m, mercure.Filter{Topics: []string{fmt.Sprintf("https://example.com/%d/{x}", (g+i)%7)}})
				if got := matched(m, []string{"https://example.com/books/9"}, false); !slices.Contains(got, keep) {
					t.Error("a registered interest was not matched")
					return
				}
				m.Remove(in)
			}
		})
	}
	wg.Wait()
	if n, _ := m.Len(); n != 1 {
		t.Errorf("%d interests left, want 1", n)
	}
}

func BenchmarkMatcher_Match(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprintf("interests=%d", n), func(b *testing.B) {
			m := mercure.NewMatcher(nil)
			for i := range n {
				// Every subscriber on its own book, a few on templates,
				// all with a private claim of their own.
				f := mercure.Filter{Topics: []string{fmt.Sprintf("https://example.com/books/%d", i)},
					Private: []string{fmt.Sprintf("https://example.com/users/%d/{?topic}", i%50)}}
				if i%100 == 0 {
					f.Topics = append(f.Topics, fmt.Sprintf("https://example.com/shelves/%d/{book}", i))
				}
				if _, err := m.Add(f); err != nil {
					b.Fatal(err)
				}
			}
			topics := []string{"https://example.com/books/42", "https://example.com/users/7/?topic=https%3A%2F%2Fexample.com%2Fbooks%2F42"}
			var dst []*mercure.Interest
			b.ReportAllocs()
			for b.Loop() {
				dst = m.Match(dst[:0], topics, true)
			}
		})
	}
}
