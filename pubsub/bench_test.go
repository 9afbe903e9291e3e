package pubsub_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/internal/redistest"
	"github.com/ssegateway/ssegateway/pubsub"
)

// benchTopology is a Redis to benchmark on: one server, or a cluster.
type benchTopology struct {
	name    string
	start   func(b *testing.B) (redis.UniversalClient, []*redistest.Server)
	sharded bool
}

// busiest reports the CPU utilisation of the busiest Redis process since
// the CPU times in before were taken: the share of one core the hottest
// shard needed, which is what runs out first.
func busiest(servers []*redistest.Server, before []time.Duration, since time.Time) float64 {
	top := 0.0
	for i, s := range servers {
		top = max(top, float64(s.CPU()-before[i])/float64(time.Since(since)))
	}
	return 100 * top
}

func cpuTimes(servers []*redistest.Server) []time.Duration {
	out := make([]time.Duration, len(servers))
	for i, s := range servers {
		out[i] = s.CPU()
	}
	return out
}

func benchTopologies() []benchTopology {
	return []benchTopology{
		{"redis=1", func(b *testing.B) (redis.UniversalClient, []*redistest.Server) {
			s := redistest.Start(b)
			return s.Client(), []*redistest.Server{s}
		}, false},
		{"cluster=3", func(b *testing.B) (redis.UniversalClient, []*redistest.Server) {
			c := redistest.StartCluster(b, 3, 0)
			return c.Client(), c.Nodes
		}, true},
	}
}

const benchTopics = 1000

// BenchmarkPublish: publishes per second through the publish script from 64
// concurrent publishers over 1,000 topics, on one Redis and on a 3-primary
// cluster (where each publish touches one shard).
func BenchmarkPublish(b *testing.B) {
	for _, tp := range benchTopologies() {
		b.Run(tp.name, func(b *testing.B) {
			rdb, servers := tp.start(b)
			keys, _ := contract.NewKeys("b:")
			pub := pubsub.NewPublisher(rdb, pubsub.PublisherConfig{Keys: keys, Sharded: tp.sharded})
			var n atomic.Int64
			b.SetParallelism(32) // x GOMAXPROCS publishers
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTimes(servers)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					if _, err := pub.Publish(context.Background(), pubsub.Message{Topic: fmt.Sprintf("t%d", i%benchTopics), Data: "0123456789abcdef"}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "publishes/s")
			b.ReportMetric(busiest(servers, cpu0, start), "busiest-redis-cpu-%")
		})
	}
}

// countingHandler counts envelopes and confirmations.
type countingHandler struct {
	events, subs atomic.Int64
}

func (h *countingHandler) HandleEvent(string, contract.Envelope) { h.events.Add(1) }
func (h *countingHandler) HandleSubscribed(string)               { h.subs.Add(1) }
func (h *countingHandler) HandleDisconnected(error)              {}

// BenchmarkFanIn: events per second from 64 concurrent publishers to a
// gateway node's subscription (the node's whole intake), 1,000 topics, on
// one Redis and on a 3-primary cluster with sharded pub/sub (one
// connection per primary).
func BenchmarkFanIn(b *testing.B) {
	for _, tp := range benchTopologies() {
		b.Run(tp.name, func(b *testing.B) {
			rdb, servers := tp.start(b)
			keys, _ := contract.NewKeys("b:")
			cfg := pubsub.SubscriberConfig{Keys: keys, Logger: zerolog.Nop()}
			var sub interface {
				Subscribe(...string)
				Run(context.Context, pubsub.Handler) error
			}
			if cc, ok := rdb.(*redis.ClusterClient); ok {
				sub = pubsub.NewShardedSubscriber(cc, cfg)
			} else {
				sub = pubsub.NewSubscriber(rdb, cfg)
			}
			h := &countingHandler{}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() { _ = sub.Run(ctx, h) })
			defer func() { cancel(); wg.Wait() }()
			topics := make([]string, benchTopics)
			for i := range topics {
				topics[i] = fmt.Sprintf("t%d", i)
			}
			sub.Subscribe(topics...)
			for h.subs.Load() < benchTopics {
				time.Sleep(10 * time.Millisecond)
			}
			pub := pubsub.NewPublisher(rdb, pubsub.PublisherConfig{Keys: keys, Sharded: tp.sharded})
			var n atomic.Int64
			b.SetParallelism(32)
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTimes(servers)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					if _, err := pub.Publish(context.Background(), pubsub.Message{Topic: topics[i%benchTopics], Data: "0123456789abcdef"}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			for h.events.Load() < int64(b.N) {
				time.Sleep(time.Millisecond)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
			b.ReportMetric(busiest(servers, cpu0, start), "busiest-redis-cpu-%")
		})
	}
}
