package gateway

import (
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/ssegateway/ssegateway/contract"
)

func TestCursor_roundTrip(t *testing.T) {
	ids := []contract.ID{{}, {Ms: 1}, {Ms: 1732406400000}, {Ms: 1732406400000, Seq: 7},
		{Ms: math.MaxUint64, Seq: math.MaxUint64}, {Ms: 0, Seq: 1}}
	for n := 1; n <= 6; n++ {
		topics := []string{"a", "b", "orders/123", "news.world", "user:42", "z"}[:n]
		tags := cursorTags(topics)
		pos := ids[:n]
		cur := string(appendCursor(nil, tags, pos))
		if !regexp.MustCompile(`^[A-Za-z0-9._-]+$`).MatchString(cur) {
			t.Fatalf("cursor %q has characters outside the unreserved set", cur)
		}
		got := decodeCursor(cur, tags)
		for i := range topics {
			if got[i].kind != startAt || got[i].id != pos[i] {
				t.Fatalf("n=%d cursor %q topic %d: got %+v, want at %v", n, cur, i, got[i], pos[i])
			}
		}
	}
}

func TestCursor_single(t *testing.T) {
	tags := cursorTags([]string{"a"})
	cur := string(appendCursor(nil, tags, []contract.ID{{Ms: 5, Seq: 1}}))
	if cur != "5-1" {
		t.Fatalf("single-topic cursor = %q, want the stream id", cur)
	}
}

func TestCursor_compact(t *testing.T) {
	topics := []string{"orders/123", "news", "user:42/notifications", "prices.eur", "alerts", "chat/room-1", "presence", "feed"}
	pos := make([]contract.ID, len(topics))
	for i := range pos {
		pos[i] = contract.ID{Ms: 1795478727864 + uint64(i)*1000, Seq: uint64(i % 2)}
	}
	cur := appendCursor(nil, cursorTags(topics), pos)
	if len(cur) > 128 {
		t.Fatalf("8-topic cursor is %d bytes: %s", len(cur), cur)
	}
}

func TestCursor_topicsChanged(t *testing.T) {
	old := appendCursor(nil, cursorTags([]string{"a", "b"}), []contract.ID{{Ms: 10}, {Ms: 20}})
	// b dropped, c added: b's position is ignored, c starts live.
	got := decodeCursor(string(old), cursorTags([]string{"a", "c"}))
	if got[0].kind != startAt || got[0].id != (contract.ID{Ms: 10}) || got[1].kind != startLive {
		t.Fatalf("got %+v", got)
	}
	// Down to one topic: a multi cursor still places it.
	got = decodeCursor(string(old), cursorTags([]string{"b"}))
	if got[0].kind != startAt || got[0].id != (contract.ID{Ms: 20}) {
		t.Fatalf("got %+v", got)
	}
}

func TestCursor_invalid(t *testing.T) {
	two := cursorTags([]string{"a", "b"})
	bad := []string{
		"garbage", "1-", "-1", "1-2-3", "m1", "m1.", "m1.abc", "m1.abcd", "m1.abcd!!", "m1.abcd1_0",
		"m1.abcd1_", "m1.abcdzzzzzzzzzzzz", "99999999999999999999999-0", "1-0\n", strings.Repeat("m1.", 2000),
		"1-0", // a bare id cannot say which of two topics it is for
	}
	for _, s := range bad {
		for i, st := range decodeCursor(s, two) {
			if st.kind != startInvalid {
				t.Errorf("decodeCursor(%q)[%d] = %+v, want invalid", s, i, st)
			}
		}
	}
	if got := decodeCursor("", two); got[0].kind != startLive || got[1].kind != startLive {
		t.Fatalf("empty cursor: %+v", got)
	}
}

func TestCursor_tagCollision(t *testing.T) {
	// Find two topics with the same tag, then check neither is guessed.
	seen := map[string]string{}
	var a, b string
	for i := 0; a == ""; i++ {
		topic := "t" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + contract.ID{Ms: uint64(i)}.String()
		tag := cursorTag(topic)
		if other, ok := seen[tag]; ok && other != topic {
			a, b = other, topic
		}
		seen[tag] = topic
	}
	tags := cursorTags([]string{a, b})
	cur := appendCursor(nil, tags, []contract.ID{{Ms: 1}, {Ms: 2}})
	for i, st := range decodeCursor(string(cur), tags) {
		if st.kind != startInvalid {
			t.Fatalf("colliding topic %d placed as %+v", i, st)
		}
	}
}

func FuzzDecodeCursor(f *testing.F) {
	for _, s := range []string{"", "1-0", "m1.abcd1", "m1.abcd1_2.efgh3", "m1..", "\xff"} {
		f.Add(s)
	}
	tags := cursorTags([]string{"a", "b", "c"})
	f.Fuzz(func(t *testing.T, s string) {
		got := decodeCursor(s, tags)
		if len(got) != len(tags) {
			t.Fatalf("%d starts for %d topics", len(got), len(tags))
		}
		// Whatever was placed re-encodes to something that decodes the same.
		pos := make([]contract.ID, len(tags))
		for i, st := range got {
			pos[i] = st.id
		}
		again := decodeCursor(string(appendCursor(nil, tags, pos)), tags)
		for i := range got {
			if got[i].kind == startAt && (again[i].kind != startAt || again[i].id != got[i].id) {
				t.Fatalf("%q: topic %d %+v re-decodes as %+v", s, i, got[i], again[i])
			}
		}
	})
}
