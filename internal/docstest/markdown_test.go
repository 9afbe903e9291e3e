package docstest

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"unicode"
)

// page is a Markdown file as these tests read it: fenced blocks, the
// markers in front of them, headings, links, tables and the code spans of
// its prose. It is a line-based reading of the Markdown the project writes,
// not a full CommonMark parser.
type page struct {
	path    string // relative to the repository root
	text    string
	blocks  []block
	steps   []step // markers in the order they appear
	anchors map[string]bool
	links   []link
	tables  []table
	spans   []span // code spans outside fenced blocks
}

// block is a fenced code block.
type block struct {
	line int    // of the opening fence, from 1
	info string // the fence's info string: sh, text, js, …
	text string // the content, without the fences and the fence's indentation
}

// step is a marker and the fenced block that follows it (if the marker
// takes one).
type step struct {
	line  int
	verb  string            // run, output, ctrl-c
	opts  map[string]string // key=value options
	block *block
}

type link struct {
	line int
	dest string
}

// table is a Markdown table; flags is the command named by a
// <!-- flags: ... --> marker in front of it ("gateway", "gateway publish"),
// or "".
type table struct {
	line   int
	flags  string
	header []string
	rows   []row
}

type row struct {
	line  int
	cells []string
}

type span struct {
	line int
	text string
}

var (
	fenceRe   = regexp.MustCompile("^(\\s*)(`{3,}|~{3,})\\s*([^`\\s]*)")
	markerRe  = regexp.MustCompile(`^\s*<!--\s*(run|output|ctrl-c|flags)\b\s*:?\s*(.*?)\s*-->\s*$`)
	headingRe = regexp.MustCompile(`^(#{1,6})\s+(.*?)\s*#*\s*$`)
	anchorRe  = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
	refDefRe  = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?`)
	tableRe   = regexp.MustCompile(`^\s*\|`)
	delimRe   = regexp.MustCompile(`^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$`)
	optionRe  = regexp.MustCompile(`(\w+)=(\S+)`)
)

// readPage reads and parses a Markdown file.
func readPage(root, rel string) (*page, error) {
	b, err := os.ReadFile(root + "/" + rel)
	if err != nil {
		return nil, err
	}
	return parsePage(rel, string(b))
}

func parsePage(rel, text string) (*page, error) {
	p := &page{path: rel, text: text, anchors: map[string]bool{}}
	lines := strings.Split(text, "\n")
	slugs := map[string]int{}
	var pending *step      // a marker waiting for its block
	var flagsMarker string // a flags marker waiting for its table
	var cur *table
	for i := 0; i < len(lines); i++ {
		ln := lines[i]
		n := i + 1
		if m := fenceRe.FindStringSubmatch(ln); m != nil {
			indent, fence := len(m[1]), m[2]
			b := block{line: n, info: m[3]}
			var body []string
			closed := false
			for i++; i < len(lines); i++ {
				l := lines[i]
				if t := strings.TrimSpace(l); strings.HasPrefix(t, fence[:3]) && strings.Trim(t, fence[:1]) == "" && len(t) >= len(fence) {
					closed = true
					break
				}
				for k := 0; k < indent && strings.HasPrefix(l, " "); k++ {
					l = l[1:]
				}
				body = append(body, l)
			}
			if !closed {
				return nil, fmt.Errorf("%s:%d: fenced block never closed", rel, n)
			}
			b.text = strings.Join(body, "\n")
			p.blocks = append(p.blocks, b)
			if pending != nil {
				pending.block = &p.blocks[len(p.blocks)-1]
				p.steps = append(p.steps, *pending)
				pending = nil
			}
			cur = nil
			continue
		}
		if m := markerRe.FindStringSubmatch(ln); m != nil {
			if pending != nil {
				return nil, fmt.Errorf("%s:%d: marker <!-- %s --> is not followed by a fenced block", rel, pending.line, pending.verb)
			}
			if flagsMarker != "" {
				return nil, fmt.Errorf("%s:%d: <!-- flags --> marker is not followed by a table", rel, n)
			}
			verb, args := m[1], m[2]
			if verb == "flags" {
				if !strings.HasPrefix(args, "gateway") {
					return nil, fmt.Errorf("%s:%d: want <!-- flags: gateway [COMMAND] -->", rel, n)
				}
				flagsMarker = args
				continue
			}
			s := step{line: n, verb: verb, opts: map[string]string{}}
			for _, o := range optionRe.FindAllStringSubmatch(args, -1) {
				s.opts[o[1]] = o[2]
			}
			if rest := strings.TrimSpace(optionRe.ReplaceAllString(args, "")); rest != "" {
				return nil, fmt.Errorf("%s:%d: marker %q: want key=value options, not %q", rel, n, verb, rest)
			}
			if verb == "ctrl-c" {
				p.steps = append(p.steps, s)
			} else {
				pending = &s
			}
			continue
		}
		if pending != nil && strings.TrimSpace(ln) != "" {
			return nil, fmt.Errorf("%s:%d: marker <!-- %s --> must be followed by a fenced block (only blank lines between)", rel, pending.line, pending.verb)
		}
		if tableRe.MatchString(ln) {
			if cur == nil {
				if i+1 >= len(lines) || !delimRe.MatchString(lines[i+1]) {
					continue // a line that starts with | but is no table
				}
				p.tables = append(p.tables, table{line: n, flags: flagsMarker, header: splitRow(ln)})
				flagsMarker = ""
				cur = &p.tables[len(p.tables)-1]
				i++ // the delimiter row
			} else {
				cur.rows = append(cur.rows, row{line: n, cells: splitRow(ln)})
			}
		} else {
			cur = nil
			if flagsMarker != "" && strings.TrimSpace(ln) != "" {
				return nil, fmt.Errorf("%s:%d: <!-- flags --> marker must be followed by a table", rel, n)
			}
		}
		if m := headingRe.FindStringSubmatch(ln); m != nil {
			s := slug(m[2])
			if k := slugs[s]; k > 0 {
				p.anchors[fmt.Sprintf("%s-%d", s, k)] = true
			} else {
				p.anchors[s] = true
			}
			slugs[s]++
		}
		for _, m := range anchorRe.FindAllStringSubmatch(ln, -1) {
			p.anchors[m[1]] = true
		}
		if m := refDefRe.FindStringSubmatch(ln); m != nil {
			p.links = append(p.links, link{line: n, dest: m[1]})
		}
		prose, spans := splitCode(ln)
		for _, s := range spans {
			p.spans = append(p.spans, span{line: n, text: s})
		}
		for _, d := range inlineLinks(prose) {
			p.links = append(p.links, link{line: n, dest: d})
		}
	}
	if pending != nil {
		return nil, fmt.Errorf("%s:%d: marker <!-- %s --> is not followed by a fenced block", rel, pending.line, pending.verb)
	}
	return p, nil
}

// splitRow splits a table row into its trimmed cells; a | inside a code
// span or escaped as \| does not split.
func splitRow(ln string) []string {
	ln = strings.TrimSpace(ln)
	ln = strings.TrimPrefix(ln, "|")
	if strings.HasSuffix(ln, "|") && !strings.HasSuffix(ln, `\|`) {
		ln = ln[:len(ln)-1]
	}
	var cells []string
	var b strings.Builder
	inCode := false
	for i := 0; i < len(ln); i++ {
		c := ln[i]
		switch {
		case c == '\\' && i+1 < len(ln) && ln[i+1] == '|':
			b.WriteByte('|')
			i++
		case c == '`':
			inCode = !inCode
			b.WriteByte(c)
		case c == '|' && !inCode:
			cells = append(cells, strings.TrimSpace(b.String()))
			b.Reset()
		default:
			b.WriteByte(c)
		}
	}
	return append(cells, strings.TrimSpace(b.String()))
}

// splitCode returns the line with its code spans blanked out, and the
// spans' contents.
func splitCode(ln string) (string, []string) {
	var spans []string
	var out strings.Builder
	for {
		i := strings.IndexByte(ln, '`')
		if i < 0 {
			out.WriteString(ln)
			break
		}
		n := 1
		for i+n < len(ln) && ln[i+n] == '`' {
			n++
		}
		ticks := ln[i : i+n]
		j := strings.Index(ln[i+n:], ticks)
		if j < 0 {
			out.WriteString(ln)
			break
		}
		out.WriteString(ln[:i])
		out.WriteString(strings.Repeat(" ", n+j+n))
		spans = append(spans, strings.TrimSpace(ln[i+n:i+n+j]))
		ln = ln[i+n+j+n:]
	}
	return out.String(), spans
}

// inlineLinks finds the destinations of [text](dest) and ![alt](dest).
func inlineLinks(s string) []string {
	var out []string
	for i := 0; i < len(s); i++ {
		if s[i] != ']' || i+1 >= len(s) || s[i+1] != '(' {
			continue
		}
		rest := s[i+2:]
		depth, end := 0, -1
		for k, c := range rest {
			if c == '(' {
				depth++
			} else if c == ')' {
				if depth == 0 {
					end = k
					break
				}
				depth--
			}
		}
		if end < 0 {
			continue
		}
		d := strings.TrimSpace(rest[:end])
		if f := strings.Fields(d); len(f) > 0 {
			d = f[0] // drop a title
		}
		out = append(out, strings.Trim(d, "<>"))
		i += 2 + end
	}
	return out
}

var (
	inlineLinkRe = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	htmlTagRe    = regexp.MustCompile(`<[^>]+>`)
)

// slug is the anchor GitHub gives a heading: its text as rendered, lower
// case, without punctuation other than - and _, spaces turned into -.
func slug(heading string) string {
	h := inlineLinkRe.ReplaceAllString(heading, "$1")
	h = htmlTagRe.ReplaceAllString(h, "")
	h = strings.NewReplacer("`", "", "*", "").Replace(h)
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r) || unicode.Is(unicode.Pc, r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
