package mercure

import (
	"container/list"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/yosida95/uritemplate/v3"
)

const (
	// MaxTopicBytes is the longest topic or topic selector accepted.
	// Mercure sets none; topics are IRIs, and 2 KiB holds any sensible one.
	MaxTopicBytes = 2048
	// MaxTemplateVariables is the most variables a URI template selector may
	// have (counting every variable of every expression). It bounds the size
	// of the template's regular expression, so matching an update against a
	// subscriber's selector costs little whatever the subscriber sent.
	MaxTemplateVariables = 32
	// AnySelector is the reserved selector that matches every topic.
	AnySelector = "*"
)

// SelectorKind says how a [Selector] matches.
type SelectorKind uint8

const (
	// KindExact matches one topic, byte for byte.
	KindExact SelectorKind = iota
	// KindTemplate matches the topics an RFC 6570 URI template describes,
	// and the template's own text.
	KindTemplate
	// KindAny matches every topic: the reserved selector "*".
	KindAny
)

func (k SelectorKind) String() string {
	switch k {
	case KindExact:
		return "exact"
	case KindTemplate:
		return "template"
	case KindAny:
		return "any"
	}
	return fmt.Sprintf("SelectorKind(%d)", k)
}

// Selector is a compiled topic selector. It matches a topic as Mercure
// v0.24 does:
//
//  1. the selector "*" matches every topic;
//  2. a selector matches the topic equal to it, byte for byte;
//  3. a selector that contains "{" and parses as an RFC 6570 URI template
//     (github.com/yosida95/uritemplate/v3, the parser Mercure uses) matches
//     every topic its regular expression (that library's Template.Regexp)
//     matches in full;
//  4. nothing else matches.
//
// A selector that contains "{" but is not a valid template is not an error:
// the protocol allows any string as a selector, and Mercure matches such a
// selector as an exact topic. [Selector.TemplateError] says why it is not a
// template.
//
// A Selector is immutable and safe for concurrent use.
type Selector struct {
	raw    string
	kind   SelectorKind
	re     *regexp.Regexp
	prefix string // a template's literal text before its first expression
	tplErr error
}

// ParseSelector compiles s. It refuses (with ErrInvalid) only a selector
// longer than [MaxTopicBytes] or a valid template with more than
// [MaxTemplateVariables] variables; every other string is a selector.
func ParseSelector(s string) (*Selector, error) {
	if len(s) > MaxTopicBytes {
		return nil, invalid("topic selector %q is %d bytes, at most %d allowed", truncate(s, 64), len(s), MaxTopicBytes)
	}
	if s == AnySelector {
		return &Selector{raw: s, kind: KindAny}, nil
	}
	sel := &Selector{raw: s, kind: KindExact}
	// As Mercure: a selector without "{" is never treated as a template
	// (a template of literals only would match just itself anyway).
	if !strings.Contains(s, "{") {
		return sel, nil
	}
	tpl, err := uritemplate.New(s)
	if err != nil {
		sel.tplErr = err
		return sel, nil
	}
	if n := templateVariables(s); n > MaxTemplateVariables {
		return nil, invalid("topic selector %q is a URI template with %d variables, at most %d allowed",
			truncate(s, 64), n, MaxTemplateVariables)
	}
	re, err := compileTemplate(tpl)
	if err != nil {
		return nil, invalid("topic selector %q: %v", truncate(s, 64), err)
	}
	// The regular expression starts with the template's literals before the
	// first "{", quoted: a topic without them cannot match, and most
	// topics are refused by that test alone.
	sel.kind, sel.re, sel.prefix = KindTemplate, re, s[:strings.IndexByte(s, '{')]
	return sel, nil
}

// compileTemplate builds the template's regular expression. The library
// compiles it with regexp.MustCompile, which panics on an expression Go's
// regexp refuses (a repeat count over 1000, from an expression of more than
// 1001 variables). The variable limit keeps that from happening; the recover
// keeps a surprise from crashing the node.
func compileTemplate(tpl *uritemplate.Template) (re *regexp.Regexp, err error) {
	defer func() {
		if r := recover(); r != nil {
			re, err = nil, fmt.Errorf("URI template cannot be compiled: %v", r)
		}
	}()
	return tpl.Regexp(), nil
}

// templateVariables counts the variables of a valid template: one per
// expression plus one per comma inside it (literals cannot contain braces).
func templateVariables(s string) int {
	n, in := 0, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '{':
			in = true
			n++
		case '}':
			in = false
		case ',':
			if in {
				n++
			}
		}
	}
	return n
}

// String returns the selector as written.
func (s *Selector) String() string { return s.raw }

// Kind says how s matches.
func (s *Selector) Kind() SelectorKind { return s.kind }

// TemplateError is why a selector containing "{" is matched as an exact
// topic rather than as a URI template; nil otherwise.
func (s *Selector) TemplateError() error { return s.tplErr }

// Match reports whether topic matches s.
func (s *Selector) Match(topic string) bool {
	switch {
	case s.kind == KindAny, topic == s.raw:
		return true
	case s.kind == KindTemplate:
		return strings.HasPrefix(topic, s.prefix) && s.re.MatchString(topic)
	}
	return false
}

// MatchAny reports whether any of topics matches s.
func (s *Selector) MatchAny(topics []string) bool {
	for _, t := range topics {
		if s.Match(t) {
			return true
		}
	}
	return false
}

// DefaultSelectorCacheSize is the number of compiled selectors a
// [SelectorCache] keeps when none is configured.
const DefaultSelectorCacheSize = 10000

// SelectorCache compiles selectors and keeps the most recently used ones, so
// the selectors of tokens seen again and again (mercure.publish,
// mercure.subscribe) are compiled once. It is safe for concurrent use; its
// memory is bounded by its size and [MaxTopicBytes].
type SelectorCache struct {
	mu    sync.Mutex
	size  int
	order *list.List // of *Selector, most recent first
	byRaw map[string]*list.Element
}

// NewSelectorCache returns a cache of up to size selectors; size <= 0 means
// [DefaultSelectorCacheSize].
func NewSelectorCache(size int) *SelectorCache {
	if size <= 0 {
		size = DefaultSelectorCacheSize
	}
	return &SelectorCache{size: size, order: list.New(), byRaw: make(map[string]*list.Element)}
}

// Get returns the compiled selector s, compiling it if the cache does not
// hold it. Errors are those of [ParseSelector] and are not cached.
func (c *SelectorCache) Get(s string) (*Selector, error) {
	if s == AnySelector {
		return anySelector, nil
	}
	c.mu.Lock()
	if e, ok := c.byRaw[s]; ok {
		c.order.MoveToFront(e)
		c.mu.Unlock()
		return e.Value.(*Selector), nil
	}
	c.mu.Unlock()
	// Compile outside the lock; two goroutines may compile the same
	// selector at once, and the second keeps the first's.
	sel, err := ParseSelector(s)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byRaw[s]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*Selector), nil
	}
	c.byRaw[s] = c.order.PushFront(sel)
	for c.order.Len() > c.size {
		old := c.order.Remove(c.order.Back()).(*Selector)
		delete(c.byRaw, old.raw)
	}
	return sel, nil
}

// Len is the number of selectors cached.
func (c *SelectorCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// anySelector is immutable: sharing it is safe.
var anySelector = &Selector{raw: AnySelector, kind: KindAny}
