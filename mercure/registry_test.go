package mercure_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/ssegateway/ssegateway/internal/redistest"
	"github.com/ssegateway/ssegateway/mercure"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newRegistry(t testing.TB, rdb redis.Cmdable, node string, lease time.Duration, opts ...func(*mercure.RegistryConfig)) *mercure.Registry {
	t.Helper()
	cfg := mercure.RegistryConfig{Prefix: "test:", Node: node, Lease: lease}
	for _, o := range opts {
		o(&cfg)
	}
	r, err := mercure.NewRegistry(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func sub(id string, topics ...string) mercure.Subscriber {
	return mercure.Subscriber{ID: id, Topics: topics}
}

func ids(subs []mercure.RegisteredSubscriber) []string {
	out := make([]string, len(subs))
	for i, s := range subs {
		out[i] = s.Node + "/" + s.ID
	}
	slices.Sort(out)
	return out
}

func listIDs(t testing.TB, r *mercure.Registry) []string {
	t.Helper()
	subs, err := r.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ids(subs)
}

func miniClient(t testing.TB) (*miniredis.Miniredis, *redis.Client) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	return mr, rdb
}

func TestNewRegistry_refuses(t *testing.T) {
	t.Parallel()
	_, rdb := miniClient(t)
	for name, cfg := range map[string]mercure.RegistryConfig{
		"no node":         {},
		"node with space": {Node: "a b"},
		"node with brace": {Node: "a{b}"},
		"long node":       {Node: strings.Repeat("n", 65)},
		"prefix brace":    {Node: "a", Prefix: "x{"},
		"prefix space":    {Node: "a", Prefix: "x y"},
		"short lease":     {Node: "a", Lease: time.Millisecond},
	} {
		if _, err := mercure.NewRegistry(rdb, cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestRegistry_lifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mr, rdb := miniClient(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mr.SetTime(now)
	a := newRegistry(t, rdb, "node-a", 10*time.Second)
	b := newRegistry(t, rdb, "node-b", 10*time.Second)

	payload := json.RawMessage(`{"user":"u1"}`)
	s1 := mercure.Subscriber{ID: "urn:uuid:1", Topics: []string{"https://example.com/{id}", "x"}, Payload: payload}
	for _, err := range []error{
		a.Register(ctx, s1),
		a.Register(ctx, sub("urn:uuid:2", "y")),
		b.Register(ctx, sub("urn:uuid:3", "z")),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"node-a/urn:uuid:1", "node-a/urn:uuid:2", "node-b/urn:uuid:3"}
	if got := listIDs(t, b); !slices.Equal(got, want) {
		t.Errorf("B lists %v, want %v", got, want)
	}
	got, ok, err := b.Get(ctx, "urn:uuid:1")
	if err != nil || !ok || got.Node != "node-a" || !slices.Equal(got.Topics, s1.Topics) || string(got.Payload) != string(payload) {
		t.Errorf("B gets %+v %v %v", got, ok, err)
	}
	if _, ok, _ := b.Get(ctx, "urn:uuid:nope"); ok {
		t.Error("found an unknown subscriber")
	}

	if err := a.Unregister(ctx, "urn:uuid:2"); err != nil {
		t.Fatal(err)
	}
	if got := listIDs(t, b); !slices.Equal(got, []string{"node-a/urn:uuid:1", "node-b/urn:uuid:3"}) {
		t.Errorf("after unregister: %v", got)
	}

	// Node A stops heartbeating. Within its lease it is listed; after it,
	// not, even before anyone reaps it.
	mr.SetTime(now.Add(9 * time.Second))
	if _, err := b.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	if got := listIDs(t, b); len(got) != 2 {
		t.Errorf("within the lease: %v", got)
	}
	mr.SetTime(now.Add(11 * time.Second))
	if got := listIDs(t, b); !slices.Equal(got, []string{"node-b/urn:uuid:3"}) {
		t.Errorf("after A's lease: %v", got)
	}
	if _, ok, _ := b.Get(ctx, "urn:uuid:1"); ok {
		t.Error("Get found a subscriber of a dead node")
	}
	reaped, err := b.Reap(ctx)
	if err != nil || !slices.Equal(ids(reaped), []string{"node-a/urn:uuid:1"}) || string(reaped[0].Payload) != string(payload) {
		t.Errorf("Reap = %v, %v", ids(reaped), err)
	}
	if again, err := b.Reap(ctx); err != nil || len(again) != 0 {
		t.Errorf("a second Reap = %v, %v", ids(again), err)
	}
	if again, err := a.Reap(ctx); err != nil || len(again) != 0 {
		t.Errorf("another node's Reap = %v, %v", ids(again), err)
	}

	// A comes back (a long pause, not a crash): its heartbeat finds its
	// lease gone and writes its subscribers again.
	resynced, err := a.Heartbeat(ctx)
	if err != nil || !resynced {
		t.Errorf("A's heartbeat after its lease: resynced %v, %v", resynced, err)
	}
	if got := listIDs(t, b); !slices.Equal(got, []string{"node-a/urn:uuid:1", "node-b/urn:uuid:3"}) {
		t.Errorf("after A's resync: %v", got)
	}
	if resynced, _ := a.Heartbeat(ctx); resynced {
		t.Error("a heartbeat within the lease resynced")
	}

	// A leaves: gone at once.
	if err := a.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if got := listIDs(t, b); !slices.Equal(got, []string{"node-b/urn:uuid:3"}) {
		t.Errorf("after A left: %v", got)
	}
	if err := b.Unregister(ctx, "urn:uuid:3"); err != nil {
		t.Fatal(err)
	}
	if err := b.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	for _, k := range mr.Keys() {
		t.Errorf("key %q left behind", k)
	}
}

// Writes that fail are not lost: the node remembers its subscribers, and
// the next heartbeat writes them (and removes what it should have).
func TestRegistry_failedWritesRepairedByHeartbeat(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mr, rdb := miniClient(t)
	a := newRegistry(t, rdb, "node-a", 10*time.Second)
	if err := a.Register(ctx, sub("urn:uuid:old", "t")); err != nil {
		t.Fatal(err)
	}
	mr.SetError("ERR injected")
	if err := a.Register(ctx, sub("urn:uuid:new", "t")); err == nil {
		t.Fatal("Register succeeded with Redis failing")
	}
	if err := a.Unregister(ctx, "urn:uuid:old"); err == nil {
		t.Fatal("Unregister succeeded with Redis failing")
	}
	if _, err := a.Heartbeat(ctx); err == nil {
		t.Fatal("Heartbeat succeeded with Redis failing")
	}
	mr.SetError("")
	if got := listIDs(t, a); !slices.Equal(got, []string{"node-a/urn:uuid:old"}) {
		t.Errorf("before the repair: %v", got)
	}
	if resynced, err := a.Heartbeat(ctx); err != nil || !resynced {
		t.Fatalf("heartbeat: %v %v", resynced, err)
	}
	if got := listIDs(t, a); !slices.Equal(got, []string{"node-a/urn:uuid:new"}) {
		t.Errorf("after the repair: %v", got)
	}
}

// Every key is under the prefix, and records that no registry wrote are
// skipped, not trusted.
func TestRegistry_keysAndForeignRecords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mr, rdb := miniClient(t)
	a := newRegistry(t, rdb, "node-a", 10*time.Second)
	if err := a.Register(ctx, sub("urn:uuid:1", "t")); err != nil {
		t.Fatal(err)
	}
	for _, k := range mr.Keys() {
		if !strings.HasPrefix(k, "test:{mercure-subscriptions}:") {
			t.Errorf("key %q outside the prefix and tag", k)
		}
	}
	hash := "test:{mercure-subscriptions}:subscribers"
	mr.HSet(hash, "junk", "{not json")
	mr.HSet(hash, "urn:uuid:2", `{"id":"urn:uuid:other","node":"node-a","topics":["t"]}`) // id mismatch
	mr.HSet(hash, "urn:uuid:3", `{"id":"urn:uuid:3","topics":["t"]}`)                     // no node
	if _, err := mr.ZAdd("test:{mercure-subscriptions}:nodes", 0, "bad node{x}"); err != nil {
		t.Fatal(err)
	}
	if got := listIDs(t, a); !slices.Equal(got, []string{"node-a/urn:uuid:1"}) {
		t.Errorf("List = %v", got)
	}
	if _, ok, err := a.Get(ctx, "junk"); ok || err != nil {
		t.Errorf("Get(junk) = %v %v", ok, err)
	}
	if _, err := a.Reap(ctx); err != nil {
		t.Errorf("Reap with a foreign node name: %v", err)
	}
	if err := a.Register(ctx, mercure.Subscriber{ID: "x", Payload: json.RawMessage("{")}); err == nil {
		t.Error("registered a payload that is not JSON")
	}
	if err := a.Register(ctx, mercure.Subscriber{}); err == nil {
		t.Error("registered a subscriber without id")
	}
}

// Two nodes on a real Redis, each running: a subscriber of node A is listed
// by node B; when A dies (stops without leaving), B stops listing it
// within the lease and reaps it, once, handing it over for its
// disconnection events.
func TestRegistry_Run_twoNodesOnRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	expired := make(chan []mercure.RegisteredSubscriber, 10)
	a := newRegistry(t, srv.Client(), "node-a", time.Minute) // outlives the listing, however loaded the machine
	b := newRegistry(t, srv.Client(), "node-b", time.Second, func(c *mercure.RegistryConfig) {
		c.OnExpired = func(s []mercure.RegisteredSubscriber) { expired <- s }
		c.OnError = func(err error) { t.Errorf("node B: %v", err) }
	})
	runCtx, cancelB := context.WithCancel(ctx)
	bDone := make(chan error, 1)
	go func() { bDone <- b.Run(runCtx) }()
	stopB := sync.OnceValue(func() error { cancelB(); return <-bDone })
	t.Cleanup(func() { _ = stopB() })

	for i := range 3 {
		if err := a.Register(ctx, sub(fmt.Sprintf("urn:uuid:a%d", i), "https://example.com/books/{id}")); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Register(ctx, sub("urn:uuid:b0", "*")); err != nil {
		t.Fatal(err)
	}
	all := []string{"node-a/urn:uuid:a0", "node-a/urn:uuid:a1", "node-a/urn:uuid:a2", "node-b/urn:uuid:b0"}
	if got := listIDs(t, b); !slices.Equal(got, all) {
		t.Fatalf("B lists %v, want %v", got, all)
	}
	// A renews its lease once for a second, and never again: it is dead.
	// Poll B until it is gone.
	if _, err := newRegistry(t, srv.Client(), "node-a", time.Second).Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "node A's subscribers to expire", func() bool {
		return slices.Equal(listIDs(t, b), []string{"node-b/urn:uuid:b0"})
	})
	var reaped []mercure.RegisteredSubscriber
	waitFor(t, 10*time.Second, "B to reap node A", func() bool {
		select {
		case s := <-expired:
			reaped = append(reaped, s...)
		default:
		}
		return len(reaped) >= 3
	})
	if got := ids(reaped); !slices.Equal(got, all[:3]) {
		t.Errorf("reaped %v", got)
	}
	// B itself stays listed: its Run heartbeats.
	if got := listIDs(t, a); !slices.Equal(got, []string{"node-b/urn:uuid:b0"}) {
		t.Errorf("A lists %v", got)
	}
	// B stops: Run leaves, and nothing of B is listed.
	if err := stopB(); err != nil {
		t.Errorf("B's Run: %v", err)
	}
	if got := listIDs(t, a); len(got) != 0 {
		t.Errorf("after B left: %v", got)
	}
}

// The registry's keys share one hash tag, so its scripts run on a Redis
// Cluster.
func TestRegistry_onRedisCluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	cluster := redistest.StartCluster(t, 3, 0)
	ctx := context.Background()
	// Node A's lease outlives the listing, however loaded the machine;
	// then a handle of A with a 1s lease renews it once, and it runs out.
	a := newRegistry(t, cluster.Client(), "node-a", time.Minute)
	b := newRegistry(t, cluster.Client(), "node-b", time.Second)
	for i := range 20 {
		if err := a.Register(ctx, sub(fmt.Sprintf("urn:uuid:%02d", i), "t")); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Unregister(ctx, "urn:uuid:00"); err != nil {
		t.Fatal(err)
	}
	if got := listIDs(t, b); len(got) != 19 {
		t.Fatalf("B lists %d, want 19", len(got))
	}
	if _, err := b.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := newRegistry(t, cluster.Client(), "node-a", time.Second).Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "node A to expire", func() bool { return len(listIDs(t, b)) == 0 })
	reaped, err := b.Reap(ctx)
	if err != nil || len(reaped) != 19 {
		t.Fatalf("Reap: %d, %v", len(reaped), err)
	}
	if err := b.Leave(ctx); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds, failing the test after limit (a
// guard against a hang, not a timing assertion).
func waitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
