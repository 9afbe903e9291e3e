// Package gateway is the HTTP side of the SSE gateway and the only package
// that knows HTTP: routes, the SSE stream handler and its writer, resume and
// history-lost, the cursor, publish, auth middleware, health and metrics.
//
// Data flows from the node's Redis pub/sub subscription (package pubsub)
// into the fan-out (package gateway/fanout), which keeps each topic
// gap-free, encodes each event once and appends it to the byte-bounded
// outbox of every stream of that topic. Each stream's own goroutine drains
// its outbox in batches: one write per batch, under a write deadline. A
// stream whose outbox overflows is closed with a retry hint and catches up
// from its cursor on reconnect.
package gateway
