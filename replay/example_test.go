package replay_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/pubsub"
	"github.com/ssegateway/ssegateway/replay"
)

// A client that saw the first event asks for what it missed.
func ExampleRedisStore_After() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	keys, _ := contract.NewKeys("sse:")
	pub := pubsub.NewPublisher(rdb, pubsub.PublisherConfig{Keys: keys})
	ctx := context.Background()
	first, _ := pub.Publish(ctx, pubsub.Message{Topic: "news", Data: "one"})
	_, _ = pub.Publish(ctx, pubsub.Message{Topic: "news", Data: "two"})
	_, _ = pub.Publish(ctx, pubsub.Message{Topic: "news", Data: "three"})

	store := replay.NewRedisStore(rdb, keys)
	seen, _ := contract.ParseID(first)
	newest, _ := store.Last(ctx, "news")
	missed, err := store.After(ctx, "news", seen, newest, 100)
	if errors.Is(err, replay.ErrHistoryLost) {
		fmt.Println("history lost: refetch state")
		return
	}
	for _, e := range missed {
		fmt.Println(e.Data)
	}
	// Output:
	// two
	// three
}
