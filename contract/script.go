package contract

import (
	_ "embed"
	"strings"
)

//go:embed publish.lua
var publishLua string

// PublishScript returns the Lua source of the publish script, for
// [github.com/ssegateway/ssegateway/pubsub.Publisher] and for services that
// publish with their own Redis client. The names it shares with the Go
// readers (entry fields, envelope version) are filled in from this
// package's constants.
func PublishScript() string {
	return strings.NewReplacer(
		"{{FieldPrev}}", FieldPrev,
		"{{FieldTopic}}", FieldTopic,
		"{{FieldType}}", FieldType,
		"{{FieldData}}", FieldData,
		"{{EnvelopeVersion}}", EnvelopeVersion,
		"{{FeedEnvelopeVersion}}", FeedEnvelopeVersion,
	).Replace(publishLua)
}
