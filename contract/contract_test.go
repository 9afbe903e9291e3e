package contract_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ssegateway/ssegateway/contract"
)

func TestValidateTopic(t *testing.T) {
	ok := []string{"a", "orders/123", "user:42", "news.world", "a-b_c.d:e/f@g=h+i~j", strings.Repeat("x", 256)}
	for _, s := range ok {
		if err := contract.ValidateTopic(s, 0); err != nil {
			t.Errorf("ValidateTopic(%q) = %v, want ok", s, err)
		}
	}
	bad := []string{"", "a{b", "a}b", "{a}", "a b", "a*", "a?", "a[b]", "a\nb", "a\x00b", "é", "a,b", "a\\b",
		"a%b", "a#b", "a\"b", strings.Repeat("x", 257)}
	for _, s := range bad {
		err := contract.ValidateTopic(s, 0)
		if !errors.Is(err, contract.ErrInvalid) {
			t.Errorf("ValidateTopic(%q) = %v, want ErrInvalid", s, err)
		}
	}
	if err := contract.ValidateTopic("abcd", 3); err == nil || !strings.Contains(err.Error(), "at most 3") {
		t.Errorf("max length not applied: %v", err)
	}
}

func TestKeys(t *testing.T) {
	k, err := contract.NewKeys("app:")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ source, stream, channel string }{
		{"news", "app:{news}:stream", "app:{news}:events"},
		{"a/b", "app:{a}/b:stream", "app:{a}/b:events"},
		{"orders/42/x:y", "app:{orders}/42/x:y:stream", "app:{orders}/42/x:y:events"},
		{"orders/**", "app:{orders}/**:stream", "app:{orders}/**:events"},
		{"/lead", "app:{/lead}:stream", "app:{/lead}:events"},
		{"x/y:events", "app:{x}/y:events:stream", "app:{x}/y:events:events"},
	} {
		if got := k.Stream(c.source); got != c.stream {
			t.Errorf("Stream(%q) = %q, want %q", c.source, got, c.stream)
		}
		if got := k.Channel(c.source); got != c.channel {
			t.Errorf("Channel(%q) = %q, want %q", c.source, got, c.channel)
		}
		if src, ok := k.SourceOf(k.Channel(c.source)); !ok || src != c.source {
			t.Errorf("SourceOf(Channel(%q)) = %q, %v", c.source, src, ok)
		}
	}
	if got := k.Idempotency("a/b", "k1"); got != "app:{a}/b:idem:k1" {
		t.Fatal(got)
	}
	for _, ch := range []string{"other:{a}:events", "app:{a}:stream", "app:{}:events", "app:a:events", "app:{a}x:events"} {
		if _, ok := k.SourceOf(ch); ok {
			t.Errorf("SourceOf(%q) accepted", ch)
		}
	}
	for _, p := range []string{"a{", "}", "a b", "x\n", strings.Repeat("p", 65)} {
		if _, err := contract.NewKeys(p); err == nil {
			t.Errorf("NewKeys(%q) accepted", p)
		}
	}
}

func TestFeedOf(t *testing.T) {
	for in, want := range map[string]string{
		"orders/42": "orders/**", "orders/*": "orders/**", "orders/**": "orders/**", "a/b/c": "a/**",
		"user:42/inbox": "user:42/**", "orders": "", "/x": "", "*/x": "", "ord*/x": "", "**": "",
	} {
		got, ok := contract.FeedOf(in)
		if got != want || ok != (want != "") {
			t.Errorf("FeedOf(%q) = %q, %v; want %q", in, got, ok, want)
		}
		if ok && !contract.IsFeed(got) {
			t.Errorf("IsFeed(%q) is false", got)
		}
	}
	if contract.IsFeed("orders/42") {
		t.Error("a topic is taken for a feed")
	}
}

func TestEnvelope_roundTrip(t *testing.T) {
	for _, e := range []contract.Envelope{
		{ID: "1-0", Prev: "0-0", Data: ""},
		{ID: "5-2", Prev: "5-1", Type: "t", Data: "a\nb\n\n1\nx"},
		{ID: "5-2", Prev: "4-0", Topic: "orders/42", Type: "t", Data: "a\nb"},
		{ID: "5-2", Prev: "4-0", Topic: "orders/42", Data: ""},
	} {
		got, err := contract.ParseEnvelope(e.String())
		if err != nil || got != e {
			t.Fatalf("round trip of %+v: %+v, %v", e, got, err)
		}
	}
	for _, bad := range []string{"", "1", "3\n1-0\n0-0\n\nx", "1\n\n0-0\n\nx", "1\n1-0\n0-0",
		"2\n1-0\n0-0\n\nt\nx", "2\n1-0\n0-0\na/b\nt"} {
		if _, err := contract.ParseEnvelope(bad); err == nil {
			t.Errorf("ParseEnvelope(%q) accepted", bad)
		}
	}
}

func TestParseID(t *testing.T) {
	for _, s := range []string{"0-0", "1-2", "18446744073709551615-18446744073709551615"} {
		id, err := contract.ParseID(s)
		if err != nil || id.String() != s {
			t.Errorf("ParseID(%q) = %v, %v", s, id, err)
		}
	}
	for _, s := range []string{"", "1", "-1", "1-", "a-1", "1-a", "+1-0", "1 -0", "18446744073709551616-0", "1-0-0", "１-0"} {
		if _, err := contract.ParseID(s); err == nil {
			t.Errorf("ParseID(%q) accepted", s)
		}
	}
	a, b, c := contract.ID{Ms: 1, Seq: 9}, contract.ID{Ms: 2}, contract.ID{Ms: 2, Seq: 1}
	if !a.Less(b) || !b.Less(c) || c.Less(a) || a.Less(a) {
		t.Error("Less ordering wrong")
	}
}

func TestPublishScript_namesFilledIn(t *testing.T) {
	if strings.Contains(contract.FeedPublishScript(), "{{") {
		t.Fatal("the feed publish script has a name left unfilled")
	}
	s := contract.PublishScript()
	if strings.Contains(s, "{{") {
		t.Fatal("the publish script has a name left unfilled")
	}
	for _, want := range []string{
		"local FIELD_PREV, FIELD_TOPIC = '" + contract.FieldPrev + "', '" + contract.FieldTopic + "'",
		"local FIELD_TYPE, FIELD_DATA = '" + contract.FieldType + "', '" + contract.FieldData + "'",
		"local ENVELOPE_VERSION, FEED_ENVELOPE_VERSION = '" + contract.EnvelopeVersion + "', '" + contract.FeedEnvelopeVersion + "'",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the script lacks %q", want)
		}
	}
}
