package mercure_test

import (
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/ssegateway/ssegateway/mercure"
)

func TestNewID(t *testing.T) {
	t.Parallel()
	v4 := regexp.MustCompile(`^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := mercure.NewID()
		if !v4.MatchString(id) {
			t.Fatalf("NewID() = %q, not a urn:uuid: of a version 4 UUID", id)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestUpdate_AppendEvent(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		u    mercure.Update
		want string
	}{
		{"plain", mercure.Update{ID: "id-1", Data: "hello"}, "id: id-1\ndata: hello\n\n"},
		{"empty data still has a data line", mercure.Update{ID: "x"}, "id: x\ndata: \n\n"},
		{"type and retry first", mercure.Update{ID: "x", Type: "t", Retry: 1500, Data: "d"},
			"event: t\nretry: 1500\nid: x\ndata: d\n\n"},
		{"lines split at LF, CRLF and CR", mercure.Update{ID: "x", Data: "a\nb\r\nc\rd"},
			"id: x\ndata: a\ndata: b\ndata: c\ndata: d\n\n"},
		// The conformance suite's data: an empty line and indentation.
		{"blank line kept", mercure.Update{ID: `id-["t"]`, Data: "data for\n\n        raw string"},
			"id: id-[\"t\"]\ndata: data for\ndata: \ndata:         raw string\n\n"},
		{"trailing newline", mercure.Update{ID: "x", Data: "a\n"}, "id: x\ndata: a\ndata: \n\n"},
		{"CR at the end", mercure.Update{ID: "x", Data: "a\r"}, "id: x\ndata: a\ndata: \n\n"},
	} {
		if got := string(c.u.AppendEvent(nil)); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestUpdate_Validate(t *testing.T) {
	t.Parallel()
	ok := func(u mercure.Update) mercure.Update {
		if u.Topics == nil {
			u.Topics = []string{"https://example.com/books/1"}
		}
		return u
	}
	for _, c := range []struct {
		name   string
		u      mercure.Update
		status int
		msg    string
	}{
		{"fine", ok(mercure.Update{ID: "urn:uuid:1", Type: "ping"}), 0, ""},
		{"empty id (generated later)", ok(mercure.Update{}), 0, ""},
		{"publisher ids with punctuation", ok(mercure.Update{ID: `id-["https://example.net/foo/x"]`}), 0, ""},
		{"unicode id", ok(mercure.Update{ID: "livre-été"}), 0, ""},
		{"reserved topic", mercure.Update{Topics: []string{"https://example.com/.well-known/mercure/subscriptions/a/b"}}, 403,
			`"https://example.com/.well-known/mercure/subscriptions/a/b": topic value references the reserved "/.well-known/mercure" namespace`},
		{"reserved alternate", mercure.Update{Topics: []string{"a", "/.well-known/mercure"}}, 403,
			`"/.well-known/mercure": topic value references the reserved "/.well-known/mercure" namespace`},
		{"id with LF", ok(mercure.Update{ID: "a\nb"}), 400, `"id" field contains a forbidden control character`},
		{"id with CR", ok(mercure.Update{ID: "a\rb"}), 400, `"id" field contains a forbidden control character`},
		{"id with NUL", ok(mercure.Update{ID: "a\x00b"}), 400, `"id" field contains a forbidden control character`},
		{"id with a tab", ok(mercure.Update{ID: "a\tb"}), 400, `"id" field contains a forbidden control character`},
		{"id starting with #", ok(mercure.Update{ID: "#1"}), 400, `"id" field must not start with "#"`},
		{"id earliest", ok(mercure.Update{ID: "earliest"}), 400, `"id" field must not be the reserved value "earliest"`},
		{"id not UTF-8", ok(mercure.Update{ID: "a\xff"}), 400, `"id" field is not valid UTF-8`},
		{"id too long", ok(mercure.Update{ID: strings.Repeat("i", mercure.MaxIDBytes+1)}), 400, `"id" field is 1025 bytes, at most 1024 allowed`},
		{"type with LF", ok(mercure.Update{Type: "a\nb"}), 400, `"type" field contains a forbidden control character`},
		{"type not UTF-8", ok(mercure.Update{Type: "\xff"}), 400, `"type" field is not valid UTF-8`},
		{"topic too long", mercure.Update{Topics: []string{strings.Repeat("t", mercure.MaxTopicBytes+1)}}, 400, ""},
	} {
		err := c.u.Validate()
		if c.status == 0 {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		var re *mercure.RequestError
		if !errors.As(err, &re) || re.Status != c.status || (c.msg != "" && re.Message != c.msg) {
			t.Errorf("%s: %v, want %d %q", c.name, err, c.status, c.msg)
		}
	}
}

func TestUpdate_Encode(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		u    mercure.Update
		want string
	}{
		{mercure.Update{Topics: []string{"a", "b"}, Data: "x", ID: "id", Private: true}, "112:id0:0;2;1:a1:bx"},
		{mercure.Update{Topics: []string{"https://example.com/1"}, ID: "urn:1", Type: "t", Retry: 3000, Data: "1:2;3"},
			"105:urn:11:t3000;1;21:https://example.com/11:2;3"},
		{mercure.Update{}, "100:0:0;0;"},
		{mercure.Update{Topics: []string{""}, Data: "\x00\xff\n"}, "100:0:0;1;0:\x00\xff\n"},
	} {
		got := c.u.Encode()
		if got != c.want {
			t.Errorf("Encode(%+v) = %q, want %q", c.u, got, c.want)
		}
		back, err := mercure.DecodeUpdate(got)
		if err != nil {
			t.Errorf("DecodeUpdate(%q): %v", got, err)
			continue
		}
		if !equalUpdates(*back, c.u) {
			t.Errorf("DecodeUpdate(%q) = %+v, want %+v", got, *back, c.u)
		}
	}
}

func equalUpdates(a, b mercure.Update) bool {
	if len(a.Topics) == 0 && len(b.Topics) == 0 {
		a.Topics, b.Topics = nil, nil
	}
	return reflect.DeepEqual(a, b)
}

func TestDecodeUpdate_malformed(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"", "1", "2000:0:0;0;", "1x0:0:0;0;", "10", "10:", "100:0:", "100:0:0", "100:0:0;", "100:0:0;0",
		"105:abc0:0;0;",                      // length beyond the end
		"1001:a0:0;0;",                       // leading zero
		"100:0:-1;0;",                        // sign
		"100:0:18446744073709551616;0;",      // retry overflows uint64
		"100:0:0;5;1:a",                      // fewer topics than announced
		"100:0:0;999999999999;",              // absurd count, refused before allocating
		"100:0:0;1;9999999999999999999999:a", // length of more than 20 digits
		"1 0:0:0;0;",
	} {
		if u, err := mercure.DecodeUpdate(s); !errors.Is(err, mercure.ErrMalformed) {
			t.Errorf("DecodeUpdate(%q) = %+v, %v; want ErrMalformed", s, u, err)
		}
	}
}
