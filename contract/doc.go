// Package contract is the gateway's Redis contract, in one place: what
// services and gateway nodes agree on, whichever language they are written
// in. It holds the names of a topic's keys and channel ([Keys]), stream ids
// ([ID]), the fields of a stream entry, the envelope sent on a channel
// ([Envelope]), what a valid topic, type and payload are, and the publish
// script that writes all of them ([PublishScript]).
//
// Every topic has three Redis names, all carrying the topic as a hash tag so
// that they live in one Redis Cluster slot:
//
//	<prefix>{<topic>}:stream  the topic's history, a Redis Stream
//	<prefix>{<topic>}:last    the last event id ever issued for the topic
//	<prefix>{<topic>}:events  the pub/sub channel live events go out on
//
// An event is published by one atomic Lua script that assigns the event id,
// appends the entry to the stream, applies retention, records the id under
// :last and publishes an envelope. pubsub runs it; replay reads what it
// wrote; docs/publishing.md documents its keys and arguments for other languages.
//
// The package starts nothing and holds no state; everything in it is safe
// for concurrent use.
package contract
