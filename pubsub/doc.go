// Package pubsub publishes events and holds the node's live feed, both on
// the Redis contract of package contract.
//
// # Publishing
//
// [Publisher] runs the contract's publish script (EVALSHA, falling back to
// EVAL), one event at a time or many in one pipeline.
//
// # The live feed
//
// [Subscriber] holds the node's single pub/sub connection ([ShardedSubscriber]
// one per primary on Redis Cluster). It subscribes and unsubscribes channels
// as the node's interest changes, reconnects with backoff, and reports
// envelopes, subscription confirmations and disconnections to a [Handler]. It
// does not repair gaps itself: every envelope names its predecessor, and the
// handler, which can read the stream, uses that to fill what pub/sub dropped.
package pubsub
