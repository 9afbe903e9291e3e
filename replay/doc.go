// Package replay reads a topic's history from its Redis Stream and proves it
// complete.
//
// Each stream entry written by the publish script stores the id of the
// topic's previous event. [RedisStore.After] uses that to tell exactly
// whether the history after a position is intact: the first entry after the
// position must name the position as its predecessor. Trimming by count or
// age, expiry of the stream and data loss in Redis all show up as
// [ErrHistoryLost]. (XINFO STREAM's max-deleted-entry-id cannot tell: MAXLEN
// and MINID trimming leave it at 0-0.)
package replay
