package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/ssegateway/ssegateway/gateway/sseclient"
	"github.com/ssegateway/ssegateway/pubsub"
)

// named decodes an event of a pattern stream: its topic and the data as
// published.
func named(t *testing.T, ev sseclient.Event) (topic, data string) {
	t.Helper()
	var v struct {
		Topic string `json:"topic"`
		Data  string `json:"data"`
	}
	if err := json.Unmarshal([]byte(ev.Data), &v); err != nil {
		t.Fatalf("event %+v is not a named event: %v", ev, err)
	}
	return v.Topic, v.Data
}

// TestServer_patterns_liveAndResume: orders/* gets the events of every
// topic one segment under orders/ — also of topics first published after it
// connected — with their topic, and nothing else; resuming from its last
// cursor gets exactly what it missed.
func TestServer_patterns_liveAndResume(t *testing.T) {
	n := startNode(t, Config{}, pubsub.PublisherConfig{})
	c := subscribe(t, eventsURL(n.url, "orders/*"), "")
	n.waitStreams(t, 1)
	want := []string{}
	for i, topic := range []string{"orders/1", "orders/1/x", "ordersx/1", "orders", "orders/2", "orders/", "orders/1"} {
		n.publish(t, topic, fmt.Sprint(i))
		if topic == "orders/1" || topic == "orders/2" {
			want = append(want, topic+"="+fmt.Sprint(i))
		}
	}
	var last string
	for _, w := range want {
		ev := c.next(t)
		topic, data := named(t, ev)
		if topic+"="+data != w {
			t.Fatalf("got %s=%s, want %s", topic, data, w)
		}
		last = ev.LastEventID
	}
	// Missed while away: a new topic among them.
	for i, topic := range []string{"orders/3", "orders/9/deep", "orders/1"} {
		n.publish(t, topic, fmt.Sprint("m", i))
	}
	r := subscribe(t, eventsURL(n.url, "orders/*"), last)
	for _, w := range []string{"orders/3=m0", "orders/1=m2"} {
		topic, data := named(t, r.next(t))
		if topic+"="+data != w {
			t.Fatalf("resume got %s=%s, want %s", topic, data, w)
		}
	}
	n.waitStreams(t, 2)
	n.publish(t, "orders/4", "live")
	if topic, data := named(t, r.next(t)); topic != "orders/4" || data != "live" {
		t.Fatalf("live after resume got %s=%s", topic, data)
	}
}

// TestServer_patterns_mixed: a pattern and a topic it covers on one stream
// give each event once; a topic it does not cover is followed on its own,
// its events named too; patterns of one feed that overlap deliver once.
func TestServer_patterns_mixed(t *testing.T) {
	n := startNode(t, Config{}, pubsub.PublisherConfig{})
	c := subscribe(t, eventsURL(n.url, "orders/*", "orders/1", "orders/**", "news"), "")
	n.waitStreams(t, 1)
	for i, topic := range []string{"orders/1", "news", "orders/2/x", "orders/1"} {
		n.publish(t, topic, fmt.Sprint(i))
	}
	var got []string
	for range 4 {
		topic, data := named(t, c.next(t))
		got = append(got, topic+"="+data)
	}
	if want := []string{"orders/1=0", "news=1", "orders/2/x=2", "orders/1=3"}; !sameEvents(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	n.publish(t, "zz", "end") // not subscribed: nothing more may have arrived
	n.publish(t, "news", "end")
	if topic, data := named(t, c.next(t)); topic != "news" || data != "end" {
		t.Fatalf("a duplicate or a stray event: %s=%s", topic, data)
	}
}

// sameEvents compares two event lists allowing only different interleaving
// of topics (order is per topic).
func sameEvents(got, want []string) bool {
	perTopic := func(list []string) map[string][]string {
		m := map[string][]string{}
		for _, e := range list {
			topic, _, _ := strings.Cut(e, "=")
			m[topic] = append(m[topic], e)
		}
		return m
	}
	g, w := perTopic(got), perTopic(want)
	if len(g) != len(w) {
		return false
	}
	for k := range w {
		if !slices.Equal(g[k], w[k]) {
			return false
		}
	}
	return true
}

func TestServer_patterns_badRequests(t *testing.T) {
	n := startNode(t, Config{}, pubsub.PublisherConfig{})
	for _, topic := range []string{"*/x", "ord*/x", "orders/***", "{x}/*", "*", "**", "orders*", strings.Repeat("a", 300) + "/*"} {
		res, err := http.Get(eventsURL(n.url, topic))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("%q: %d, want 400", topic, res.StatusCode)
		}
	}
}

// TestServer_patterns_historyLost: a pattern client whose position is no
// longer in the feed's history gets a history-lost event naming its
// pattern, placed at the gap, then every retained event it matches.
func TestServer_patterns_historyLost(t *testing.T) {
	n := startNode(t, Config{}, pubsub.PublisherConfig{FeedMaxLen: 1})
	first := n.publish(t, "orders/1", "0")
	for i := 1; i < 50; i++ {
		n.publish(t, fmt.Sprintf("orders/%d", i%3), fmt.Sprint(i))
	}
	kept, err := n.rdb.XRange(context.Background(), "t:{orders}/**:stream", "-", "+").Result()
	if err != nil || len(kept) == 0 {
		t.Fatal(kept, err)
	}
	c := subscribe(t, eventsURL(n.url, "orders/*"), first)
	ev := c.next(t)
	if ev.Type != "history-lost" || ev.Data != `{"topics":["orders/*"],"reason":"trimmed"}` || ev.LastEventID != kept[0].Values["p"] {
		t.Fatalf("got %+v", ev)
	}
	for _, k := range kept {
		topic, data := named(t, c.next(t))
		if topic != k.Values["k"] || data != k.Values["d"] {
			t.Fatalf("retained %v, got %s=%s", k.Values, topic, data)
		}
	}
}
