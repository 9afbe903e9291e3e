package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/gateway/sseclient"
	"github.com/ssegateway/ssegateway/pubsub"
)

// received is what one client got on one topic: event ids in order, and
// where history-lost events came.
type received struct {
	mu     sync.Mutex
	ids    []string
	lostAt []int // indexes into ids at which a history-lost event arrived
	other  []string
}

// faultRun streams topics from node (one EventSource-like client per topic,
// or, with subs, one per subscription: topics and patterns, whose events
// are told apart by the topic they carry) while a publisher sends numbered
// events straight to Redis through rdb,
// retrying each with an idempotency key until acknowledged; fault runs in
// the middle. It then checks every topic against what Redis holds at the
// end:
//   - the client got its events in increasing id order, none twice;
//   - every event in the stream reached the client;
//   - an event the client got that is no longer in the stream (a write the
//     failed primary acknowledged but never replicated) is followed by a
//     history-lost event;
//   - with no acknowledged write lost, no history-lost event came at all.
//
// It returns how many acknowledged writes were lost, per topic.
func faultRun(t *testing.T, nodeURL string, rdb redis.UniversalClient, sharded bool, topics []string, fault func(), subs ...[]string) map[string]int {
	t.Helper()
	keys, _ := contract.NewKeys(contract.DefaultPrefix)
	got := map[string]*received{}
	for _, tp := range topics {
		got[tp] = &received{}
	}
	if subs == nil {
		for _, tp := range topics {
			subs = append(subs, []string{tp})
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	opened := make(chan struct{}, len(subs))
	for _, items := range subs {
		var once sync.Once
		cl := &sseclient.Client{URL: eventsURL(nodeURL, items...), Retry: 50 * time.Millisecond,
			OnOpen: func() { once.Do(func() { opened <- struct{}{} }) }}
		// covered lists the topics a subscription item serves.
		covered := func(item string) []*received {
			var out []*received
			for _, tp := range topics {
				if tp == item || strings.Contains(item, "*") && strings.HasPrefix(tp, strings.TrimSuffix(item, "*")) {
					out = append(out, got[tp])
				}
			}
			return out
		}
		wg.Go(func() {
			err := cl.Run(ctx, func(ev sseclient.Event) error {
				switch ev.Type {
				case "message":
					r := got[items[0]]
					if strings.Contains(items[0], "*") {
						var v struct{ Topic string }
						_ = json.Unmarshal([]byte(ev.Data), &v)
						r = got[v.Topic]
					}
					if r == nil {
						t.Errorf("client %v: event of no topic it covers: %+v", items, ev)
						return nil
					}
					r.mu.Lock()
					r.ids = append(r.ids, ev.LastEventID)
					r.mu.Unlock()
				case contract.HistoryLostType:
					var hl struct{ Topics []string }
					_ = json.Unmarshal([]byte(ev.Data), &hl)
					for _, item := range hl.Topics {
						for _, r := range covered(item) {
							r.mu.Lock()
							r.lostAt = append(r.lostAt, len(r.ids))
							r.mu.Unlock()
						}
					}
				default:
					for _, r := range covered(items[0]) {
						r.mu.Lock()
						r.other = append(r.other, ev.Type+" "+ev.Data)
						r.mu.Unlock()
					}
				}
				return nil
			})
			if err != nil {
				t.Errorf("client %v: %v", items, err)
			}
		})
	}
	for range subs {
		select {
		case <-opened:
		case <-time.After(15 * time.Second):
			t.Fatal("clients did not connect")
		}
	}
	time.Sleep(300 * time.Millisecond) // the streams join their topics

	pub := pubsub.NewPublisher(rdb, pubsub.PublisherConfig{Keys: keys, Sharded: sharded})
	acked := map[string][]string{}
	var ackMu sync.Mutex
	pctx, stopPub := context.WithCancel(context.Background())
	var pwg sync.WaitGroup
	pwg.Go(func() {
		for i := 0; pctx.Err() == nil; i++ {
			for _, tp := range topics {
				msg := pubsub.Message{Topic: tp, Data: fmt.Sprintf("%s:%d", tp, i), IdempotencyKey: fmt.Sprintf("%s-%d", strings.ReplaceAll(tp, "/", "."), i)}
				for {
					c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					id, err := pub.Publish(c, msg)
					cancel()
					if err == nil {
						ackMu.Lock()
						acked[tp] = append(acked[tp], id)
						ackMu.Unlock()
						break
					}
					if errors.Is(err, contract.ErrInvalid) {
						t.Errorf("publish: %v", err)
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			time.Sleep(3 * time.Millisecond)
		}
	})
	time.Sleep(700 * time.Millisecond)
	start := time.Now()
	fault()
	t.Logf("fault took %v", time.Since(start))
	time.Sleep(time.Second)
	stopPub()
	pwg.Wait()
	t.Logf("publisher stopped %v after the fault began", time.Since(start))

	// Wait for every stream to reach the end of its topic's history.
	finals := map[string][]string{}
	deadline := time.Now().Add(30 * time.Second)
	for _, tp := range topics {
		var final []string
		for {
			msgs, err := rdb.XRange(context.Background(), keys.Stream(tp), "-", "+").Result()
			if err == nil {
				final = final[:0]
				for _, m := range msgs {
					final = append(final, m.ID)
				}
				r := got[tp]
				r.mu.Lock()
				caughtUp := len(final) == 0 || slices.Contains(r.ids, final[len(final)-1])
				r.mu.Unlock()
				if caughtUp {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the client never caught up with the stream (%v)", tp, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		finals[tp] = final
	}
	t.Logf("clients caught up %v after the fault began", time.Since(start))
	cancel()
	wg.Wait()

	lost := map[string]int{}
	for _, tp := range topics {
		r, final := got[tp], finals[tp]
		inFinal := map[string]bool{}
		for _, id := range final {
			inFinal[id] = true
		}
		for _, id := range acked[tp] {
			if !inFinal[id] {
				lost[tp]++
			}
		}
		var prev contract.ID
		seen := map[string]bool{}
		for i, s := range r.ids {
			id, err := contract.ParseID(s)
			if err != nil {
				t.Errorf("%s: event id %q: %v", tp, s, err)
				continue
			}
			if i > 0 && !prev.Less(id) {
				t.Errorf("%s: event %s after %s: out of order or repeated", tp, s, prev)
			}
			prev = id
			seen[s] = true
			if !inFinal[s] && !slices.ContainsFunc(r.lostAt, func(at int) bool { return at > i }) {
				t.Errorf("%s: got %s, which the stream no longer holds, and no history-lost after it", tp, s)
			}
		}
		missing := 0
		for _, id := range final {
			if !seen[id] {
				missing++
			}
		}
		if missing > 0 {
			t.Errorf("%s: %d of the stream's %d events never reached the client", tp, missing, len(final))
		}
		if lost[tp] == 0 && len(r.lostAt) > 0 {
			t.Errorf("%s: %d history-lost events, though no acknowledged write was lost", tp, len(r.lostAt))
		}
		if len(r.other) > 0 {
			t.Errorf("%s: unexpected events %v", tp, r.other)
		}
		t.Logf("%s: %d events acknowledged, %d in the stream at the end, %d received, %d acknowledged writes lost, %d history-lost events",
			tp, len(acked[tp]), len(final), len(r.ids), lost[tp], len(r.lostAt))
	}
	return lost
}

// topicsOnEveryMaster picks perMaster topic names on each primary.
func topicsOnEveryMaster(t *testing.T, slotOwner func(topic string) string, masters, perMaster int) []string {
	t.Helper()
	count := map[string]int{}
	var topics []string
	for i := 0; len(topics) < masters*perMaster && i < 10000; i++ {
		tp := fmt.Sprintf("topic-%d", i)
		o := slotOwner(tp)
		if count[o] < perMaster {
			count[o]++
			topics = append(topics, tp)
		}
	}
	if len(count) != masters {
		t.Fatalf("topics landed on %d primaries, want %d", len(count), masters)
	}
	return topics
}

func keySlot(t *testing.T, cc *redis.ClusterClient, key string) int {
	t.Helper()
	n, err := cc.ClusterKeySlot(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}
