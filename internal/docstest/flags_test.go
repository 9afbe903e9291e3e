package docstest

import (
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestFlags: every flag of every gateway command is documented in exactly
// one place — a row of a table marked <!-- flags: gateway [COMMAND] --> —
// with the environment variable and the default that the command's -h
// gives; no other table defines a flag; and the pages name no flag and no
// GATEWAY_* variable that does not exist, in prose or in examples.
func TestFlags(t *testing.T) {
	cmds := helpFlags(t)
	envs := map[string]bool{}
	for _, fs := range cmds {
		for _, f := range fs {
			for _, e := range f.env {
				envs[e] = true
			}
		}
	}

	defined := map[string][]string{} // "gateway publish --topic" -> where
	for _, rel := range userPages(t) {
		p := mustRead(t, rel)
		for _, tb := range p.tables {
			if tb.flags == "" {
				for _, r := range tb.rows {
					if len(r.cells) > 0 && strings.HasPrefix(r.cells[0], "`--") {
						t.Errorf("%s:%d: a table row that defines %s outside a <!-- flags --> table: link to docs/configuration.md instead", rel, r.line, r.cells[0])
					}
				}
				continue
			}
			checkFlagTable(t, rel, tb, cmds, defined)
		}
		checkMentions(t, p, cmds, envs)
	}
	for cmd, fs := range cmds {
		for _, f := range fs {
			key := cmd + " --" + f.name
			switch where := defined[key]; len(where) {
			case 0:
				t.Errorf("%s is documented in no <!-- flags: %s --> table", key, cmd)
			case 1:
			default:
				t.Errorf("%s is documented in %d places: %s", key, len(where), strings.Join(where, ", "))
			}
		}
	}
}

// flagInfo is a flag as a command's -h shows it.
type flagInfo struct {
	name, typ string
	def       string // the default as -h shows it; "" for a zero value
	env       []string
}

var (
	usageCmdRe = regexp.MustCompile(`(?m)^\s+gateway ([a-z][a-z0-9-]*)\b`)
	flagLineRe = regexp.MustCompile(`^  -([a-z0-9][a-z0-9-]*)(?: (\S+))?$`)
	defaultRe  = regexp.MustCompile(`\s*\(default (.*)\)$`)
	envListRe  = regexp.MustCompile(`\[([A-Z][A-Z0-9_]*(?:, or [A-Z][A-Z0-9_]*)*)\]`)
)

// helpFlags runs gateway -h and the -h of every command its usage lists,
// and reads their flags: "gateway", "gateway publish", … to flags.
func helpFlags(t *testing.T) map[string][]flagInfo {
	t.Helper()
	bin := gatewayBin(t)
	help := func(args ...string) string {
		out, err := exec.Command(bin, append(args, "-h")...).CombinedOutput()
		if err != nil {
			t.Fatalf("gateway %s -h: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	top := help()
	cmds := map[string][]flagInfo{"gateway": parseHelp(top)}
	for _, m := range usageCmdRe.FindAllStringSubmatch(top, -1) {
		cmds["gateway "+m[1]] = parseHelp(help(m[1]))
	}
	if len(cmds["gateway"]) < 40 || len(cmds["gateway publish"]) < 10 {
		t.Fatalf("read %d flags of gateway and %d of gateway publish from -h: is the parser broken?\n%s",
			len(cmds["gateway"]), len(cmds["gateway publish"]), top)
	}
	return cmds
}

// parseHelp reads flags as flag.PrintDefaults writes them: "  -name type"
// then the usage on lines starting with four spaces and a tab, ending in
// "(default …)" unless the default is the zero value.
func parseHelp(out string) []flagInfo {
	var fs []flagInfo
	lines := strings.Split(out, "\n")
	for i := 0; i < len(lines); i++ {
		m := flagLineRe.FindStringSubmatch(lines[i])
		if m == nil || i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "    \t") {
			continue
		}
		f := flagInfo{name: m[1], typ: m[2]}
		if f.typ == "" {
			f.typ = "bool"
		}
		var usage []string
		for i+1 < len(lines) && strings.HasPrefix(lines[i+1], "    \t") {
			i++
			usage = append(usage, strings.TrimPrefix(lines[i], "    \t"))
		}
		u := strings.Join(usage, " ")
		if d := defaultRe.FindStringSubmatch(u); d != nil {
			f.def = d[1]
			if s, err := strconv.Unquote(d[1]); err == nil {
				f.def = s
			}
			u = u[:len(u)-len(d[0])]
		}
		if e := envListRe.FindAllStringSubmatch(u, -1); e != nil {
			f.env = strings.Split(e[len(e)-1][1], ", or ")
		}
		fs = append(fs, f)
	}
	return fs
}

func lookup(fs []flagInfo, name string) (flagInfo, bool) {
	for _, f := range fs {
		if f.name == name {
			return f, true
		}
	}
	return flagInfo{}, false
}

var (
	flagSpanRe = regexp.MustCompile(`^--([a-z0-9][a-z0-9-]*)`)
	envNameRe  = regexp.MustCompile(`^[A-Z][A-Z0-9_]*[A-Z0-9]$`)
)

// checkFlagTable checks a <!-- flags --> table: one flag per row, in its
// first column as `--name`; the environment column names exactly the
// variables -h gives; the default column's first code span is the default.
func checkFlagTable(t *testing.T, rel string, tb table, cmds map[string][]flagInfo, defined map[string][]string) {
	t.Helper()
	fs, ok := cmds[tb.flags]
	if !ok {
		t.Errorf("%s:%d: <!-- flags: %s -->: no such command in gateway -h", rel, tb.line, tb.flags)
		return
	}
	col := map[string]int{}
	for i, h := range tb.header {
		col[strings.ToLower(h)] = i
	}
	envCol, hasEnv := col["environment"]
	defCol, hasDef := col["default"]
	if _, ok := col["flag"]; !ok || col["flag"] != 0 || !hasEnv || !hasDef {
		t.Errorf("%s:%d: a flags table's columns are flag (first), environment and default, then anything: %q", rel, tb.line, tb.header)
		return
	}
	for _, r := range tb.rows {
		at := fmt.Sprintf("%s:%d", rel, r.line)
		if len(r.cells) != len(tb.header) {
			t.Errorf("%s: %d cells, the header has %d", at, len(r.cells), len(tb.header))
			continue
		}
		_, spans := splitCode(r.cells[0])
		var names []string
		for _, s := range spans {
			if m := flagSpanRe.FindStringSubmatch(s); m != nil {
				names = append(names, m[1])
			}
		}
		if len(names) != 1 {
			t.Errorf("%s: a row of a flags table documents one flag, as `--name` in its first cell: %q", at, r.cells[0])
			continue
		}
		f, ok := lookup(fs, names[0])
		if !ok {
			t.Errorf("%s: %s has no flag --%s", at, tb.flags, names[0])
			continue
		}
		defined[tb.flags+" --"+f.name] = append(defined[tb.flags+" --"+f.name], at)

		var env []string
		_, spans = splitCode(r.cells[envCol])
		for _, s := range spans {
			if envNameRe.MatchString(s) {
				env = append(env, s)
			}
		}
		if !slices.Equal(env, f.env) {
			t.Errorf("%s: --%s: environment %q, -h says %q", at, f.name, env, f.env)
		}

		_, spans = splitCode(r.cells[defCol])
		if len(spans) == 0 {
			if f.def != "" {
				t.Errorf("%s: --%s: the default column shows no default, -h says %s", at, f.name, f.def)
			}
			continue
		}
		if !sameValue(f, spans[0]) {
			show := f.def
			if show == "" {
				show = "the zero value"
			}
			t.Errorf("%s: --%s: the default column says `%s`, -h says %s", at, f.name, spans[0], show)
		}
	}
}

// sameValue reports whether doc, as the docs write a default, is the
// flag's default.
func sameValue(f flagInfo, doc string) bool {
	def := f.def
	switch f.typ {
	case "duration":
		if def == "" {
			def = "0s"
		}
		a, err1 := time.ParseDuration(def)
		b, err2 := time.ParseDuration(doc)
		return err1 == nil && err2 == nil && a == b
	case "int", "int64", "uint", "uint64", "float":
		if def == "" {
			def = "0"
		}
		a, err1 := strconv.ParseFloat(def, 64)
		b, err2 := strconv.ParseFloat(strings.ReplaceAll(doc, ",", ""), 64)
		return err1 == nil && err2 == nil && a == b
	case "bool":
		if def == "" {
			def = "false"
		}
		return def == doc
	default:
		return def == doc
	}
}

// otherFlags are the flags of other programs that the pages name in code
// spans of their prose.
var otherFlags = map[string]bool{
	// ssebench (docs/benchmarks.md)
	"path": true, "publish-url": true, "publish-body": true, "publish-form": true, "publish-auth": true, "mercure": true,
	// podman and docker
	"stop-timeout": true, "format": true,
	// helm
	"set": true, "kube-version": true,
}

var (
	envMentionRe = regexp.MustCompile(`\bGATEWAY_[A-Z0-9_]*`)
	commentRe    = regexp.MustCompile(`(^|\s)#.*$`)
)

// checkMentions: the flags the page's prose names as `--name` exist (in
// some gateway command, or are another program's in otherFlags); the flags
// given to gateway in its shell blocks exist in that command; every
// GATEWAY_* variable it names is one -h gives.
func checkMentions(t *testing.T, p *page, cmds map[string][]flagInfo, envs map[string]bool) {
	t.Helper()
	known := func(name string) bool {
		for _, fs := range cmds {
			if _, ok := lookup(fs, name); ok {
				return true
			}
		}
		return false
	}
	for _, s := range p.spans {
		m := flagSpanRe.FindStringSubmatch(s.text)
		if m == nil || strings.HasSuffix(m[1], "-") || known(m[1]) || otherFlags[m[1]] {
			continue // a family (--jwt-*), a flag, or another program's
		}
		t.Errorf("%s:%d: `%s` names no flag of gateway (nor of another program the pages use: otherFlags in %s)", p.path, s.line, s.text, "flags_test.go")
	}
	for _, b := range p.blocks {
		if b.info != "sh" && b.info != "bash" && b.info != "shell" {
			continue
		}
		for i, words := range shellCommands(b.text) {
			for k, w := range words {
				if w != "gateway" && !strings.HasSuffix(w, "/gateway") {
					continue
				}
				cmd, args := "gateway", words[k+1:]
				if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
					if _, ok := cmds["gateway "+args[0]]; !ok {
						break // not an invocation: a path, or a word in a string
					}
					cmd, args = "gateway "+args[0], args[1:]
				}
				for _, a := range args {
					if !strings.HasPrefix(a, "--") || a == "--" {
						continue
					}
					name, _, _ := strings.Cut(a[2:], "=")
					if _, ok := lookup(cmds[cmd], name); !ok {
						t.Errorf("%s:%d: %s has no flag --%s (command %d of the block)", p.path, b.line, cmd, name, i+1)
					}
				}
				break
			}
		}
	}
	for n, ln := range strings.Split(p.text, "\n") {
		for _, e := range envMentionRe.FindAllString(ln, -1) {
			if strings.HasSuffix(e, "_") {
				continue // a family: GATEWAY_MERCURE_*
			}
			if !envs[e] {
				t.Errorf("%s:%d: %s is not the variable of any flag", p.path, n+1, e)
			}
		}
	}
}

// shellCommands splits a shell script into simple commands, each as its
// words: quotes and backslashes are honoured, comments and line
// continuations dropped, and | ; & ( ) $( ` separate commands. Good enough
// for the examples' one-liners; not a shell.
func shellCommands(script string) [][]string {
	var cmds [][]string
	var words []string
	var w strings.Builder
	inWord := false
	endWord := func() {
		if inWord {
			words = append(words, w.String())
			w.Reset()
			inWord = false
		}
	}
	endCmd := func() {
		endWord()
		if len(words) > 0 {
			cmds = append(cmds, words)
			words = nil
		}
	}
	for _, ln := range strings.Split(strings.ReplaceAll(script, "\\\n", " "), "\n") {
		ln = commentRe.ReplaceAllString(ln, "")
		for i := 0; i < len(ln); i++ {
			c := ln[i]
			switch {
			case c == '\'':
				j := strings.IndexByte(ln[i+1:], '\'')
				if j < 0 {
					j = len(ln) - i - 1
				}
				w.WriteString(ln[i+1 : i+1+j])
				inWord = true
				i += j + 1
			case c == '"':
				j := i + 1
				for ; j < len(ln) && ln[j] != '"'; j++ {
					if ln[j] == '\\' && j+1 < len(ln) {
						j++
					}
				}
				if q := ln[i+1 : min(j, len(ln))]; strings.Contains(q, "$(") {
					endCmd()
					cmds = append(cmds, shellCommands(q)...)
				} else {
					w.WriteString(q)
					inWord = true
				}
				i = j
			case c == '\\' && i+1 < len(ln):
				w.WriteByte(ln[i+1])
				inWord = true
				i++
			case c == ' ' || c == '\t':
				endWord()
			case strings.IndexByte("|;&()`", c) >= 0:
				endCmd()
			case c == '$' && i+1 < len(ln) && ln[i+1] == '(':
				endCmd()
				i++
			default:
				w.WriteByte(c)
				inWord = true
			}
		}
		endCmd()
	}
	return cmds
}
