// Package mercure holds the protocol of a Mercure hub (the protocol of
// Mercure v0.24, spec/mercure.md at github.com/dunglas/mercure v0.24.2, with
// the details its handler code settles), apart from HTTP and from the engine
// that stores and delivers updates.
//
// # Topic selectors
//
// [ParseSelector] compiles a selector: "*", an exact topic, or an RFC 6570
// URI template, matched as Mercure matches it (the same template library,
// github.com/yosida95/uritemplate/v3, and the same rules; see [Selector]).
// A [Matcher] indexes the filters of a node's subscribers ([Filter]: their
// topic selectors and the selectors of their mercure.subscribe claim) and
// says which of them an update reaches, evaluating each distinct selector once
// per update. A [SelectorCache] keeps compiled selectors for the
// authorization checks.
//
// # Updates
//
// [ParsePublishForm] reads a publish request's form into an [Update];
// [Update.Validate] applies the checks that follow authorization.
// [Update.Encode] and [DecodeUpdate] carry an update, losslessly, as one
// string (one stream entry field, one pub/sub envelope), and
// [Update.AppendEvent] writes it as Mercure writes an event. [LastEventID]
// reads where a subscriber resumes.
//
// # Authorization
//
// [TokenRequest.Token] finds a request's token where Mercure looks for it
// (header, query parameter, cookie, with the cookie's origin check when
// publishing). The token is verified by auth.KeyVerifier, which decodes its
// claims into [Claims]; a [Claim] then says what its bearer may publish
// ([Claim.CanPublish]) and which private updates it may receive (the
// Private selectors of its [Filter], and [Claim.CanReceive]). [Origins] are
// the publish origins and CORS origins.
//
// # Active subscriptions
//
// [Subscriber], [Subscription] and [Collection] are the JSON-LD documents of
// the subscriptions API and of subscription events
// ([Subscriber.SubscriptionUpdates]). A [Registry] lists every node's
// subscribers in Redis, with leases, so any node answers for all of them and
// a dead node's subscribers expire.
//
// Errors about a request's content are of type [*RequestError], carrying the
// HTTP status the protocol answers with: that status is part of the protocol this
// package describes.
package mercure
