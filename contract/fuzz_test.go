package contract_test

import (
	"strings"
	"testing"

	"github.com/ssegateway/ssegateway/contract"
)

// FuzzValidateTopic: a topic that passes validation can never move its hash
// tag or leave the prefix, and shares its hash tag with its feed.
func FuzzValidateTopic(f *testing.F) {
	for _, s := range []string{"a", "a{b}", "}", "a\x00b", "a\nb", "*", "orders/42", strings.Repeat("x", 300)} {
		f.Add(s)
	}
	keys, _ := contract.NewKeys("p:")
	f.Fuzz(func(t *testing.T, topic string) {
		if contract.ValidateTopic(topic, 0) != nil {
			return
		}
		tag := topic
		if i := strings.IndexByte(topic, '/'); i > 0 {
			tag = topic[:i]
		}
		for _, k := range []string{keys.Stream(topic), keys.Last(topic), keys.Channel(topic), keys.Idempotency(topic, "k")} {
			if !strings.HasPrefix(k, "p:{"+tag+"}") || strings.Count(k, "{") != 1 || strings.Count(k, "}") != 1 {
				t.Fatalf("topic %q gives key %q", topic, k)
			}
		}
		if got, ok := keys.SourceOf(keys.Channel(topic)); !ok || got != topic {
			t.Fatalf("channel of %q does not map back: %q", topic, got)
		}
		// A topic's feed shares its hash tag.
		if feed, ok := contract.FeedOf(topic); ok && !strings.HasPrefix(keys.Stream(feed), "p:{"+tag+"}/**:") {
			t.Fatalf("feed %q of %q is not in the topic's slot: %q", feed, topic, keys.Stream(feed))
		}
	})
}
