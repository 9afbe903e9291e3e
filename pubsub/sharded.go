package pubsub

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ShardedSubscriber is the node's pub/sub on Redis Cluster: sharded
// subscriptions (SSUBSCRIBE), one connection per primary that owns slots of
// topics the node wants, so each event travels only on its own shard. It
// follows the cluster: when a slot moves (resharding) Redis unsubscribes the
// node from that slot's channels, or refuses a subscription with MOVED, and
// when a primary fails its connection breaks; either way the channels are
// subscribed again on the slot's current primary, and the confirmation tells
// the handler to repair the gap from the stream.
//
// Subscribe, Unsubscribe and Healthy behave as on [Subscriber].
type ShardedSubscriber struct {
	cc        *redis.ClusterClient
	cfg       SubscriberConfig
	kick      chan struct{}
	clusterUp atomic.Bool

	mu      sync.Mutex
	want    map[string]struct{}  // channels the node wants
	pending map[string]time.Time // wanted channels on no shard yet, since when
	owner   map[string]*shard    // channel → the shard it is subscribed (or being subscribed) on
	shards  map[string]*shard    // primary address → its session
	retry   map[string]backoff   // primary address → when to try it again
}

type backoff struct {
	delay time.Duration
	until time.Time
}

// shard is one primary's sharded pub/sub session.
type shard struct {
	addr   string
	client *redis.Client
	kick   chan struct{}
	up     atomic.Bool

	// Guarded by ShardedSubscriber.mu.
	chans map[string]struct{} // channels assigned here
	fresh map[string]struct{} // to (re)subscribe
	gone  map[string]struct{} // to unsubscribe unless assigned here again
}

// NewShardedSubscriber returns a ShardedSubscriber on cc. It starts
// nothing; call Run.
func NewShardedSubscriber(cc *redis.ClusterClient, cfg SubscriberConfig) *ShardedSubscriber {
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 2 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	return &ShardedSubscriber{
		cc: cc, cfg: cfg, kick: make(chan struct{}, 1),
		want: map[string]struct{}{}, pending: map[string]time.Time{}, owner: map[string]*shard{},
		shards: map[string]*shard{}, retry: map[string]backoff{},
	}
}

// Subscribe asks for the topics' events; see [Subscriber.Subscribe].
func (s *ShardedSubscriber) Subscribe(topics ...string) {
	s.mu.Lock()
	now := time.Now()
	for _, t := range topics {
		ch := s.cfg.Keys.Channel(t)
		s.want[ch] = struct{}{}
		if sh := s.owner[ch]; sh != nil {
			sh.fresh[ch] = struct{}{}
			sh.wake()
		} else if _, ok := s.pending[ch]; !ok {
			s.pending[ch] = now
		}
	}
	s.mu.Unlock()
	wake(s.kick)
}

// Unsubscribe drops the node's interest in the topics.
func (s *ShardedSubscriber) Unsubscribe(topics ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range topics {
		ch := s.cfg.Keys.Channel(t)
		delete(s.want, ch)
		delete(s.pending, ch)
		if sh := s.owner[ch]; sh != nil {
			s.release(sh, ch)
			sh.gone[ch] = struct{}{}
			sh.wake()
		}
	}
}

// release takes ch off sh. s.mu must be held.
func (s *ShardedSubscriber) release(sh *shard, ch string) {
	delete(s.owner, ch)
	delete(sh.chans, ch)
	delete(sh.fresh, ch)
}

// pendingGrace is how long a wanted channel may wait for a shard before
// the subscriber reports itself unhealthy.
const pendingGrace = 2 * time.Second

// Healthy reports whether every wanted topic is subscribed on a live shard
// connection (a topic just asked for has pendingGrace to get there), and,
// with no topics, whether the cluster answers.
func (s *ShardedSubscriber) Healthy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.want) == 0 {
		return s.clusterUp.Load()
	}
	for _, since := range s.pending {
		if time.Since(since) > pendingGrace {
			return false
		}
	}
	for _, sh := range s.shards {
		if len(sh.chans) > 0 && !sh.up.Load() {
			return false
		}
	}
	return true
}

func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (sh *shard) wake() { wake(sh.kick) }

// assignEvery is how often channels waiting for a shard are looked at, on
// top of every Subscribe: after a slot moved or a primary failed, the
// cluster's slot map is reloaded in the background and the next look finds
// the new owner.
const assignEvery = 250 * time.Millisecond

// Run holds one session per primary that owns wanted channels until ctx
// ends, and reports to h. It returns nil after ctx ends and every goroutine
// it started has exited.
func (s *ShardedSubscriber) Run(ctx context.Context, h Handler) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	tick := time.NewTicker(assignEvery)
	defer tick.Stop()
	pingAt := time.Time{}
	for {
		if time.Now().After(pingAt) {
			pctx, pcancel := context.WithTimeout(ctx, s.cfg.PingInterval)
			s.clusterUp.Store(s.cc.Ping(pctx).Err() == nil)
			pcancel()
			pingAt = time.Now().Add(s.cfg.PingInterval)
		}
		s.assign(ctx, &wg, h)
		select {
		case <-ctx.Done():
			return nil
		case <-s.kick:
		case <-tick.C:
		}
	}
}

// assign puts pending channels on the shard that owns their slot, starting
// its session if needed.
func (s *ShardedSubscriber) assign(ctx context.Context, wg *sync.WaitGroup, h Handler) {
	s.mu.Lock()
	pending := make([]string, 0, len(s.pending))
	for ch := range s.pending {
		pending = append(pending, ch)
	}
	s.mu.Unlock()
	if len(pending) == 0 {
		return
	}
	clients := map[string]*redis.Client{}
	byAddr := map[string][]string{}
	for _, ch := range pending {
		c, err := s.cc.MasterForKey(ctx, ch)
		if err != nil {
			s.cfg.Logger.Debug().Err(err).Msg("no primary known for a channel's slot yet")
			continue
		}
		addr := c.Options().Addr
		clients[addr] = c
		byAddr[addr] = append(byAddr[addr], ch)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for addr, chans := range byAddr {
		if b, ok := s.retry[addr]; ok && now.Before(b.until) {
			continue
		}
		sh := s.shards[addr]
		if sh == nil {
			sh = &shard{addr: addr, client: clients[addr], kick: make(chan struct{}, 1),
				chans: map[string]struct{}{}, fresh: map[string]struct{}{}, gone: map[string]struct{}{}}
			s.shards[addr] = sh
			wg.Go(func() { s.runShard(ctx, sh, h) })
		}
		for _, ch := range chans {
			if _, ok := s.pending[ch]; !ok {
				continue // unsubscribed meanwhile
			}
			delete(s.pending, ch)
			s.owner[ch] = sh
			sh.chans[ch] = struct{}{}
			sh.fresh[ch] = struct{}{}
			delete(sh.gone, ch)
		}
		sh.wake()
	}
}

// runShard runs one session and, when it ends, puts its channels back to
// be assigned again (on the same primary, or on the slot's new owner).
func (s *ShardedSubscriber) runShard(ctx context.Context, sh *shard, h Handler) {
	err := s.shardSession(ctx, sh, h)
	wasUp := sh.up.Swap(false)
	s.mu.Lock()
	if s.shards[sh.addr] == sh {
		delete(s.shards, sh.addr)
	}
	now := time.Now()
	for ch := range sh.chans {
		if s.owner[ch] == sh {
			delete(s.owner, ch)
			s.pending[ch] = now
		}
	}
	b := s.retry[sh.addr]
	if wasUp || b.delay == 0 {
		b.delay = 50 * time.Millisecond
	} else {
		b.delay = min(2*b.delay, s.cfg.MaxBackoff)
	}
	b.until = now.Add(b.delay)
	s.retry[sh.addr] = b
	s.mu.Unlock()
	if ctx.Err() != nil {
		return
	}
	if wasUp {
		s.cfg.Logger.Warn().Err(err).Str("shard", sh.addr).Msg("redis sharded pub/sub connection lost; resubscribing its topics")
		h.HandleDisconnected(err)
	} else {
		s.cfg.Logger.Debug().Err(err).Str("shard", sh.addr).Dur("retry_in", b.delay).Msg("redis shard connection attempt failed")
	}
	// A failed primary or a moved slot shows in a fresh slot map.
	s.cc.ReloadState(ctx)
	wake(s.kick)
}

func (s *ShardedSubscriber) shardSession(ctx context.Context, sh *shard, h Handler) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ps := sh.client.SSubscribe(ctx)
	defer ps.Close()
	if err := ps.Ping(ctx); err != nil {
		return err
	}
	sh.up.Store(true)
	s.mu.Lock()
	delete(s.retry, sh.addr)
	for ch := range sh.chans {
		sh.fresh[ch] = struct{}{}
	}
	s.mu.Unlock()
	sh.wake()

	var wg sync.WaitGroup
	wg.Go(func() { s.shardCommands(ctx, ps, sh, cancel) })
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	err := s.shardReceive(ctx, ps, sh, h)
	stop()
	cancel(err)
	wg.Wait()
	if err == nil {
		err = context.Cause(ctx)
	}
	return err
}

// shardCommands sends SSUBSCRIBE and SUNSUBSCRIBE as interest changes, one
// command per slot (a command may not span slots).
func (s *ShardedSubscriber) shardCommands(ctx context.Context, ps *redis.PubSub, sh *shard, fail context.CancelCauseFunc) {
	have := map[string]struct{}{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-sh.kick:
		}
		s.mu.Lock()
		var sub, unsub []string
		for ch := range sh.fresh {
			sub = append(sub, ch)
		}
		for ch := range sh.gone {
			if _, ok := have[ch]; ok && s.owner[ch] != sh {
				unsub = append(unsub, ch)
			}
		}
		clear(sh.fresh)
		clear(sh.gone)
		s.mu.Unlock()
		for _, group := range bySlot(unsub) {
			if err := ps.SUnsubscribe(ctx, group...); err != nil {
				fail(err)
				return
			}
			for _, ch := range group {
				delete(have, ch)
			}
		}
		for _, group := range bySlot(sub) {
			if err := ps.SSubscribe(ctx, group...); err != nil {
				fail(err)
				return
			}
			for _, ch := range group {
				have[ch] = struct{}{}
			}
		}
	}
}

func (s *ShardedSubscriber) shardReceive(ctx context.Context, ps *redis.PubSub, sh *shard, h Handler) error {
	return receiveLoop(ctx, ps, s.cfg.PingInterval, func(msg any, err error) error {
		if err != nil {
			if slot := movedSlot(err); slot >= 0 {
				// A subscription sent to a primary that no longer owns the
				// slot (our slot map was stale).
				s.moved(sh, func(ch string) bool { return slotOf(ch) == slot })
				return nil
			}
			return err
		}
		if ch := dispatch(s.cfg, msg, h); ch != "" {
			// Redis unsubscribes a node's shard channels when their slot
			// leaves the primary (resharding, or this primary demoted).
			s.moved(sh, func(c string) bool { return c == ch })
		}
		return nil
	})
}

// moved takes the channels of sh that match off it, to be assigned again
// once the slot map shows their new owner.
func (s *ShardedSubscriber) moved(sh *shard, match func(string) bool) {
	s.mu.Lock()
	now := time.Now()
	n := 0
	for ch := range sh.chans {
		if match(ch) && s.owner[ch] == sh {
			s.release(sh, ch)
			s.pending[ch] = now
			n++
		}
	}
	s.mu.Unlock()
	if n > 0 {
		s.cfg.Logger.Info().Str("shard", sh.addr).Int("topics", n).Msg("topics' slot moved to another primary; resubscribing there")
		s.cc.ReloadState(context.Background())
	}
}

// movedSlot returns the slot of a MOVED or ASK error, or -1.
func movedSlot(err error) int {
	msg := err.Error()
	for _, p := range []string{"MOVED ", "ASK "} {
		if rest, ok := strings.CutPrefix(msg, p); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				if n, err := strconv.Atoi(f[0]); err == nil {
					return n
				}
			}
		}
	}
	return -1
}

// bySlot groups channels by hash slot.
func bySlot(chans []string) [][]string {
	groups := map[int][]string{}
	for _, ch := range chans {
		groups[slotOf(ch)] = append(groups[slotOf(ch)], ch)
	}
	out := make([][]string, 0, len(groups))
	for _, g := range groups {
		out = append(out, g)
	}
	return out
}

// slotOf is Redis Cluster's hash slot of a key: CRC16 (XMODEM) of its hash
// tag, or of the whole key if it has none, modulo 16384.
func slotOf(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}
