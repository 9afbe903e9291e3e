package gateway

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ssegateway/ssegateway/contract"
)

func BenchmarkAppendBody(b *testing.B) {
	for _, c := range []struct {
		name, data string
	}{
		{"100B", strings.Repeat("x", 100)},
		{"4KiB-lines", strings.Repeat(strings.Repeat("y", 63)+"\n", 64)},
	} {
		b.Run(c.name, func(b *testing.B) {
			buf := make([]byte, 0, 8192)
			b.ReportAllocs()
			b.SetBytes(int64(len(c.data)))
			for b.Loop() {
				buf = appendBody(buf[:0], "tick", c.data)
			}
		})
	}
}

func BenchmarkNewFrame(b *testing.B) {
	ev := event{id: contract.ID{Ms: 1795478727864, Seq: 3}, prev: contract.ID{Ms: 1795478727864, Seq: 2}, typ: "tick", data: strings.Repeat("x", 100)}
	b.ReportAllocs()
	for b.Loop() {
		_ = newFrame(ev)
	}
}

func BenchmarkCursor(b *testing.B) {
	tags := tagsOf("orders/42", "news/world", "user:42")
	pos := []contract.ID{{Ms: 1795478727864, Seq: 1}, {Ms: 1795478727001}, {Ms: 1795478720000, Seq: 12}}
	cur := string(appendCursor(nil, tags, pos))
	b.Run("encode-3-topics", func(b *testing.B) {
		buf := make([]byte, 0, 128)
		b.ReportAllocs()
		for b.Loop() {
			buf = appendCursor(buf[:0], tags, pos)
		}
	})
	b.Run("decode-3-topics", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = decodeCursor(cur, tags)
		}
	})
}

// BenchmarkHubBroadcast delivers one live event to N streams of its topic
// and has each stream's writer take it, as the writers would: the cost of
// fan-out per event, and per delivery.
func BenchmarkHubBroadcast(b *testing.B) {
	for _, subs := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			hist := newMemHistory()
			h := newHub(&fakeSub{}, hist, nopLogger(), newMetrics(), time.Minute, 0, 512)
			conns := make([]*conn, subs)
			for i := range conns {
				conns[i] = newConn([]string{"t"}, 1<<30)
				h.join(conns[i])
			}
			h.HandleSubscribed("t")
			if err := h.sync(b.Context(), h.lookup("t")); err != nil {
				b.Fatal(err)
			}
			data := strings.Repeat("x", 100)
			prev := contract.ID{}
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				n++
				id := contract.ID{Ms: uint64(n)}
				h.HandleEvent("t", contract.Envelope{ID: id.String(), Prev: prev.String(), Data: data})
				prev = id
				for _, c := range conns {
					q, _ := c.take()
					c.recycle(q)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*subs), "ns/delivery")
		})
	}
}

func BenchmarkConnEnqueueTake(b *testing.B) {
	c := newConn([]string{"t"}, 1<<30)
	f := newFrame(event{id: contract.ID{Ms: 1}, data: strings.Repeat("x", 100)})
	b.ReportAllocs()
	for b.Loop() {
		for range 16 {
			c.enqueue(f, 0)
		}
		q, _ := c.take()
		c.recycle(q)
	}
}
