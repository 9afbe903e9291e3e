package mercure_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/ssegateway/ssegateway/mercure"
)

// FuzzSelectorMatch: any selector compiles or is refused with ErrInvalid
// (never a panic); a compiled selector matches itself; and a Matcher holding
// it agrees with Selector.Match on any topic.
func FuzzSelectorMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"*", "x"},
		{"https://example.com/books/{id}", "https://example.com/books/1"},
		{"https://example.com/books/{id}", "https://example.com/books/a/b"},
		{"https://example.com/{+path}", "https://example.com/a/b"},
		{"https://example.com/users/foo/{?topic}", "https://example.com/users/foo/?topic=x%2Fy"},
		{"/.well-known/mercure/subscriptions{/topic}{/subscriber}", "/.well-known/mercure/subscriptions/a/b"},
		{"https://example.com/{id", "https://example.com/{id"},
		{"{a,b,c*}", "x,y"},
		{"{a:3}{#b}{.c}{;d}{&e}", ";d=1"},
		{"{" + strings.Repeat("a,", 40) + "a}", ""},
		{"%zz{x}", "%zz"},
		{"\xff{x}", "\xff"},
		{"will-not-match}", "will-not-match}"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, selector, topic string) {
		sel, err := mercure.ParseSelector(selector)
		if err != nil {
			if !errors.Is(err, mercure.ErrInvalid) {
				t.Fatalf("ParseSelector(%q): %v, not ErrInvalid", selector, err)
			}
			return
		}
		if !sel.Match(selector) {
			t.Fatalf("%q does not match itself", selector)
		}
		want := sel.Match(topic)
		m := mercure.NewMatcher(nil)
		in, err := m.Add(mercure.Filter{Topics: []string{selector}, Private: []string{selector}})
		if err != nil {
			t.Fatalf("Add: %v", err)
		}
		for _, private := range []bool{false, true} {
			if got := slices.Contains(m.Match(nil, []string{topic}, private), in); got != want {
				t.Fatalf("selector %q, topic %q, private %v: Matcher %v, Selector.Match %v", selector, topic, private, got, want)
			}
		}
	})
}

// FuzzPublishForm: any body gives an update or a RequestError with a 4xx
// status, never a panic; an update has 1 to MaxPublishTopics topics and an
// id, validates or is refused cleanly, and survives encoding.
func FuzzPublishForm(f *testing.F) {
	for _, b := range []string{
		"topic=https%3A%2F%2Fexample.com%2Fbooks%2F1&data=hello",
		"topic=a&topic=b&private=on&id=urn%3Auuid%3A1&type=t&retry=10",
		"topic=a&data=%zz",
		"topic=a;b",
		"topic=a&retry=-1",
		"topic=%2F.well-known%2Fmercure&id=%23x",
		"data=no-topic",
		"topic=a&id=a%0Ab&type=%00",
		"",
		"&&&=&=topic&topic",
	} {
		f.Add(formType, b)
	}
	f.Add("", "topic=a")
	f.Add("text/", "topic=a")
	f.Fuzz(func(t *testing.T, contentType, body string) {
		u, err := mercure.ParsePublishForm(contentType, []byte(body), mercure.PublishConfig{MaxDataBytes: 1 << 10})
		if err != nil {
			var re *mercure.RequestError
			if !errors.As(err, &re) || re.Status < 400 || re.Status > 499 || re.Message == "" {
				t.Fatalf("error %v is not a 4xx RequestError", err)
			}
			return
		}
		if len(u.Topics) == 0 || len(u.Topics) > mercure.MaxPublishTopics || u.ID == "" {
			t.Fatalf("parsed %+v", u)
		}
		if err := u.Validate(); err != nil {
			var re *mercure.RequestError
			if !errors.As(err, &re) || (re.Status != 400 && re.Status != 403) {
				t.Fatalf("Validate: %v", err)
			}
		}
		back, err := mercure.DecodeUpdate(u.Encode())
		if err != nil || !equalUpdates(*back, *u) {
			t.Fatalf("round trip of %+v: %+v, %v", u, back, err)
		}
		_ = u.AppendEvent(nil)
	})
}

// FuzzDecodeUpdate: decoding any string never panics, and the encoding is
// canonical: what decodes encodes back to the same string.
func FuzzDecodeUpdate(f *testing.F) {
	for _, s := range []string{
		"112:id0:0;2;1:a1:bx",
		"105:urn:11:t3000;1;21:https://example.com/11:2;3",
		"100:0:0;0;",
		"100:0:0;999999999999;",
		"100:0:18446744073709551616;0;",
		"1001:a0:0;0;",
		"",
		"1",
		(&mercure.Update{Topics: []string{"a", "", "c"}, Data: "\x00\n\r", Type: "t", ID: "i", Retry: 1, Private: true}).Encode(),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := mercure.DecodeUpdate(s)
		if err != nil {
			if !errors.Is(err, mercure.ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if got := u.Encode(); got != s {
			t.Fatalf("DecodeUpdate(%q) encodes back as %q", s, got)
		}
	})
}

// FuzzUpdateEncode: every update survives encoding, whatever its bytes.
func FuzzUpdateEncode(f *testing.F) {
	f.Add("a", "b", "data", "id", "type", uint64(0), false)
	f.Add("", "", "", "", "", uint64(1<<64-1), true)
	f.Add("1:", ";", "0:", ":", "9;", uint64(10), true)
	f.Fuzz(func(t *testing.T, t1, t2, data, id, typ string, retry uint64, private bool) {
		u := mercure.Update{Topics: []string{t1, t2}, Data: data, ID: id, Type: typ, Retry: retry, Private: private}
		back, err := mercure.DecodeUpdate(u.Encode())
		if err != nil || !equalUpdates(*back, u) {
			t.Fatalf("round trip of %+v: %+v, %v", u, back, err)
		}
	})
}
