package fanout

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ssegateway/ssegateway/auth"
	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/internal/memhistory"
)

// feedShapes are the pattern shapes a node can hold, each with a topic
// that pattern i alone matches among its shape's patterns.
var feedShapes = []struct {
	name           string
	pattern, topic string // with %d for i
}{
	{"literal", "bench/%d/*", "bench/%d/x"}, // a literal segment: a map lookup, then the * edge
	{"star", "bench/*/%d", "bench/x/%d"},    // the * edge, then a literal
	{"glob", "bench/u%d-*", "bench/u%d-x"},  // a segment with * inside: tried one by one
	{"tail", "bench/**/%d", "bench/x/%d"},   // from ** on, the rest as a whole: tried one by one
}

// joinFeed has one named stream per pattern join the feed bench/** of a
// fresh hub and brings the feed live.
func joinFeed(b *testing.B, patterns []string) (*Hub, []*Outbox) {
	b.Helper()
	h := New(Config{Grace: time.Minute}, &fakeSub{}, memhistory.New())
	outs := make([]*Outbox, len(patterns))
	for i, raw := range patterns {
		p, err := auth.ParsePattern(raw)
		if err != nil {
			b.Fatal(err)
		}
		outs[i] = NewOutbox([]Want{{Source: "bench/**", Filter: []auth.Pattern{p}}}, NamedForm{}, 1<<30)
		h.Join(outs[i])
	}
	h.HandleSubscribed("bench/**")
	if err := h.sync(b.Context(), h.lookup("bench/**")); err != nil {
		b.Fatal(err)
	}
	return h, outs
}

// BenchmarkHubFeed is the cost per event of a feed through a node holding
// 1, 100 or 10,000 distinct patterns, one stream each: each event matches
// exactly one pattern, so the figure is matching plus one delivery (parse,
// sequence, match, encode once with its topic, hand over, the stream's
// writer takes it). ns/op is per event. "mixed" holds the four shapes in
// equal parts.
func BenchmarkHubFeed(b *testing.B) {
	shapes := append(feedShapes[:len(feedShapes):len(feedShapes)], struct {
		name           string
		pattern, topic string
	}{"mixed", "", ""})
	for _, shape := range shapes {
		for _, n := range []int{1, 100, 10000} {
			b.Run(fmt.Sprintf("%s/patterns=%d", shape.name, n), func(b *testing.B) {
				patterns, topics := make([]string, n), make([]string, n)
				for i := range n {
					s := shape
					if s.name == "mixed" {
						s = feedShapes[i%len(feedShapes)]
					}
					patterns[i], topics[i] = fmt.Sprintf(s.pattern, i), fmt.Sprintf(s.topic, i)
				}
				h, outs := joinFeed(b, patterns)
				data := strings.Repeat("x", 100)
				prev := contract.ID{}
				k := 0
				b.ReportAllocs()
				for b.Loop() {
					k++
					i := k % n
					id := contract.ID{Ms: uint64(k)}
					h.HandleEvent("bench/**", contract.Envelope{ID: id.String(), Prev: prev.String(), Topic: topics[i], Data: data})
					prev = id
					q, _ := outs[i].Take()
					if len(q) != 1 {
						b.Fatalf("event %d on %s: the stream of %s got %d frames, want 1", k, topics[i], patterns[i], len(q))
					}
					outs[i].Recycle(q)
				}
				b.ReportMetric(float64(k)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}

// BenchmarkHubBroadcastFeed is BenchmarkHubBroadcast on a pattern: N
// streams of bench/*, events spread over 100 topics under bench/. Beside
// BenchmarkHubBroadcast it is what a delivery to a pattern stream costs
// more than one to a topic's stream (the index, once-per-stream, the
// event's topic in its data).
func BenchmarkHubBroadcastFeed(b *testing.B) {
	topics := make([]string, 100)
	for i := range topics {
		topics[i] = "bench/" + strconv.Itoa(i)
	}
	for _, subs := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			patterns := make([]string, subs)
			for i := range patterns {
				patterns[i] = "bench/*"
			}
			h, outs := joinFeed(b, patterns)
			data := strings.Repeat("x", 100)
			prev := contract.ID{}
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				n++
				id := contract.ID{Ms: uint64(n)}
				h.HandleEvent("bench/**", contract.Envelope{ID: id.String(), Prev: prev.String(), Topic: topics[n%len(topics)], Data: data})
				prev = id
				for _, o := range outs {
					q, _ := o.Take()
					o.Recycle(q)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*subs), "ns/delivery")
		})
	}
}
