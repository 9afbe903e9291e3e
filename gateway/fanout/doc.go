// Package fanout is the node's hot path: it turns the at-most-once Redis
// pub/sub feed into an exact one and hands every event, encoded once, to
// the streams that want it, without ever waiting for one of them.
//
// # Parts
//
//   - [Hub] keeps, per source the node follows (a topic), the streams that
//     want it and a sequencer: every envelope names its predecessor, and
//     whenever one does not follow the last event the node delivered (a
//     drop, a reconnect, a resubscribe, a stall found by the position
//     check), the hub reads the missing range from the history and
//     delivers it first. Streams therefore see, per source, every event
//     after their join point exactly once and in order, or an explicit
//     history-lost frame.
//   - [Outbox] is one stream's byte-bounded queue. The hub appends to it
//     and never blocks; the stream's writer takes everything at once.
//     A stream that falls MaxBytes behind is evicted: its client reconnects
//     with its cursor and catches up from the history.
//   - [Frame] is one event in SSE wire form, built once and shared by every
//     stream it goes to.
//
// The package knows nothing of HTTP, cursors or metrics registries: it
// imports the contract, the subscriber's Handler interface and the history
// reader, and counts through the [Counters] it is given.
//
// # Lock order
//
// Hub.mu, then Source.mu, then Outbox.mu or Hub.syncMu. No lock is held
// while reading Redis.
package fanout
