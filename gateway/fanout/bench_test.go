package fanout

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/internal/memhistory"
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
				buf = AppendBody(buf[:0], "tick", c.data)
			}
		})
	}
}

func BenchmarkNewFrame(b *testing.B) {
	ev := &Event{ID: contract.ID{Ms: 1795478727864, Seq: 3}, Prev: contract.ID{Ms: 1795478727864, Seq: 2}, Type: "tick", Data: strings.Repeat("x", 100)}
	b.ReportAllocs()
	for b.Loop() {
		f := newFrame(ev)
		f.build(PlainForm{})
	}
}

// BenchmarkHubBroadcast delivers one live event to N streams of its topic
// and has each stream's writer take it, as the writers would: the cost of
// fan-out per event, and per delivery.
func BenchmarkHubBroadcast(b *testing.B) {
	for _, subs := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			h := New(Config{Grace: time.Minute}, &fakeSub{}, memhistory.New())
			outs := make([]*Outbox, subs)
			for i := range outs {
				outs[i] = Topics([]string{"t"}, 1<<30)
				h.Join(outs[i])
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
				for _, o := range outs {
					q, _ := o.Take()
					o.Recycle(q)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*subs), "ns/delivery")
		})
	}
}

func BenchmarkOutboxEnqueueTake(b *testing.B) {
	c := Topics([]string{"t"}, 1<<30)
	f := newFrame(&Event{ID: contract.ID{Ms: 1}, Data: strings.Repeat("x", 100)})
	f.build(PlainForm{})
	b.ReportAllocs()
	for b.Loop() {
		for range 16 {
			c.enqueue(f, 0)
		}
		q, _ := c.Take()
		c.Recycle(q)
	}
}
