package docstest

import (
	"maps"
	"testing"
)

// TestMatch: the expected-output language the pages use.
func TestMatch(t *testing.T) {
	for _, c := range []struct {
		name, want, got string
		vars, wantVars  map[string]string
		ok              bool
	}{
		{name: "exact", want: "a\nb", got: "a\nb\n\n", ok: true},
		{name: "differs", want: "a\nb", got: "a\nc"},
		{name: "more output", want: "a", got: "a\nb"},
		{name: "capture", want: `{"id":"<id of one>"}`, got: `{"id":"1795478727864-0"}` + "\n",
			ok: true, wantVars: map[string]string{"id of one": "1795478727864-0"}},
		{name: "captured before", want: "id: <id>", got: "id: 1-0", vars: map[string]string{"id": "1-0"}, ok: true,
			wantVars: map[string]string{"id": "1-0"}},
		{name: "captured before, other value", want: "id: <id>", got: "id: 2-0", vars: map[string]string{"id": "1-0"}},
		{name: "one name, two values", want: "<x> <x>", got: "a b"},
		{name: "one name, one value", want: "<x> <x>", got: "a a", ok: true, wantVars: map[string]string{"x": "a"}},
		{name: "a word, not a line", want: "retry: <ms>", got: "retry: 2000 3000"},
		{name: "ellipsis in a line", want: `{"level":"info",…"message":"listening"}`,
			got: `{"level":"info","addr":"[::]:8080","message":"listening"}`, ok: true, wantVars: map[string]string{}},
		{name: "ellipsis line", want: "first\n…\nlast", got: "first\n1\n2\nlast", ok: true, wantVars: map[string]string{}},
		{name: "regexp characters are literal", want: "a.b (c)*", got: "axb (c)*"},
		{name: "trailing blanks", want: "data: x\n\n", got: "data: x  \n", ok: true, wantVars: map[string]string{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			vars, err := match(c.want, c.got, c.vars)
			if (err == nil) != c.ok {
				t.Fatalf("match(%q, %q) error %v, want ok=%v", c.want, c.got, err, c.ok)
			}
			if c.ok && c.wantVars != nil && !maps.Equal(vars, c.wantVars) {
				t.Errorf("vars %v, want %v", vars, c.wantVars)
			}
		})
	}
}

// TestSlug: anchors as GitHub makes them from headings.
func TestSlug(t *testing.T) {
	for heading, want := range map[string]string{
		"Scaling Redis: Sentinel and Cluster":          "scaling-redis-sentinel-and-cluster",
		"Subscribing: `GET /events`":                   "subscribing-get-events",
		"Why does my 7th tab hang?":                    "why-does-my-7th-tab-hang",
		"`gateway publish`":                            "gateway-publish",
		"Retries without duplicates (idempotency)":     "retries-without-duplicates-idempotency",
		"The [browser client](../clients/js) — why":    "the-browser-client--why",
		"From contract version 1 to 2":                 "from-contract-version-1-to-2",
		"Tokens, `--jwt-secret` and `--jwks-url`":      "tokens---jwt-secret-and---jwks-url",
		"What `history-lost` means":                    "what-history-lost-means",
		"Load balancers, TLS and HTTP/2":               "load-balancers-tls-and-http2",
		"Redis_Cluster":                                "redis_cluster",
		"Ünïcode heading":                              "ünïcode-heading",
		"A heading with trailing hashes ##":            "a-heading-with-trailing-hashes-",
		"Endpoints: `/healthz`, `/readyz`, `/metrics`": "endpoints-healthz-readyz-metrics",
	} {
		// The trailing hashes case goes through the heading parser, which
		// drops them, so test it there.
		if heading == "A heading with trailing hashes ##" {
			p, err := parsePage("x.md", "## A heading with trailing hashes ##\n")
			if err != nil || !p.anchors["a-heading-with-trailing-hashes"] {
				t.Errorf("trailing hashes: anchors %v, %v", p.anchors, err)
			}
			continue
		}
		if got := slug(heading); got != want {
			t.Errorf("slug(%q) = %q, want %q", heading, got, want)
		}
	}
}

// TestParsePage: markers attach to the block after them, and a marker with
// no block after it is an error.
func TestParsePage(t *testing.T) {
	p, err := parsePage("x.md", "# Title\n\n<!-- run: terminal=a ready=http://localhost:8080/readyz -->\n```sh\ngateway\n```\n\n"+
		"<!-- ctrl-c: terminal=a -->\n\n<!-- flags: gateway publish -->\n| flag | environment |\n|---|---|\n| `--topic` | |\n\n## Title\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.steps) != 2 || p.steps[0].verb != "run" || p.steps[0].opts["terminal"] != "a" || p.steps[0].block.text != "gateway" ||
		p.steps[1].verb != "ctrl-c" {
		t.Errorf("steps %+v", p.steps)
	}
	if len(p.tables) != 1 || p.tables[0].flags != "gateway publish" || len(p.tables[0].rows) != 1 {
		t.Errorf("tables %+v", p.tables)
	}
	if !p.anchors["title"] || !p.anchors["title-1"] {
		t.Errorf("anchors %v", p.anchors)
	}
	for _, bad := range []string{
		"<!-- run -->\ntext\n```sh\nx\n```\n",
		"<!-- run -->\n",
		"<!-- output: terminal a -->\n```text\nx\n```\n",
		"<!-- flags: gateway -->\ntext\n",
		"```sh\nnever closed\n",
	} {
		if _, err := parsePage("x.md", bad); err == nil {
			t.Errorf("parsePage(%q): no error", bad)
		}
	}
}
