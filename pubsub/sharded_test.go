package pubsub_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/internal/redistest"
	"github.com/ssegateway/ssegateway/internal/testutil"
	"github.com/ssegateway/ssegateway/pubsub"
)

// TestShardedSubscriber_cluster: on a 3-primary cluster the subscriber holds
// one sharded subscription connection per primary that owns wanted topics,
// subscribes each topic's channel only on its owner, delivers what is
// published there, and lets go of unwanted topics.
func TestShardedSubscriber_cluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	cc := c.Client()
	keys, _ := contract.NewKeys("c:")
	sub := pubsub.NewShardedSubscriber(cc, pubsub.SubscriberConfig{Keys: keys, PingInterval: 200 * time.Millisecond, Logger: zerolog.Nop()})
	if sub.Healthy() {
		t.Fatal("healthy before running")
	}
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sub.Run(ctx, rec) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	testutil.WaitFor(t, "healthy with no topics", sub.Healthy)

	// 30 topics land on all three primaries, several per slot group.
	var topics []string
	for i := range 30 {
		topics = append(topics, fmt.Sprintf("t%d", i))
	}
	sub.Subscribe(topics...)
	testutil.WaitFor(t, "every topic confirmed", func() bool {
		_, s, _ := rec.snapshot()
		for _, tp := range topics {
			if count(s, tp) != 1 {
				return false
			}
		}
		return true
	})
	testutil.WaitFor(t, "healthy", sub.Healthy)

	owners := map[string]bool{}
	for _, tp := range topics {
		slot := int(cc.ClusterKeySlot(ctx, keys.Channel(tp)).Val())
		owner := c.MasterOf(slot)
		owners[owner.Addr()] = true
		for _, m := range c.Masters() {
			n := m.Client().PubSubShardNumSub(ctx, keys.Channel(tp)).Val()[keys.Channel(tp)]
			if want := map[bool]int64{true: 1, false: 0}[m == owner]; n != want {
				t.Errorf("%s: %d subscriptions on %s, want %d (owner %s)", tp, n, m.Addr(), want, owner.Addr())
			}
		}
	}
	if len(owners) != 3 {
		t.Fatalf("topics on %d primaries", len(owners))
	}
	for _, m := range c.Masters() {
		list := m.Client().ClientList(ctx).Val()
		if n := strings.Count(list, "flags=P"); n != 1 {
			t.Errorf("%s: %d pub/sub connections, want 1:\n%s", m.Addr(), n, list)
		}
	}

	pub := pubsub.NewPublisher(cc, pubsub.PublisherConfig{Keys: keys, Sharded: true})
	for _, tp := range topics {
		if _, err := pub.Publish(ctx, pubsub.Message{Topic: tp, Data: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, "every event", func() bool {
		e, _, _ := rec.snapshot()
		for _, tp := range topics {
			if count(e, tp+"=x") != 1 {
				return false
			}
		}
		return true
	})

	sub.Unsubscribe(topics[:10]...)
	testutil.WaitFor(t, "unsubscribed", func() bool {
		for _, tp := range topics[:10] {
			for _, m := range c.Masters() {
				if m.Client().PubSubShardNumSub(ctx, keys.Channel(tp)).Val()[keys.Channel(tp)] != 0 {
					return false
				}
			}
		}
		return true
	})
	if _, err := pub.Publish(ctx, pubsub.Message{Topic: topics[0], Data: "y"}); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish(ctx, pubsub.Message{Topic: topics[29], Data: "y"}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the wanted topic's event", func() bool { e, _, _ := rec.snapshot(); return count(e, topics[29]+"=y") == 1 })
	if e, _, _ := rec.snapshot(); count(e, topics[0]+"=y") != 0 {
		t.Error("an unsubscribed topic's event was delivered")
	}
	if !sub.Healthy() {
		t.Error("unhealthy at the end")
	}
}

func TestRedisConfig_Client(t *testing.T) {
	for _, tc := range []struct {
		cfg      pubsub.RedisConfig
		topology pubsub.Topology
		err      string
		check    func(t *testing.T, c redis.UniversalClient)
	}{
		{cfg: pubsub.RedisConfig{URL: "redis://:pw@h:6379/2"}, topology: pubsub.Standalone, check: func(t *testing.T, c redis.UniversalClient) {
			o := c.(*redis.Client).Options()
			if o.Addr != "h:6379" || o.DB != 2 || o.Password != "pw" {
				t.Errorf("%+v", o)
			}
		}},
		{cfg: pubsub.RedisConfig{URL: "redis-cluster://u:pw@a:1,b:2,c:3"}, topology: pubsub.Cluster, check: func(t *testing.T, c redis.UniversalClient) {
			o := c.(*redis.ClusterClient).Options()
			if strings.Join(o.Addrs, " ") != "a:1 b:2 c:3" || o.Username != "u" || o.Password != "pw" || o.ClusterStateReloadInterval > 5*time.Second {
				t.Errorf("%+v", o)
			}
		}},
		{cfg: pubsub.RedisConfig{URL: "redis-sentinel://:pw@s1:26379,s2:26379/mymaster/3?sentinel_password=sp"}, topology: pubsub.Sentinel},
		{cfg: pubsub.RedisConfig{URL: "redis-cluster://a:1", Password: "from-secret"}, topology: pubsub.Cluster, check: func(t *testing.T, c redis.UniversalClient) {
			if o := c.(*redis.ClusterClient).Options(); o.Password != "from-secret" {
				t.Errorf("password %q", o.Password)
			}
		}},
		{cfg: pubsub.RedisConfig{URL: "redis://:in-url@h:1", Password: "other"}, topology: pubsub.Standalone, check: func(t *testing.T, c redis.UniversalClient) {
			if o := c.(*redis.Client).Options(); o.Password != "in-url" {
				t.Errorf("password %q", o.Password)
			}
		}},
		{cfg: pubsub.RedisConfig{SentinelMaster: "m", SentinelAddrs: []string{"s:26379"}, Password: "p"}, topology: pubsub.Sentinel},
		{cfg: pubsub.RedisConfig{ClusterAddrs: []string{"a:1"}}, topology: pubsub.Cluster},
		{cfg: pubsub.RedisConfig{}, err: "no Redis configured"},
		{cfg: pubsub.RedisConfig{URL: "redis://h:1", ClusterAddrs: []string{"a:1"}}, err: "one way"},
		{cfg: pubsub.RedisConfig{SentinelMaster: "m"}, err: "both"},
		{cfg: pubsub.RedisConfig{URL: "http://h:1"}, err: "unknown scheme"},
		{cfg: pubsub.RedisConfig{URL: "redis-cluster://"}, err: "no addresses"},
		{cfg: pubsub.RedisConfig{URL: "redis-cluster://a:1,b"}, err: "port"},
		{cfg: pubsub.RedisConfig{URL: "redis-cluster://a:1,b:x"}, err: "port"},
		{cfg: pubsub.RedisConfig{URL: "redis-cluster://a:1/2"}, err: "one database"},
		{cfg: pubsub.RedisConfig{URL: "redis-sentinel://s:1"}, err: "primary name"},
		{cfg: pubsub.RedisConfig{URL: "redis-sentinel://s:1/m/x"}, err: "bad database"},
		{cfg: pubsub.RedisConfig{URL: "redis-sentinel://s:1/m?db=1"}, err: "unknown parameters"},
	} {
		t.Run(tc.cfg.Describe(), func(t *testing.T) {
			c, topo, err := tc.cfg.Client()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if topo != tc.topology {
				t.Errorf("topology %v, want %v", topo, tc.topology)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
	for _, u := range []string{"redis://u:secret@h:1", "redis-sentinel://s1:26379/mymaster?sentinel_password=secret"} {
		if d := (pubsub.RedisConfig{URL: u}).Describe(); strings.Contains(d, "secret") {
			t.Errorf("Describe shows the password: %s", d)
		}
	}
}
