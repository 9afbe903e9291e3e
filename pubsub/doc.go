// Package pubsub owns the gateway's Redis contract and the node's live feed.
//
// # The contract
//
// Every topic has three Redis names, all carrying the topic as a hash tag so
// that they live in one Redis Cluster slot (see [Keys]):
//
//	<prefix>{<topic>}:stream  the topic's history, a Redis Stream
//	<prefix>{<topic>}:last    the last event id ever issued for the topic
//	<prefix>{<topic>}:events  the pub/sub channel live events go out on
//
// An event is published by one atomic Lua script (publish.lua, run by
// [Publisher]) that assigns the event id, appends the entry to the stream,
// applies retention, records the id under :last and publishes an envelope
// (see [Envelope]). Services in any language can run the same script with
// their own Redis client; the README documents its keys and arguments.
//
// # The live feed
//
// [Subscriber] holds the node's single pub/sub connection. It subscribes and
// unsubscribes channels as the node's interest changes, reconnects with
// backoff, and reports envelopes, subscription confirmations and
// disconnections to a [Handler]. It does not repair gaps itself: every
// envelope names its predecessor, and the handler, which can read the stream,
// uses that to fill what pub/sub dropped.
package pubsub
