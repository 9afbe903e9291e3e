// Package gateway is the HTTP side of the SSE gateway and the only package
// that knows HTTP: routes, the SSE stream handler and its wire format, the hub
// that fans events out to streams, publish, health and metrics.
//
// Data flows from the node's Redis pub/sub subscription (package pubsub)
// into the hub, which keeps each topic gap-free by reading the stream
// (package replay) where pub/sub dropped something, encodes each event once
// and appends it to the byte-bounded queue of every stream of that topic.
// Each stream's own goroutine drains its queue in batches: one write and one
// flush per batch, under a write deadline. A stream whose queue overflows is
// closed with a retry hint and catches up from its cursor on reconnect.
package gateway
