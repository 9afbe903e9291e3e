package replay_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/internal/redistest"
	"github.com/ssegateway/ssegateway/pubsub"
	"github.com/ssegateway/ssegateway/replay"
)

type fixture struct {
	rdb   *redis.Client
	keys  contract.Keys
	store *replay.RedisStore
	ids   []contract.ID
}

func newFixture(t *testing.T, cfg pubsub.PublisherConfig, n int) *fixture {
	t.Helper()
	srv := redistest.Start(t, redistest.WithArgs("--stream-node-max-entries", "4"))
	f := &fixture{rdb: srv.Client()}
	f.keys, _ = contract.NewKeys("h:")
	cfg.Keys = f.keys
	f.store = replay.NewRedisStore(f.rdb, f.keys)
	pub := pubsub.NewPublisher(f.rdb, cfg)
	for i := range n {
		s, err := pub.Publish(context.Background(), pubsub.Message{Topic: "a", Data: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		id, _ := contract.ParseID(s)
		f.ids = append(f.ids, id)
	}
	return f
}

func TestRedisStore_After_pages(t *testing.T) {
	f := newFixture(t, pubsub.PublisherConfig{}, 10)
	ctx := context.Background()
	var got []string
	pos := f.ids[2]
	for {
		page, err := f.store.After(ctx, "a", pos, f.ids[8], 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			got = append(got, e.Data)
		}
		pos = page[len(page)-1].ID
		if pos == f.ids[8] {
			break
		}
	}
	if fmt.Sprint(got) != "[3 4 5 6 7 8]" {
		t.Fatalf("got %v", got)
	}
	// From the very beginning (0-0): the first entry names 0-0.
	page, err := f.store.After(ctx, "a", contract.ID{}, contract.ID{}, 100)
	if err != nil || len(page) != 10 {
		t.Fatalf("from 0-0: %d entries, %v", len(page), err)
	}
	// Up to date: nothing, no error.
	if page, err := f.store.After(ctx, "a", f.ids[9], f.ids[9], 10); err != nil || len(page) != 0 {
		t.Fatalf("up to date: %v %v", page, err)
	}
	last, err := f.store.Last(ctx, "a")
	if err != nil || last != f.ids[9] {
		t.Fatalf("Last = %v, %v", last, err)
	}
}

func TestRedisStore_After_lostAfterCountTrim(t *testing.T) {
	f := newFixture(t, pubsub.PublisherConfig{MaxLen: 5}, 30)
	ctx := context.Background()
	kept, err := f.store.After(ctx, "a", f.ids[0], f.ids[29], 100)
	if !errors.Is(err, replay.ErrHistoryLost) {
		t.Fatalf("cursor before the trimmed part: %v, want ErrHistoryLost", err)
	}
	// The retained history comes with the loss: it begins after a gap, and
	// runs to the newest event without another.
	if len(kept) == 0 || kept[len(kept)-1].ID != f.ids[29] || kept[0].Prev == f.ids[0] {
		t.Fatalf("retained entries %v", kept)
	}
	for i := 1; i < len(kept); i++ {
		if kept[i].Prev != kept[i-1].ID {
			t.Fatalf("retained entries are not contiguous at %d: %v", i, kept)
		}
	}
	if _, err := f.store.After(ctx, "a", f.ids[27], f.ids[29], 10); err != nil {
		t.Fatalf("cursor in the kept part: %v", err)
	}
}

func TestRedisStore_After_lostAfterAgeTrim(t *testing.T) {
	f := newFixture(t, pubsub.PublisherConfig{MaxAge: 300 * time.Millisecond}, 12)
	time.Sleep(400 * time.Millisecond)
	pub := pubsub.NewPublisher(f.rdb, pubsub.PublisherConfig{Keys: f.keys, MaxAge: 300 * time.Millisecond})
	s, err := pub.Publish(context.Background(), pubsub.Message{Topic: "a", Data: "new"})
	if err != nil {
		t.Fatal(err)
	}
	newest, _ := contract.ParseID(s)
	_, err = f.store.After(context.Background(), "a", f.ids[0], newest, 10)
	if !errors.Is(err, replay.ErrHistoryLost) {
		t.Fatalf("after age trimming: %v, want ErrHistoryLost", err)
	}
}

func TestRedisStore_After_streamExpired(t *testing.T) {
	f := newFixture(t, pubsub.PublisherConfig{MaxAge: 200 * time.Millisecond}, 3)
	ctx := context.Background()
	waitGone := time.Now().Add(5 * time.Second)
	for f.rdb.Exists(ctx, f.keys.Stream("a")).Val() == 1 {
		if time.Now().After(waitGone) {
			t.Fatal("stream did not expire")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The :last record outlives the stream: a client at the newest event
	// missed nothing, an older one lost history.
	last, err := f.store.Last(ctx, "a")
	if err != nil || last != f.ids[2] {
		t.Fatalf("Last after expiry = %v, %v; want %v", last, err, f.ids[2])
	}
	if page, err := f.store.After(ctx, "a", f.ids[2], last, 10); err != nil || len(page) != 0 {
		t.Fatalf("up-to-date client: %v %v", page, err)
	}
	if _, err := f.store.After(ctx, "a", f.ids[1], last, 10); !errors.Is(err, replay.ErrHistoryLost) {
		t.Fatalf("behind client: %v, want ErrHistoryLost", err)
	}
	// With the record gone too, nothing is known of the topic.
	f.rdb.Del(ctx, f.keys.Last("a"))
	if last, err := f.store.Last(ctx, "a"); err != nil || !last.IsZero() {
		t.Fatalf("Last with nothing left = %v, %v", last, err)
	}
	if ok, err := f.store.Contains(ctx, "a", f.ids[2]); err != nil || ok {
		t.Fatalf("Contains after expiry = %v, %v", ok, err)
	}
}

func TestRedisStore_After_unknownPosition(t *testing.T) {
	f := newFixture(t, pubsub.PublisherConfig{}, 3)
	ctx := context.Background()
	// A position just before the first event is not one of the topic's:
	// the first event names 0-0 as its predecessor.
	bogus := contract.ID{Ms: f.ids[0].Ms - 1}
	if _, err := f.store.After(ctx, "a", bogus, f.ids[2], 10); !errors.Is(err, replay.ErrHistoryLost) {
		t.Fatalf("bogus position: %v, want ErrHistoryLost", err)
	}
	if ok, _ := f.store.Contains(ctx, "a", f.ids[1]); !ok {
		t.Fatal("Contains misses a real id")
	}
}

func TestRedisStore_Lasts(t *testing.T) {
	f := newFixture(t, pubsub.PublisherConfig{}, 3)
	topics := make([]string, 2500) // more than one pipeline batch
	for i := range topics {
		topics[i] = fmt.Sprintf("none%d", i)
	}
	topics[1700] = "a"
	got, err := f.store.Lasts(context.Background(), topics)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range got {
		want := contract.ID{}
		if i == 1700 {
			want = f.ids[2]
		}
		if id != want {
			t.Fatalf("topic %d (%s): %v, want %v", i, topics[i], id, want)
		}
	}
}
