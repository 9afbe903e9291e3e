package contract

import (
	_ "embed"
	"strings"
)

//go:embed lib.lua
var libLua string

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

// fill puts the shared helpers (lib.lua) in front of a script, after its
// header comment, and the names the scripts share with the Go readers in.
func fill(script string) string {
	// The header is the script's first comment block: it stays on top, so
	// what a service reads first in `gateway script` is its interface.
	head, body := script, ""
	if i := strings.Index(script, "\n\n"); i >= 0 {
		head, body = script[:i+2], script[i+2:]
	}
	script = head + libLua + body
	return strings.NewReplacer(
		"{{FieldPrev}}", FieldPrev,
		"{{FieldTopic}}", FieldTopic,
		"{{FieldType}}", FieldType,
		"{{FieldData}}", FieldData,
		"{{EnvelopeVersion}}", EnvelopeVersion,
		"{{FeedEnvelopeVersion}}", FeedEnvelopeVersion,
	).Replace(script)
}
