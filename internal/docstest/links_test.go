package docstest

import (
	"net/url"
	"os"
	"path"
	"strings"
	"testing"
)

// TestLinks: every relative link of the project's Markdown resolves to a
// file or directory of the repository, and every #anchor to a heading (as
// GitHub makes anchors) or an <a id> of the page it points into.
func TestLinks(t *testing.T) {
	pages := map[string]*page{}
	get := func(rel string) *page {
		if p, ok := pages[rel]; ok {
			return p
		}
		p, err := readPage(root, rel)
		if err != nil {
			t.Errorf("%v", err)
		}
		pages[rel] = p
		return p
	}
	checked := 0
	for _, rel := range linkedPages(t) {
		p := get(rel)
		if p == nil {
			continue
		}
		for _, l := range p.links {
			u, err := url.Parse(l.dest)
			if err != nil {
				t.Errorf("%s:%d: link %q: %v", rel, l.line, l.dest, err)
				continue
			}
			if u.Scheme != "" || u.Host != "" {
				continue // not relative: not checked
			}
			checked++
			target := rel
			if u.Path != "" {
				if strings.HasPrefix(u.Path, "/") {
					t.Errorf("%s:%d: link %q: use a path relative to the page, not to the site", rel, l.line, l.dest)
					continue
				}
				target = path.Clean(path.Join(path.Dir(rel), u.Path))
				if strings.HasPrefix(target, "../") {
					t.Errorf("%s:%d: link %q leaves the repository", rel, l.line, l.dest)
					continue
				}
				if _, err := os.Stat(root + "/" + target); err != nil {
					t.Errorf("%s:%d: link %q: %s does not exist", rel, l.line, l.dest, target)
					continue
				}
			}
			if u.Fragment == "" {
				continue
			}
			if !strings.HasSuffix(target, ".md") {
				continue // an anchor into a source file (#L10): not checked
			}
			if tp := get(target); tp != nil && !tp.anchors[u.Fragment] {
				t.Errorf("%s:%d: link %q: %s has no heading with anchor #%s", rel, l.line, l.dest, target, u.Fragment)
			}
		}
	}
	if checked == 0 {
		t.Error("no relative link found: is the parser broken?")
	}
}
