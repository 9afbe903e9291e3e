package pubsub_test

import (
	"context"
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/pubsub"
)

// A service publishes an event with the Go publisher; any Redis client in
// any language can run the same script (contract.PublishScript).
func ExamplePublisher_Publish() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	keys, _ := contract.NewKeys("sse:")
	pub := pubsub.NewPublisher(rdb, pubsub.PublisherConfig{Keys: keys})
	id, err := pub.Publish(context.Background(), pubsub.Message{Topic: "orders/42", Type: "status", Data: `{"state":"shipped"}`})
	if err != nil {
		fmt.Println(err)
		return
	}
	entry, _ := rdb.XRange(context.Background(), keys.Stream("orders/42"), id, id).Result()
	fmt.Println(keys.Stream("orders/42"), entry[0].Values["t"], entry[0].Values["d"], entry[0].Values["p"])
	// Output: sse:{orders}/42:stream status {"state":"shipped"} 0-0
}
