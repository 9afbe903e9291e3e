package mercure

import (
	"slices"
	"strconv"
	"strings"
	"sync"
)

// MaxSubscribeTopics is the most topic selectors one subscriber may give
// (Mercure's limit on "topic" query parameters), and MaxClaimSelectors the
// most selectors a token's mercure.publish or mercure.subscribe may hold.
const (
	MaxSubscribeTopics = 1000
	MaxClaimSelectors  = 1000
)

// Filter is what decides which updates a subscriber receives, as Mercure
// v0.24 decides it: an update goes to the subscriber when one of its topics
// (canonical or alternate) matches one of Topics and, if the update is
// private, one of its topics (the same or another) matches one of Private.
type Filter struct {
	// Topics are the selectors the subscriber asked for (the "topic" query
	// parameters).
	Topics []string
	// Private are the selectors of the subscriber's mercure.subscribe
	// claim; nil for an anonymous subscriber, who gets public updates only.
	Private []string
}

// Matches reports whether an update with topics and private reaches a
// subscriber with f, compiling f's selectors through cache. It is the
// reference for [Matcher], which answers the same question for many
// filters at once. Selectors that do not compile match nothing. A nil cache
// compiles every selector afresh.
func (f Filter) Matches(cache *SelectorCache, topics []string, private bool) bool {
	return anyMatch(cache, f.Topics, topics) && (!private || anyMatch(cache, f.Private, topics))
}

func anyMatch(cache *SelectorCache, selectors, topics []string) bool {
	for _, s := range selectors {
		var sel *Selector
		var err error
		if cache != nil {
			sel, err = cache.Get(s)
		} else {
			sel, err = ParseSelector(s)
		}
		if err == nil && sel.MatchAny(topics) {
			return true
		}
	}
	return false
}

// Interest is a distinct [Filter] registered in a [Matcher]. Subscribers
// whose filters hold the same selectors (in any order, repeated or not)
// share one Interest, so an update is checked once for all of them.
type Interest struct {
	key     string
	topics  []*selEntry
	private []*selEntry
	refs    int
	stamp   uint64 // the Match call that last visited it; under Matcher.mu
}

// Filter returns the interest's selectors (sorted, without repeats).
func (in *Interest) Filter() Filter {
	f := Filter{Topics: make([]string, len(in.topics))}
	for i, e := range in.topics {
		f.Topics[i] = e.sel.raw
	}
	if len(in.private) > 0 {
		f.Private = make([]string, len(in.private))
		for i, e := range in.private {
			f.Private[i] = e.sel.raw
		}
	}
	return f
}

// selEntry is one distinct selector of the matcher.
type selEntry struct {
	sel       *Selector
	refs      int                    // interests holding it, as topic or private selector
	topic     map[*Interest]struct{} // interests holding it as a topic selector
	tplIdx    int                    // index in Matcher.templates while a template held as a topic selector; else -1
	evalStamp uint64                 // the Match call that last evaluated it
	hit       bool                   // whether it matched in that call
}

// matches reports whether e matches one of topics, evaluating it at most
// once per Match call cur. Matcher.mu must be held.
func (e *selEntry) matches(cur uint64, topics []string) bool {
	if e.evalStamp != cur {
		e.evalStamp, e.hit = cur, e.sel.MatchAny(topics)
	}
	return e.hit
}

// Matcher indexes the filters of a node's subscribers and tells which of
// them an update reaches, evaluating each distinct selector at most once per
// update: exact topic selectors by one map lookup per topic of the update,
// each distinct template held as a topic selector once, "*" once, and the
// private selectors only of the filters whose topic selectors matched a
// private update.
//
// A Matcher is safe for concurrent use. Match holds the matcher's lock while
// it runs (it is short: no IO, no callbacks), so Add and Remove wait for it.
type Matcher struct {
	mu        sync.Mutex
	cache     *SelectorCache
	interests map[string]*Interest
	selectors map[string]*selEntry // every distinct selector, by its text
	templates []*selEntry          // the templates held as topic selectors
	stamp     uint64
}

// NewMatcher returns an empty Matcher. It compiles selectors through cache,
// which may be shared with the authorization checks; nil means a cache of
// its own of default size.
func NewMatcher(cache *SelectorCache) *Matcher {
	if cache == nil {
		cache = NewSelectorCache(0)
	}
	return &Matcher{cache: cache, interests: make(map[string]*Interest), selectors: make(map[string]*selEntry)}
}

// Add registers f and returns its Interest; Remove it exactly once for each
// Add. It refuses (with an error matching ErrInvalid) a filter without
// topics, with more than [MaxSubscribeTopics] topics or more than
// [MaxClaimSelectors] private selectors, or with a selector
// [ParseSelector] refuses.
func (m *Matcher) Add(f Filter) (*Interest, error) {
	if len(f.Topics) == 0 {
		return nil, invalid(`Missing "topic" parameter.`)
	}
	if len(f.Topics) > MaxSubscribeTopics {
		return nil, invalid(`Too many "topic" parameters.`)
	}
	if len(f.Private) > MaxClaimSelectors {
		return nil, invalid("too many selectors in mercure.subscribe")
	}
	topics, private := canonical(f.Topics), canonical(f.Private)
	key := filterKey(topics, private)
	// Compile before taking the lock: templates are not free to compile.
	sels := make(map[string]*Selector, len(topics)+len(private))
	for _, raw := range slices.Concat(topics, private) {
		if _, ok := sels[raw]; ok {
			continue
		}
		sel, err := m.cache.Get(raw)
		if err != nil {
			return nil, err
		}
		sels[raw] = sel
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if in, ok := m.interests[key]; ok {
		in.refs++
		return in, nil
	}
	in := &Interest{key: key, refs: 1}
	for _, raw := range topics {
		e := m.entry(sels[raw])
		if len(e.topic) == 0 && e.sel.kind == KindTemplate {
			e.tplIdx = len(m.templates)
			m.templates = append(m.templates, e)
		}
		e.topic[in] = struct{}{}
		in.topics = append(in.topics, e)
	}
	for _, raw := range private {
		in.private = append(in.private, m.entry(sels[raw]))
	}
	m.interests[key] = in
	return in, nil
}

// entry returns the entry of sel, creating it, with one more reference.
// m.mu must be held.
func (m *Matcher) entry(sel *Selector) *selEntry {
	e, ok := m.selectors[sel.raw]
	if !ok {
		e = &selEntry{sel: sel, topic: make(map[*Interest]struct{}), tplIdx: -1}
		m.selectors[sel.raw] = e
	}
	e.refs++
	return e
}

// release drops one reference to e, forgetting it at zero. m.mu must be held.
func (m *Matcher) release(e *selEntry) {
	if e.refs--; e.refs == 0 {
		delete(m.selectors, e.sel.raw)
	}
}

// Remove drops one registration of in (from [Matcher.Add]).
func (m *Matcher) Remove(in *Interest) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if in.refs <= 0 || m.interests[in.key] != in {
		return
	}
	if in.refs--; in.refs > 0 {
		return
	}
	delete(m.interests, in.key)
	for _, e := range in.topics {
		delete(e.topic, in)
		if len(e.topic) == 0 && e.tplIdx >= 0 {
			i, last := e.tplIdx, len(m.templates)-1
			m.templates[i] = m.templates[last]
			m.templates[i].tplIdx = i
			m.templates[last] = nil
			m.templates = m.templates[:last]
			e.tplIdx = -1
		}
		m.release(e)
	}
	for _, e := range in.private {
		m.release(e)
	}
}

// Match appends to dst every registered Interest that an update with topics
// (canonical first, then alternates) and private reaches, each once and in
// no particular order, and returns the extended slice.
func (m *Matcher) Match(dst []*Interest, topics []string, private bool) []*Interest {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stamp++
	cur := m.stamp
	// The topic selectors that match, each found once: "*", the exact
	// ones (and templates' own texts) by lookup, then the templates.
	var hit []*selEntry
	mark := func(e *selEntry) {
		if e != nil && len(e.topic) > 0 && e.evalStamp != cur {
			e.evalStamp, e.hit = cur, true
			hit = append(hit, e)
		}
	}
	mark(m.selectors[AnySelector])
	for _, t := range topics {
		mark(m.selectors[t])
	}
	for _, e := range m.templates {
		if e.evalStamp != cur && e.matches(cur, topics) {
			hit = append(hit, e)
		}
	}
	for _, e := range hit {
		for in := range e.topic {
			if in.stamp == cur {
				continue
			}
			in.stamp = cur
			if !private || in.anyPrivate(cur, topics) {
				dst = append(dst, in)
			}
		}
	}
	return dst
}

// anyPrivate reports whether one of in's private selectors matches one of
// topics. m.mu must be held.
func (in *Interest) anyPrivate(cur uint64, topics []string) bool {
	for _, e := range in.private {
		if e.matches(cur, topics) {
			return true
		}
	}
	return false
}

// Len returns the number of distinct interests and of distinct selectors.
func (m *Matcher) Len() (interests, selectors int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.interests), len(m.selectors)
}

// canonical sorts ss and drops repeats, in a copy.
func canonical(ss []string) []string {
	if len(ss) == 0 {
		return nil
	}
	out := slices.Clone(ss)
	slices.Sort(out)
	return slices.Compact(out)
}

// filterKey identifies a canonical filter: each selector length-prefixed,
// so no selector text can forge another filter's key.
func filterKey(topics, private []string) string {
	var b strings.Builder
	for _, s := range topics {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	b.WriteByte('|')
	for _, s := range private {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	return b.String()
}
