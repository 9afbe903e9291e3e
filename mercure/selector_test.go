package mercure_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/ssegateway/ssegateway/mercure"
)

func mustSelector(t testing.TB, s string) *mercure.Selector {
	t.Helper()
	sel, err := mercure.ParseSelector(s)
	if err != nil {
		t.Fatalf("ParseSelector(%q): %v", s, err)
	}
	return sel
}

func TestParseSelector_kinds(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		sel  string
		kind mercure.SelectorKind
		bad  bool // a "{" that is not a template
	}{
		{"*", mercure.KindAny, false},
		{"", mercure.KindExact, false},
		{"foo", mercure.KindExact, false},
		{"https://example.com/books/1", mercure.KindExact, false},
		{"https://example.com/books/{id}", mercure.KindTemplate, false},
		{"https://example.com/{+path}", mercure.KindTemplate, false},
		{"https://example.com/users/foo/{?topic}", mercure.KindTemplate, false},
		{"/.well-known/mercure/subscriptions{/topic}{/subscriber}", mercure.KindTemplate, false},
		{"https://example.com/{a,b,c}", mercure.KindTemplate, false},
		{"https://example.com/{id", mercure.KindExact, true},       // unclosed
		{"https://example.com/{i d}", mercure.KindExact, true},     // bad variable name
		{"https://example.com/{=x}", mercure.KindExact, true},      // reserved operator
		{"https://example.com/{id}}", mercure.KindExact, true},     // "}" is not a literal
		{"https://example.com/ {id}", mercure.KindExact, true},     // a space is not a literal
		{"https://example.com/%zz/{id}", mercure.KindExact, true},  // bad %-escape
		{"https://example.com/\xff/{id}", mercure.KindExact, true}, // invalid UTF-8
		{"{", mercure.KindExact, true},
		{"will-not-match}", mercure.KindExact, false}, // no "{": never a template
		{"https://example.com/{id:3}", mercure.KindTemplate, false},
		{"https://example.com/{id:0}", mercure.KindExact, true},
		{"https://example.com/{list*}", mercure.KindTemplate, false},
	} {
		sel := mustSelector(t, c.sel)
		if sel.Kind() != c.kind {
			t.Errorf("%q: kind %s, want %s", c.sel, sel.Kind(), c.kind)
		}
		if (sel.TemplateError() != nil) != c.bad {
			t.Errorf("%q: TemplateError() = %v, want an error: %v", c.sel, sel.TemplateError(), c.bad)
		}
		if sel.String() != c.sel {
			t.Errorf("%q: String() = %q", c.sel, sel.String())
		}
		if !sel.Match(c.sel) {
			t.Errorf("%q does not match itself", c.sel)
		}
	}
}

func TestSelector_Match(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		sel, topic string
		want       bool
	}{
		{"*", "anything", true},
		{"*", "", true},
		{"foo", "foo", true},
		{"foo", "bar", false},
		{"foo", "foo ", false},
		{"foo", "Foo", false},
		{"https://example.com/{foo}/bar", "https://example.com/foo/bar", true},
		{"https://example.com/{foo}/bar", "https://example.com/foo/bar/baz", false},
		{"https://example.com/{first}/{last}", "https://example.com/kevin/dunglas", true},
		// A simple expression takes unreserved characters, "," and
		// %-escapes, but not "/" or other reserved characters.
		{"https://example.com/books/{id}", "https://example.com/books/1", true},
		{"https://example.com/books/{id}", "https://example.com/books/a%2Fb", true},
		{"https://example.com/books/{id}", "https://example.com/books/a/b", false},
		{"https://example.com/books/{id}", "https://example.com/books/a:b", false},
		{"https://example.com/books/{id}", "https://example.com/books/a,b", true},
		// Every expression may expand to nothing, as in Mercure.
		{"https://example.com/books/{id}", "https://example.com/books/", true},
		{"https://example.com/books/{id}", "https://example.com/books", false},
		// The regular expression is anchored at both ends.
		{"https://example.com/books/{id}", "xhttps://example.com/books/1", false},
		{"https://example.com/books/{id}", "https://example.com/books/1\n", false},
		// A template also matches its own text (step 2 of the spec).
		{"https://example.com/books/{id}", "https://example.com/books/{id}", true},
		{"https://example.com/{+path}", "https://example.com/a/b/c?d=e", true},
		{"https://example.com/{#frag}", "https://example.com/#a/b", true},
		{"https://example.com/{.ext}", "https://example.com/.json", true},
		{"https://example.com{/a,b}", "https://example.com/x/y", true},
		{"https://example.com{/a,b}", "https://example.com/x/y/z", false},
		{"https://example.com{/list*}", "https://example.com/x/y/z", true},
		// The spec's example of private updates through alternate topics.
		{"https://example.com/users/foo/{?topic}", "https://example.com/users/foo/?topic=https%3A%2F%2Fexample.com%2Fbooks%2F1", true},
		{"https://example.com/users/foo/{?topic}", "https://example.com/users/bar/?topic=https%3A%2F%2Fexample.com%2Fbooks%2F1", false},
		// Mercure's recommended selector for subscription events.
		{"/.well-known/mercure/subscriptions{/topic}{/subscriber}",
			"/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2F%7Bselector%7D/urn%3Auuid%3Abb3de268-05b0-4c65-b44e-8f9acefc29d6", true},
		{"/.well-known/mercure/subscriptions{/topic}{/subscriber}", "/.well-known/mercure/subscriptions", true},
		{"/.well-known/mercure/subscriptions{/topic}{/subscriber}", "/.well-known/mercure/subscriptions/a/b/c", false},
		// Not a template: matched as an exact string only.
		{"https://example.com/{id", "https://example.com/{id", true},
		{"https://example.com/{id", "https://example.com/1", false},
		{"https://example.com/{i d}", "https://example.com/x", false},
		// Invalid UTF-8 is compared byte for byte.
		{"a\xffb", "a\xffb", true},
		{"https://example.com/{id}", "https://example.com/\xff", false},
	} {
		if got := mustSelector(t, c.sel).Match(c.topic); got != c.want {
			t.Errorf("%q.Match(%q) = %v, want %v", c.sel, c.topic, got, c.want)
		}
	}
}

func TestParseSelector_limits(t *testing.T) {
	t.Parallel()
	long := "https://example.com/" + strings.Repeat("a", mercure.MaxTopicBytes)
	vars := "https://example.com/{" + strings.TrimSuffix(strings.Repeat("v,", mercure.MaxTemplateVariables+1), ",") + "}"
	exprs := "https://example.com/" + strings.Repeat("{v}", mercure.MaxTemplateVariables+1)
	// Over 1001 variables in one expression: the library's MustCompile
	// would panic on its repeat count; the limits refuse it first.
	huge := "{" + strings.TrimSuffix(strings.Repeat("a,", 1002), ",") + "}"
	for _, s := range []string{long, vars, exprs, huge} {
		_, err := mercure.ParseSelector(s)
		var re *mercure.RequestError
		if !errors.Is(err, mercure.ErrInvalid) || !errors.As(err, &re) || re.Status != 400 {
			t.Errorf("ParseSelector(%.40q...) = %v, want a 400 matching ErrInvalid", s, err)
		}
	}
	ok := "https://example.com/{" + strings.TrimSuffix(strings.Repeat("v,", mercure.MaxTemplateVariables), ",") + "}"
	if sel := mustSelector(t, ok); sel.Kind() != mercure.KindTemplate {
		t.Errorf("%d variables: kind %s", mercure.MaxTemplateVariables, sel.Kind())
	}
	// Many variables in an invalid template are no problem: it is not a
	// template.
	if sel := mustSelector(t, strings.TrimSuffix(huge, "}")); sel.Kind() != mercure.KindExact {
		t.Errorf("unclosed huge template: kind %s", sel.Kind())
	}
}

func TestSelectorCache_Get(t *testing.T) {
	t.Parallel()
	c := mercure.NewSelectorCache(3)
	a1, _ := c.Get("https://example.com/{a}")
	a2, _ := c.Get("https://example.com/{a}")
	if a1 != a2 {
		t.Error("a cached selector was compiled again")
	}
	for i := range 5 {
		if _, err := c.Get(fmt.Sprintf("https://example.com/%d/{x}", i)); err != nil {
			t.Fatal(err)
		}
	}
	if c.Len() != 3 {
		t.Errorf("Len() = %d, want the size 3", c.Len())
	}
	if a3, _ := c.Get("https://example.com/{a}"); a3 == a1 {
		t.Error("the least recently used selector was not evicted")
	}
	if _, err := c.Get(strings.Repeat("x", mercure.MaxTopicBytes+1)); err == nil {
		t.Error("an over-long selector was accepted")
	}
	if any1, _ := c.Get("*"); any1.Kind() != mercure.KindAny {
		t.Error("* is not KindAny")
	}
}

func TestSelectorCache_concurrent(t *testing.T) {
	t.Parallel()
	c := mercure.NewSelectorCache(8)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				s := fmt.Sprintf("https://example.com/%d/{x}", (g+i)%16)
				sel, err := c.Get(s)
				if err != nil || !sel.Match(fmt.Sprintf("https://example.com/%d/y", (g+i)%16)) {
					t.Errorf("Get(%q) = %v, %v", s, sel, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if c.Len() > 8 {
		t.Errorf("Len() = %d over the size", c.Len())
	}
}
