package mercure_test

import (
	"encoding/json"
	"testing"

	"github.com/ssegateway/ssegateway/mercure"
)

const subID = "urn:uuid:bb3de268-05b0-4c65-b44e-8f9acefc29d6"

func TestSubscriptionID(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ topic, want string }{
		// The spec's example.
		{"https://example.com/{selector}", "/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2F%7Bselector%7D/urn%3Auuid%3Abb3de268-05b0-4c65-b44e-8f9acefc29d6"},
		// Escaped as a query component, as Mercure does: a space is "+".
		{"a b+c~d", "/.well-known/mercure/subscriptions/a+b%2Bc~d/urn%3Auuid%3Abb3de268-05b0-4c65-b44e-8f9acefc29d6"},
		{"*", "/.well-known/mercure/subscriptions/%2A/urn%3Auuid%3Abb3de268-05b0-4c65-b44e-8f9acefc29d6"},
	} {
		if got := mercure.SubscriptionID(c.topic, subID); got != c.want {
			t.Errorf("SubscriptionID(%q) = %q, want %q", c.topic, got, c.want)
		}
	}
}

func TestSubscriber_SubscriptionUpdates(t *testing.T) {
	t.Parallel()
	s := mercure.Subscriber{ID: subID, Topics: []string{"https://example.com/{selector}", "https://example.com/a-topic"},
		Payload: json.RawMessage(`{"foo":"bar"}`)}
	ups := s.SubscriptionUpdates(true)
	if len(ups) != 2 {
		t.Fatalf("%d updates, want one per selector", len(ups))
	}
	u := ups[0]
	// Byte for byte what Mercure publishes: json.MarshalIndent, two spaces,
	// its field order.
	want := `{
  "@context": "https://mercure.rocks/",
  "id": "/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2F%7Bselector%7D/urn%3Auuid%3Abb3de268-05b0-4c65-b44e-8f9acefc29d6",
  "type": "Subscription",
  "subscriber": "urn:uuid:bb3de268-05b0-4c65-b44e-8f9acefc29d6",
  "topic": "https://example.com/{selector}",
  "active": true,
  "payload": {
    "foo": "bar"
  }
}`
	if u.Data != want {
		t.Errorf("data:\n%s\nwant:\n%s", u.Data, want)
	}
	if !u.Private || len(u.Topics) != 1 || u.Topics[0] != mercure.SubscriptionID(s.Topics[0], s.ID) || u.ID == "" {
		t.Errorf("update %+v", u)
	}
	// A subscription event must pass as the hub's own: only publishers are
	// kept out of the reserved namespace, so it does not Validate.
	if u.Validate() == nil {
		t.Error("a subscription event validates as a publisher's update")
	}
	off := mercure.Subscriber{ID: subID, Topics: []string{"a"}}.SubscriptionUpdates(false)
	var doc map[string]any
	if err := json.Unmarshal([]byte(off[0].Data), &doc); err != nil || doc["active"] != false {
		t.Errorf("disconnection event %s (%v)", off[0].Data, err)
	}
	if _, ok := doc["payload"]; ok {
		t.Error("an event without a payload has one")
	}
}

func TestNewCollection(t *testing.T) {
	t.Parallel()
	subs := []mercure.Subscriber{
		{ID: "urn:uuid:1", Topics: []string{"https://example.com/{selector}", "https://example.com/a-topic"}, Payload: json.RawMessage(`{"foo":"bar"}`)},
		{ID: "urn:uuid:2", Topics: []string{"https://example.com/{selector}"}},
	}
	all := mercure.NewCollection("/.well-known/mercure/subscriptions", "urn:uuid:last", "", subs)
	b, _ := mercure.MarshalDocument(all)
	want := `{
  "@context": "https://mercure.rocks/",
  "id": "/.well-known/mercure/subscriptions",
  "type": "Subscriptions",
  "lastEventID": "urn:uuid:last",
  "subscriptions": [
    {
      "id": "/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2F%7Bselector%7D/urn%3Auuid%3A1",
      "type": "Subscription",
      "subscriber": "urn:uuid:1",
      "topic": "https://example.com/{selector}",
      "active": true,
      "payload": {
        "foo": "bar"
      }
    },
    {
      "id": "/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2Fa-topic/urn%3Auuid%3A1",
      "type": "Subscription",
      "subscriber": "urn:uuid:1",
      "topic": "https://example.com/a-topic",
      "active": true,
      "payload": {
        "foo": "bar"
      }
    },
    {
      "id": "/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2F%7Bselector%7D/urn%3Auuid%3A2",
      "type": "Subscription",
      "subscriber": "urn:uuid:2",
      "topic": "https://example.com/{selector}",
      "active": true
    }
  ]
}`
	if string(b) != want {
		t.Errorf("collection:\n%s\nwant:\n%s", b, want)
	}
	byTopic := mercure.NewCollection("/x", mercure.EarliestID, "https://example.com/{selector}", subs)
	if len(byTopic.Subscriptions) != 2 || byTopic.Subscriptions[1].Subscriber != "urn:uuid:2" || byTopic.LastEventID != "earliest" {
		t.Errorf("by topic: %+v", byTopic)
	}
	// A selector is compared as text, not matched.
	if got := mercure.NewCollection("/x", "e", "https://example.com/1", subs); len(got.Subscriptions) != 0 {
		t.Errorf("a topic matched by a selector listed its subscription: %+v", got)
	}
	empty := mercure.NewCollection("/x", "e", "", nil)
	if b, _ := json.Marshal(empty); string(b) != `{"@context":"https://mercure.rocks/","id":"/x","type":"Subscriptions","lastEventID":"e","subscriptions":[]}` {
		t.Errorf("empty collection %s", b)
	}
}

func TestFindSubscription(t *testing.T) {
	t.Parallel()
	subs := []mercure.Subscriber{{ID: subID, Topics: []string{"https://example.com/{selector}"}, Payload: json.RawMessage(`{"foo":"bar"}`)}}
	got, ok := mercure.FindSubscription("urn:uuid:5e94c686-2c0b-4f9b-958c-92ccc3bbb4eb", "https://example.com/{selector}", subID, subs)
	if !ok {
		t.Fatal("not found")
	}
	b, _ := mercure.MarshalDocument(got)
	// The spec's example, in Mercure's field order.
	want := `{
  "@context": "https://mercure.rocks/",
  "id": "/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2F%7Bselector%7D/urn%3Auuid%3Abb3de268-05b0-4c65-b44e-8f9acefc29d6",
  "type": "Subscription",
  "subscriber": "urn:uuid:bb3de268-05b0-4c65-b44e-8f9acefc29d6",
  "topic": "https://example.com/{selector}",
  "active": true,
  "lastEventID": "urn:uuid:5e94c686-2c0b-4f9b-958c-92ccc3bbb4eb",
  "payload": {
    "foo": "bar"
  }
}`
	if string(b) != want {
		t.Errorf("subscription:\n%s\nwant:\n%s", b, want)
	}
	for _, miss := range [][2]string{{"https://example.com/{other}", subID}, {"https://example.com/{selector}", "urn:uuid:x"}} {
		if _, ok := mercure.FindSubscription("e", miss[0], miss[1], subs); ok {
			t.Errorf("found %v", miss)
		}
	}
}

func TestParseSubscriptionsPath(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		path       string
		ok         bool
		topic, sub string
	}{
		{"/.well-known/mercure/subscriptions", true, "", ""},
		{"/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2F%7Bselector%7D", true, "https://example.com/{selector}", ""},
		{"/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2F%7Bselector%7D/urn%3Auuid%3A1", true, "https://example.com/{selector}", "urn:uuid:1"},
		{"/.well-known/mercure/subscriptions/a+b/c", true, "a b", "c"},
		{"/.well-known/mercure/subscriptions/", false, "", ""},
		{"/.well-known/mercure/subscriptions/a/", false, "", ""},
		{"/.well-known/mercure/subscriptions//b", false, "", ""},
		{"/.well-known/mercure/subscriptions/a/b/c", false, "", ""},
		{"/.well-known/mercure/subscriptionsX", false, "", ""},
		{"/.well-known/mercure/subscriptions/%zz", false, "", ""},
		{"/.well-known/mercure", false, "", ""},
	} {
		req, ok := mercure.ParseSubscriptionsPath(c.path)
		if ok != c.ok || req.Topic != c.topic || req.Subscriber != c.sub {
			t.Errorf("%q: %+v %v; want %q %q %v", c.path, req, ok, c.topic, c.sub, c.ok)
		}
	}
}
