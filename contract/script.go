package contract

import (
	_ "embed"
	"strings"
)

//go:embed publish.lua
var publishLua string

//go:embed publish_feed.lua
var publishFeedLua string

// PublishScript returns the Lua source of the publish script, for
// [github.com/ssegateway/ssegateway/pubsub.Publisher] and for services that
// publish with their own Redis client. The names it shares with the Go
// readers (entry fields, envelope version) are filled in from this
// package's constants.
func PublishScript() string { return fill(publishLua) }

// FeedPublishScript returns the Lua source of the script that appends an
// event to a feed with no topic streams of its own: the Mercure hub's (see
// publish_feed.lua for its keys and arguments).
func FeedPublishScript() string { return fill(publishFeedLua) }

// fill puts the names the scripts share with the Go readers in.
func fill(script string) string {
	return strings.NewReplacer(
		"{{FieldPrev}}", FieldPrev,
		"{{FieldTopic}}", FieldTopic,
		"{{FieldType}}", FieldType,
		"{{FieldData}}", FieldData,
		"{{EnvelopeVersion}}", EnvelopeVersion,
		"{{FeedEnvelopeVersion}}", FeedEnvelopeVersion,
	).Replace(script)
}
