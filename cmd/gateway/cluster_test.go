package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssegateway/ssegateway/internal/redistest"
)

func clusterEnv(url string) map[string]string {
	return map[string]string{"GATEWAY_REDIS_URL": url, "GATEWAY_INSECURE_NO_AUTH": "true", "GATEWAY_RETRY": "100ms"}
}

// clusterTopics picks perMaster topics owned by each primary of c.
func clusterTopics(t *testing.T, c *redistest.Cluster, perMaster int) []string {
	cc := c.Client()
	return topicsOnEveryMaster(t, func(tp string) string {
		return c.MasterOf(keySlot(t, cc, "{"+tp+"}")).Addr()
	}, len(c.Masters()), perMaster)
}

// TestRun_cluster_deliverAndResume: two gateways on a 3-primary cluster,
// topics on every shard; a client streams them all from one node, the node
// stops, and the client resumes on the other with its cursor: every event
// once, in order.
func TestRun_cluster_deliverAndResume(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	topics := clusterTopics(t, c, 2)
	a, b := startRun(t, clusterEnv(c.URL())), startRun(t, clusterEnv(c.URL()))
	failover(t, a, b, topics, 100, func(context.CancelFunc) { a.stop() })
	// Each topic's history lives on its own shard.
	cc := c.Client()
	for _, tp := range topics {
		owner := c.MasterOf(keySlot(t, cc, "{"+tp+"}"))
		n, err := owner.Client().XLen(context.Background(), "sse:{"+tp+"}:stream").Result()
		if err != nil || n != 100 {
			t.Errorf("%s: %d entries on its primary %s (%v)", tp, n, owner.Addr(), err)
		}
	}
}

// TestRun_cluster_primaryFailover kills a primary (kill -9) while events
// flow; its replica is promoted. Clients get every event that survived
// exactly once, and a history-lost event after any they got that died with
// the primary.
func TestRun_cluster_primaryFailover(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	topics := clusterTopics(t, c, 2)
	n := startRun(t, clusterEnv(c.URL()))
	cc := c.Client()
	victim := c.MasterOf(keySlot(t, cc, "{"+topics[0]+"}"))
	replica := c.ReplicaOf(victim)
	lost := faultRun(t, n.url, cc, true, topics, func() {
		victim.Kill()
		c.WaitHealthy()
		if got := c.MasterOf(keySlot(t, cc, "{"+topics[0]+"}")); got != replica {
			t.Fatalf("slot owner after failover is %s, want the replica %s", got.Addr(), replica.Addr())
		}
	})
	total := 0
	for _, k := range lost {
		total += k
	}
	if total == 0 {
		t.Log("outcome: no acknowledged write was lost in the failover; every event arrived exactly once, gaps repaired from the stream")
	} else {
		t.Logf("outcome: %d acknowledged writes died with the primary (asynchronous replication); clients that had them got history-lost", total)
	}
}

// TestRun_cluster_resharding moves the slots of live topics from one
// primary to another (MIGRATE, then SETSLOT NODE) while events flow: no
// loss, no duplicates, no history-lost.
func TestRun_cluster_resharding(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	topics := clusterTopics(t, c, 2)
	n := startRun(t, clusterEnv(c.URL()))
	cc := c.Client()
	lost := faultRun(t, n.url, cc, true, topics, func() {
		// Move every slot of the topics on the first topic's primary to
		// the next primary.
		src := c.MasterOf(keySlot(t, cc, "{"+topics[0]+"}"))
		var dst *redistest.Server
		for _, m := range c.Masters() {
			if m != src {
				dst = m
				break
			}
		}
		moved := 0
		for _, tp := range topics {
			slot := keySlot(t, cc, "{"+tp+"}")
			if c.MasterOf(slot) == src {
				migrateSlot(t, c, slot, src, dst)
				moved++
			}
		}
		t.Logf("moved %d topics' slots from %s to %s", moved, src.Addr(), dst.Addr())
	})
	for tp, k := range lost {
		if k > 0 {
			t.Errorf("%s: %d acknowledged writes lost in a resharding", tp, k)
		}
	}
	// The node followed the slots: Redis unsubscribed it on the old
	// primary and it subscribed on the new one.
	if !strings.Contains(n.logs.String(), "slot moved to another primary") {
		t.Errorf("the node never noticed the slots moving:\n%s", n.logs)
	}
}

// migrateSlot moves slot from src to dst the way redis-cli --cluster
// reshard does, while clients keep writing.
func migrateSlot(t *testing.T, c *redistest.Cluster, slot int, src, dst *redistest.Server) {
	t.Helper()
	srcID, dstID := c.ID(src), c.ID(dst)
	c.Do(dst, "cluster", "setslot", slot, "importing", srcID)
	c.Do(src, "cluster", "setslot", slot, "migrating", dstID)
	host, portStr, _ := strings.Cut(dst.Addr(), ":")
	port, _ := strconv.Atoi(portStr)
	for {
		keys := c.Do(src, "cluster", "getkeysinslot", slot, 100).([]any)
		if len(keys) == 0 {
			break
		}
		args := []any{"migrate", host, port, "", 0, 5000, "keys"}
		args = append(args, keys...)
		c.Do(src, args...)
		time.Sleep(20 * time.Millisecond) // writes go on meanwhile, through ASK
	}
	for _, m := range c.Masters() {
		c.Do(m, "cluster", "setslot", slot, "node", dstID)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.MasterOf(slot) != dst {
		if time.Now().After(deadline) {
			t.Fatalf("slot %d still on %s", slot, c.MasterOf(slot).Addr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRun_sentinel_failover: a primary, a replica and three sentinels; the
// primary is killed while events flow and Sentinel promotes the replica;
// the gateway follows it. Same assertions as the cluster failover.
func TestRun_sentinel_failover(t *testing.T) {
	s := redistest.StartSentinel(t)
	// The explicit settings, rather than a redis-sentinel:// URL.
	n := startRun(t, map[string]string{"GATEWAY_REDIS_SENTINEL_MASTER": s.Name,
		"GATEWAY_REDIS_SENTINEL_ADDRS": strings.Join(s.Addrs(), ","), "GATEWAY_INSECURE_NO_AUTH": "true", "GATEWAY_RETRY": "100ms"})
	if !strings.Contains(n.logs.String(), `"topology":"sentinel"`) {
		t.Fatalf("not on Sentinel:\n%s", n.logs)
	}
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.Name, SentinelAddrs: s.Addrs()})
	defer rdb.Close()
	topics := []string{"s-a", "s-b", "s-c"}
	lost := faultRun(t, n.url, rdb, false, topics, func() {
		s.Master.Kill()
		deadline := time.Now().Add(30 * time.Second)
		for s.CurrentMaster() != s.Replica.Addr() {
			if time.Now().After(deadline) {
				t.Fatalf("sentinels did not promote the replica; primary is %s", s.CurrentMaster())
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	total := 0
	for _, k := range lost {
		total += k
	}
	t.Logf("outcome: %d acknowledged writes lost in the Sentinel failover", total)
}

// TestRun_cluster_patternsPrimaryFailover: pattern clients, one per feed,
// with feeds on every primary of a 3-primary cluster (a feed and its topics
// share their first segment's slot); a primary is killed while events flow.
// Every event each topic's stream holds reaches its pattern client once and
// in order; an event that died with the primary is followed by history-lost.
func TestRun_cluster_patternsPrimaryFailover(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	segs := clusterTopics(t, c, 1)
	var topics []string
	var subs [][]string
	for _, seg := range segs {
		topics = append(topics, seg+"/a", seg+"/b")
		subs = append(subs, []string{seg + "/*"})
	}
	n := startRun(t, clusterEnv(c.URL()))
	cc := c.Client()
	victim := c.MasterOf(keySlot(t, cc, "{"+segs[0]+"}"))
	lost := faultRun(t, n.url, cc, true, topics, func() {
		victim.Kill()
		c.WaitHealthy()
	}, subs...)
	for _, seg := range segs {
		feed, err := c.MasterOf(keySlot(t, cc, "{"+seg+"}")).Client().XLen(context.Background(), "sse:{"+seg+"}/**:stream").Result()
		if err != nil || feed == 0 {
			t.Errorf("feed %s/** not on its first segment's primary: %d, %v", seg, feed, err)
		}
	}
	total := 0
	for _, k := range lost {
		total += k
	}
	t.Logf("outcome: %d acknowledged writes lost in the failover", total)
}
