package mercure

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed registry_register.lua
	registerLua string
	//go:embed registry_heartbeat.lua
	heartbeatLua string
	//go:embed registry_nodes.lua
	nodesLua string
	//go:embed registry_remove_node.lua
	removeNodeLua string
)

// DefaultLease is how long a node's registrations outlive its last
// heartbeat when not configured.
const DefaultLease = 30 * time.Second

// registryTag is the hash tag of every registry key: one Redis Cluster slot,
// so the scripts can touch them together.
const registryTag = "{mercure-subscriptions}"

// RegistryConfig configures a [Registry].
type RegistryConfig struct {
	// Prefix starts every key (at most 64 bytes, no braces, spaces or
	// control characters).
	Prefix string
	// Node identifies this node among all nodes sharing the Redis: unique,
	// 1 to 64 of letters, digits and - _ . : (a process that restarts
	// should take a new one).
	Node string
	// Lease is how long the node's subscribers stay listed after its last
	// heartbeat; default DefaultLease, at least a second. [Registry.Run]
	// heartbeats every third of it.
	Lease time.Duration
	// OnExpired, if set, receives the subscribers of dead nodes that this
	// node reaped, so it can publish their subscriptions' disconnection
	// events (the dead node could not). Each dead node's subscribers go to
	// exactly one node. Called from Run's goroutine.
	OnExpired func([]RegisteredSubscriber)
	// OnError, if set, receives the errors of Run's background work (which
	// goes on: a failed heartbeat is retried at the next).
	OnError func(error)
}

// RegisteredSubscriber is a subscriber as the registry lists it.
type RegisteredSubscriber struct {
	Subscriber
	// Node is the node holding the subscriber's connection.
	Node string `json:"node"`
}

// Registry is the cluster-wide list of active subscribers, in Redis, for the
// subscriptions API: a subscriber connected to any node is listed by every
// node, and disappears when its connection ends or, if its node dies,
// within the node's lease.
//
// # Keys
//
// All under the caller's prefix and one hash tag, so they share a Redis
// Cluster slot:
//
//	<prefix>{mercure-subscriptions}:nodes        sorted set: node id -> lease expiry (ms, Redis time)
//	<prefix>{mercure-subscriptions}:subscribers  hash: subscriber id -> JSON record
//	<prefix>{mercure-subscriptions}:node:<node>  set: the node's subscriber ids
//
// Leases are per node, not per subscriber: a heartbeat is one command
// whatever the node's number of connections. Listing reads the live nodes
// (one script) and then the hash with HSCAN (never KEYS), and drops the
// records of nodes whose lease has expired, so a dead node's subscribers
// vanish from lists when its lease ends; [Registry.Reap] removes them for
// good.
//
// The registry also keeps the node's own subscribers in memory: when a
// write to Redis fails, or the node's lease ran out (a long pause, Redis
// unreachable) and another node may have reaped its entries, the next
// heartbeat writes them all again.
//
// A Registry is safe for concurrent use. The constructor starts nothing;
// [Registry.Run] does the periodic work.
type Registry struct {
	rdb   redis.Cmdable
	cfg   RegistryConfig
	lease string

	nodesKey, subsKey, nodeKey, nodeKeyPrefix string

	register, heartbeat, nodes, removeNode *redis.Script

	// sync is held for reading by each Register and Unregister across its
	// Redis write, and for writing by a resync, so that a resync's picture
	// of the node's subscribers cannot be overtaken by a write it missed.
	sync sync.RWMutex

	mu       sync.Mutex // guards local and needSync
	local    map[string][]byte
	needSync bool
}

// NewRegistry checks cfg and returns a Registry on rdb (a client of one
// Redis, Sentinel or Cluster).
func NewRegistry(rdb redis.Cmdable, cfg RegistryConfig) (*Registry, error) {
	if err := checkPrefix(cfg.Prefix); err != nil {
		return nil, err
	}
	if err := checkNodeID(cfg.Node); err != nil {
		return nil, err
	}
	if cfg.Lease == 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Lease < time.Second {
		return nil, fmt.Errorf("mercure: registry lease %s is under a second", cfg.Lease)
	}
	base := cfg.Prefix + registryTag
	return &Registry{
		rdb:           rdb,
		cfg:           cfg,
		lease:         strconv.FormatInt(cfg.Lease.Milliseconds(), 10),
		nodesKey:      base + ":nodes",
		subsKey:       base + ":subscribers",
		nodeKeyPrefix: base + ":node:",
		nodeKey:       base + ":node:" + cfg.Node,
		register:      redis.NewScript(registerLua),
		heartbeat:     redis.NewScript(heartbeatLua),
		nodes:         redis.NewScript(nodesLua),
		removeNode:    redis.NewScript(removeNodeLua),
		local:         make(map[string][]byte),
	}, nil
}

func checkPrefix(p string) error {
	if len(p) > 64 {
		return fmt.Errorf("mercure: key prefix is %d bytes, at most 64 allowed", len(p))
	}
	for _, r := range p {
		if r == '{' || r == '}' || r <= ' ' || r == 0x7f {
			return fmt.Errorf("mercure: key prefix %q must not contain braces, spaces or control characters", p)
		}
	}
	return nil
}

func checkNodeID(n string) error {
	if n == "" || len(n) > 64 {
		return errors.New("mercure: node id must be 1 to 64 bytes")
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return fmt.Errorf("mercure: node id %q has %q; allowed are letters, digits and - _ . :", n, c)
		}
	}
	return nil
}

// Register lists s (its ID must be unique, as [NewID] makes it) as a
// subscriber of this node. The node remembers s even when the write to
// Redis fails (the error is returned): the next heartbeat writes it again.
func (r *Registry) Register(ctx context.Context, s Subscriber) error {
	if s.ID == "" {
		return errors.New("mercure: register a subscriber without an id")
	}
	if len(s.Payload) > 0 && !json.Valid(s.Payload) {
		return errors.New("mercure: register a subscriber whose payload is not JSON")
	}
	rec, err := json.Marshal(RegisteredSubscriber{Subscriber: s, Node: r.cfg.Node})
	if err != nil {
		return fmt.Errorf("mercure: register %s: %w", s.ID, err)
	}
	r.sync.RLock()
	defer r.sync.RUnlock()
	r.mu.Lock()
	r.local[s.ID] = rec
	r.mu.Unlock()
	held, err := r.register.Run(ctx, r.rdb, []string{r.nodesKey, r.subsKey, r.nodeKey},
		r.cfg.Node, r.lease, s.ID, rec).Int()
	if err != nil || held == 0 {
		r.mu.Lock()
		r.needSync = true
		r.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("mercure: register %s: %w", s.ID, err)
	}
	return nil
}

// Unregister removes the subscriber id of this node. The node forgets it
// even when the write to Redis fails (the error is returned): the next
// heartbeat removes it.
func (r *Registry) Unregister(ctx context.Context, id string) error {
	r.sync.RLock()
	defer r.sync.RUnlock()
	r.mu.Lock()
	delete(r.local, id)
	r.mu.Unlock()
	_, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HDel(ctx, r.subsKey, id)
		p.SRem(ctx, r.nodeKey, id)
		return nil
	})
	if err != nil {
		r.mu.Lock()
		r.needSync = true
		r.mu.Unlock()
		return fmt.Errorf("mercure: unregister %s: %w", id, err)
	}
	return nil
}

// Heartbeat renews the node's lease. If the lease had run out, or a write
// failed since the last heartbeat, it then rewrites the node's entries from
// memory (adding the missing, removing the stale) and reports resynced.
func (r *Registry) Heartbeat(ctx context.Context) (resynced bool, err error) {
	held, err := r.heartbeat.Run(ctx, r.rdb, []string{r.nodesKey}, r.cfg.Node, r.lease).Int()
	if err != nil {
		return false, fmt.Errorf("mercure: registry heartbeat: %w", err)
	}
	r.mu.Lock()
	need := r.needSync || held == 0
	r.needSync = false
	r.mu.Unlock()
	if !need {
		return false, nil
	}
	if err := r.resync(ctx); err != nil {
		r.mu.Lock()
		r.needSync = true
		r.mu.Unlock()
		return false, err
	}
	return true, nil
}

// resyncBatch is how many records one pipelined write of a resync holds.
const resyncBatch = 500

// resync makes Redis hold exactly the node's entries in memory. Run it
// after the lease is renewed, so no other node reaps them meanwhile.
func (r *Registry) resync(ctx context.Context) error {
	r.sync.Lock()
	defer r.sync.Unlock()
	r.mu.Lock()
	local := make(map[string][]byte, len(r.local))
	for id, rec := range r.local {
		local[id] = rec
	}
	r.mu.Unlock()

	remote, err := r.rdb.SMembers(ctx, r.nodeKey).Result()
	if err != nil {
		return fmt.Errorf("mercure: registry resync: %w", err)
	}
	var stale []string
	for _, id := range remote {
		if _, ok := local[id]; !ok {
			stale = append(stale, id)
		}
	}
	ids := make([]string, 0, len(local))
	for id := range local {
		ids = append(ids, id)
	}
	for lo := 0; lo < len(stale); lo += resyncBatch {
		chunk := stale[lo:min(lo+resyncBatch, len(stale))]
		if _, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HDel(ctx, r.subsKey, chunk...)
			p.SRem(ctx, r.nodeKey, toAny(chunk)...)
			return nil
		}); err != nil {
			return fmt.Errorf("mercure: registry resync: %w", err)
		}
	}
	for lo := 0; lo < len(ids); lo += resyncBatch {
		chunk := ids[lo:min(lo+resyncBatch, len(ids))]
		fields := make([]any, 0, 2*len(chunk))
		for _, id := range chunk {
			fields = append(fields, id, local[id])
		}
		if _, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, r.subsKey, fields...)
			p.SAdd(ctx, r.nodeKey, toAny(chunk)...)
			return nil
		}); err != nil {
			return fmt.Errorf("mercure: registry resync: %w", err)
		}
	}
	return nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// Reap removes the entries of every node whose lease has expired and
// returns the subscribers removed. Any number of nodes may reap at once;
// each dead node's subscribers are returned to exactly one of them.
func (r *Registry) Reap(ctx context.Context) ([]RegisteredSubscriber, error) {
	dead, err := r.nodeList(ctx, "expired")
	if err != nil {
		return nil, err
	}
	var out []RegisteredSubscriber
	for _, node := range dead {
		subs, err := r.dropNode(ctx, node, "expired")
		if err != nil {
			return out, err
		}
		out = append(out, subs...)
	}
	return out, nil
}

// Leave removes this node's lease and entries at once, for a node shutting
// down; other nodes stop listing its subscribers immediately.
func (r *Registry) Leave(ctx context.Context) error {
	r.sync.Lock()
	defer r.sync.Unlock()
	r.mu.Lock()
	clear(r.local)
	r.needSync = false
	r.mu.Unlock()
	_, err := r.dropNode(ctx, r.cfg.Node, "always")
	return err
}

func (r *Registry) dropNode(ctx context.Context, node, mode string) ([]RegisteredSubscriber, error) {
	if checkNodeID(node) != nil {
		// Not written by a registry: ignore it rather than build a key
		// from it.
		return nil, nil
	}
	recs, err := r.removeNode.Run(ctx, r.rdb,
		[]string{r.nodesKey, r.subsKey, r.nodeKeyPrefix + node}, node, mode).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("mercure: remove node %s: %w", node, err)
	}
	out := make([]RegisteredSubscriber, 0, len(recs))
	for _, rec := range recs {
		if s, ok := decodeRecord(rec); ok {
			out = append(out, s)
		}
	}
	return out, nil
}

func (r *Registry) nodeList(ctx context.Context, which string) ([]string, error) {
	nodes, err := r.nodes.Run(ctx, r.rdb, []string{r.nodesKey}, which).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("mercure: list %s nodes: %w", which, err)
	}
	return nodes, nil
}

// listBatch is the COUNT hint of each HSCAN of List.
const listBatch = 1000

// List returns every subscriber of every node whose lease holds, ordered by
// subscriber id. A subscriber that connects or disconnects while List runs
// may or may not be in it.
func (r *Registry) List(ctx context.Context) ([]RegisteredSubscriber, error) {
	alive, err := r.nodeList(ctx, "alive")
	if err != nil {
		return nil, err
	}
	live := make(map[string]bool, len(alive))
	for _, n := range alive {
		live[n] = true
	}
	seen := make(map[string]bool)
	var out []RegisteredSubscriber
	var cursor uint64
	for {
		kv, next, err := r.rdb.HScan(ctx, r.subsKey, cursor, "", listBatch).Result()
		if err != nil {
			return nil, fmt.Errorf("mercure: list subscribers: %w", err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if seen[kv[i]] { // HSCAN may return an entry twice
				continue
			}
			if s, ok := decodeRecord(kv[i+1]); ok && live[s.Node] && s.ID == kv[i] {
				seen[kv[i]] = true
				out = append(out, s)
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	slices.SortFunc(out, func(a, b RegisteredSubscriber) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out, nil
}

// Get returns the subscriber id, if its node's lease holds.
func (r *Registry) Get(ctx context.Context, id string) (RegisteredSubscriber, bool, error) {
	rec, err := r.rdb.HGet(ctx, r.subsKey, id).Result()
	if errors.Is(err, redis.Nil) {
		return RegisteredSubscriber{}, false, nil
	}
	if err != nil {
		return RegisteredSubscriber{}, false, fmt.Errorf("mercure: get subscriber %s: %w", id, err)
	}
	s, ok := decodeRecord(rec)
	if !ok || s.ID != id {
		return RegisteredSubscriber{}, false, nil
	}
	alive, err := r.nodeList(ctx, "alive")
	if err != nil {
		return RegisteredSubscriber{}, false, err
	}
	if !slices.Contains(alive, s.Node) {
		return RegisteredSubscriber{}, false, nil
	}
	return s, true, nil
}

// decodeRecord reads a record; a record it cannot read (not written by a
// registry) is skipped.
func decodeRecord(rec string) (RegisteredSubscriber, bool) {
	var s RegisteredSubscriber
	if err := json.Unmarshal([]byte(rec), &s); err != nil || s.ID == "" || s.Node == "" {
		return RegisteredSubscriber{}, false
	}
	return s, true
}

// Run heartbeats and reaps every third of the lease, starting at once, until
// ctx ends; then it leaves (removes the node's entries, with its own short
// timeout) and returns nil. Errors go to OnError; the work goes on.
func (r *Registry) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Lease / 3)
	defer t.Stop()
	for {
		r.tick(ctx)
		select {
		case <-ctx.Done():
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			r.report(r.Leave(lctx))
			return nil
		case <-t.C:
		}
	}
}

func (r *Registry) tick(ctx context.Context) {
	_, err := r.Heartbeat(ctx)
	r.report(err)
	dead, err := r.Reap(ctx)
	r.report(err)
	if len(dead) > 0 && r.cfg.OnExpired != nil {
		r.cfg.OnExpired(dead)
	}
}

func (r *Registry) report(err error) {
	if err != nil && r.cfg.OnError != nil && !errors.Is(err, context.Canceled) {
		r.cfg.OnError(err)
	}
}
