package pubsub_test

import (
	"context"
	"crypto/rand"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/internal/redistest"
	"github.com/ssegateway/ssegateway/pubsub"
)

// publishV1 is the publish script of contract version 1, as it was before
// feeds (git show 4b1a2ec:pubsub/publish.lua), kept to measure what
// version 2 costs.
//
//go:embed testdata/publish_v1.lua
var publishV1 string

// BenchmarkPublishCost is what a publish costs Redis before and after
// contract version 2, from 64 concurrent publishers (no pipelining) over
// 100 topics, 16-byte events, on one Redis:
//
//   - v1/with-slash: the version 1 script (one stream) for topics t/0 …
//     t/99, keys {t/N}, as the version 1 Go publisher sent it (with a fresh
//     idempotency key);
//   - v2/without-slash: the version 2 script for topics t0 … t99: no feed,
//     the same work as version 1 plus the script's key check;
//   - v2/with-slash: the version 2 script for t/0 … t/99, which also
//     appends every event to the feed t/** and publishes it on the feed's
//     channel.
//
// Metrics: redis-µs/publish is the script's own time in Redis (INFO
// commandstats, EVALSHA), redis-cpu-µs/publish the Redis process's CPU per
// publish (the script plus reading requests and writing replies),
// publishes/s the rate the publishers reached, and the commands the script
// ran per publish.
func BenchmarkPublishCost(b *testing.B) {
	srv := redistest.Start(b)
	rdb := srv.Client()
	keys, _ := contract.NewKeys("b:")
	v2 := pubsub.NewPublisher(rdb, pubsub.PublisherConfig{Keys: keys})
	v2Publish := func(topic string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			_, err := v2.Publish(ctx, pubsub.Message{Topic: topic, Data: "0123456789abcdef"})
			return err
		}
	}
	v1 := redis.NewScript(publishV1)
	v1Publish := func(topic string) func(ctx context.Context) error {
		k := func(suffix string) string { return "b:{" + topic + "}:" + suffix }
		return func(ctx context.Context) error {
			keys := []string{k("stream"), k("last"), k("events"), k("idem:" + rand.Text())}
			return v1.Run(ctx, rdb, keys, "", "0123456789abcdef", pubsub.DefaultMaxLen,
				strconv.FormatInt(pubsub.DefaultMaxAge.Milliseconds(), 10), "PUBLISH", "5000").Err()
		}
	}
	for _, c := range []struct {
		name    string
		format  string
		publish func(topic string) func(context.Context) error
	}{
		{"v1/with-slash", "t/%d", v1Publish},
		{"v2/without-slash", "t%d", v2Publish},
		{"v2/with-slash", "t/%d", v2Publish},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			if err := rdb.FlushAll(ctx).Err(); err != nil {
				b.Fatal(err)
			}
			pubs := make([]func(context.Context) error, 100)
			for i := range pubs {
				pubs[i] = c.publish(fmt.Sprintf(c.format, i))
				if err := pubs[i](ctx); err != nil { // loads the script
					b.Fatal(err)
				}
			}
			if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
				b.Fatal(err)
			}
			var n atomic.Int64
			b.SetParallelism(32) // x GOMAXPROCS publishers
			b.ResetTimer()
			start, cpu0 := time.Now(), srv.CPU()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := pubs[n.Add(1)%int64(len(pubs))](ctx); err != nil {
						b.Error(err)
						return
					}
				}
			})
			elapsed, cpu := time.Since(start), srv.CPU()-cpu0
			b.StopTimer()
			stats := commandStats(b, rdb)
			script := stats["evalsha"]
			if script.calls != int64(b.N) {
				b.Fatalf("Redis ran the script %d times for %d publishes", script.calls, b.N)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "publishes/s")
			b.ReportMetric(script.usec/float64(script.calls), "redis-µs/publish")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "redis-cpu-µs/publish")
			for _, cmd := range []string{"xadd", "publish"} {
				b.ReportMetric(float64(stats[cmd].calls)/float64(b.N), cmd+"/publish")
			}
		})
	}
}

type commandStat struct {
	calls int64
	usec  float64
}

// commandStats reads INFO commandstats: calls and microseconds per command.
func commandStats(b *testing.B, rdb *redis.Client) map[string]commandStat {
	b.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]commandStat{}
	for _, l := range strings.Split(info, "\n") {
		name, fields, ok := strings.Cut(strings.TrimSpace(l), ":")
		name, found := strings.CutPrefix(name, "cmdstat_")
		if !ok || !found {
			continue
		}
		var s commandStat
		for _, f := range strings.Split(fields, ",") {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "calls":
				s.calls, _ = strconv.ParseInt(v, 10, 64)
			case "usec":
				s.usec, _ = strconv.ParseFloat(v, 64)
			}
		}
		out[name] = s
	}
	return out
}
