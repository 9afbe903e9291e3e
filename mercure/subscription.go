package mercure

import (
	"encoding/json"
	"net/url"
	"strings"
)

// The hub's URLs and the JSON-LD constants of the active subscriptions
// feature.
const (
	HubPath           = "/.well-known/mercure"
	SubscriptionsPath = HubPath + "/subscriptions"
	// JSONLDContext is the @context of subscription documents.
	JSONLDContext = "https://mercure.rocks/"
	// JSONLDContentType is the Content-Type of the subscriptions API.
	JSONLDContentType = "application/ld+json"
)

// Subscriber is one subscriber connection: what the subscriptions API lists
// and subscription events describe.
type Subscriber struct {
	// ID identifies the connection: a fresh urn:uuid: ([NewID]) per
	// connection, as Mercure.
	ID string `json:"id"`
	// Topics are the selectors the subscriber asked for, in the order of the
	// request's "topic" parameters (repeats included, as Mercure lists
	// them).
	Topics []string `json:"topics"`
	// Payload is the mercure.payload claim of its token, as [Claims.Claim]
	// rewrote it; nil if none.
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Subscription is one subscription's JSON-LD document, with Mercure's
// field order and names. Context is set on a document that stands alone
// (a subscription event, the single-subscription endpoint) and empty inside
// a collection; LastEventID is set by the single-subscription endpoint
// only.
type Subscription struct {
	Context     string          `json:"@context,omitempty"`
	ID          string          `json:"id"`
	Type        string          `json:"type"`
	Subscriber  string          `json:"subscriber"`
	Topic       string          `json:"topic"`
	Active      bool            `json:"active"`
	LastEventID string          `json:"lastEventID,omitempty"`
	Payload     json.RawMessage `json:"payload,omitempty"`
}

// Collection is the subscriptions API's collection document.
type Collection struct {
	Context       string         `json:"@context"`
	ID            string         `json:"id"`
	Type          string         `json:"type"`
	LastEventID   string         `json:"lastEventID"`
	Subscriptions []Subscription `json:"subscriptions"`
}

// SubscriptionID is the id of the subscription of subscriberID to the
// selector topic, which is also the topic of its subscription events:
// "/.well-known/mercure/subscriptions/{topic}/{subscriber}", each part
// escaped as Mercure escapes it (url.QueryEscape: a space becomes "+").
func SubscriptionID(topic, subscriberID string) string {
	return SubscriptionsPath + "/" + url.QueryEscape(topic) + "/" + url.QueryEscape(subscriberID)
}

// Subscriptions returns s's subscriptions, one per topic selector in order.
// withContext sets @context, for documents that stand alone.
func (s Subscriber) Subscriptions(active, withContext bool) []Subscription {
	subs := make([]Subscription, len(s.Topics))
	ctx := ""
	if withContext {
		ctx = JSONLDContext
	}
	escapedID := url.QueryEscape(s.ID)
	for i, t := range s.Topics {
		subs[i] = Subscription{
			Context:    ctx,
			ID:         SubscriptionsPath + "/" + url.QueryEscape(t) + "/" + escapedID,
			Type:       "Subscription",
			Subscriber: s.ID,
			Topic:      t,
			Active:     active,
			Payload:    s.Payload,
		}
	}
	return subs
}

// SubscriptionUpdates returns the updates Mercure publishes when s connects
// (active) or disconnects (not active), with the active subscriptions
// feature on: one per topic selector, private, its topic the
// subscription's id, its data the subscription's JSON-LD document (with
// @context, indented by two spaces as Mercure writes it), a fresh id.
//
// Mercure publishes the connect events before the subscriber is added and
// the disconnect events after it is removed, so a subscriber never
// receives its own.
func (s Subscriber) SubscriptionUpdates(active bool) []*Update {
	subs := s.Subscriptions(active, true)
	out := make([]*Update, len(subs))
	for i := range subs {
		out[i] = &Update{
			Topics:  []string{subs[i].ID},
			Private: true,
			ID:      NewID(),
			Data:    string(marshalSubscription(subs[i])),
		}
	}
	return out
}

// NewCollection returns the collection document for the subscriptions API
// URL requestURI (the path and query as requested, which Mercure uses as
// the id): every subscription of subscribers, or when topic is not empty
// those whose selector is exactly topic. lastEventID is the id of the last
// update the hub dispatched, EarliestID if none.
func NewCollection(requestURI, lastEventID, topic string, subscribers []Subscriber) Collection {
	c := Collection{Context: JSONLDContext, ID: requestURI, Type: "Subscriptions", LastEventID: lastEventID,
		Subscriptions: []Subscription{}}
	for i := range subscribers {
		for _, sub := range subscribers[i].Subscriptions(true, false) {
			if topic == "" || sub.Topic == topic {
				c.Subscriptions = append(c.Subscriptions, sub)
			}
		}
	}
	return c
}

// FindSubscription returns the single-subscription document of the
// subscriber subscriberID to the selector topic, with @context and
// lastEventID, or false when there is none (404).
func FindSubscription(lastEventID, topic, subscriberID string, subscribers []Subscriber) (Subscription, bool) {
	for i := range subscribers {
		if subscribers[i].ID != subscriberID {
			continue
		}
		for _, sub := range subscribers[i].Subscriptions(true, true) {
			if sub.Topic == topic {
				sub.LastEventID = lastEventID
				return sub, true
			}
		}
	}
	return Subscription{}, false
}

// SubscriptionsRequest is what a subscriptions API path asks for.
type SubscriptionsRequest struct {
	// Topic is the selector of /subscriptions/{topic}[/{subscriber}], ""
	// for the whole collection.
	Topic string
	// Subscriber is the subscriber id of /subscriptions/{topic}/{subscriber},
	// "" for a collection.
	Subscriber string
}

// ParseSubscriptionsPath reads a subscriptions API path in its escaped form
// (URL.EscapedPath, which keeps %2F inside a segment):
//
//	/.well-known/mercure/subscriptions                       the collection
//	/.well-known/mercure/subscriptions/{topic}               by selector
//	/.well-known/mercure/subscriptions/{topic}/{subscriber}  one subscription
//
// Segments are unescaped with url.QueryUnescape ("+" is a space), as
// Mercure does. ok is false for any other path (Mercure answers 404), and
// for a segment that does not unescape (Mercure would read it as empty).
func ParseSubscriptionsPath(escapedPath string) (req SubscriptionsRequest, ok bool) {
	rest, found := strings.CutPrefix(escapedPath, SubscriptionsPath)
	if !found {
		return req, false
	}
	if rest == "" {
		return req, true
	}
	rest, found = strings.CutPrefix(rest, "/")
	if !found {
		return req, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) > 2 {
		return req, false
	}
	var err error
	for _, p := range parts {
		if p == "" {
			return req, false
		}
	}
	if req.Topic, err = url.QueryUnescape(parts[0]); err != nil {
		return SubscriptionsRequest{}, false
	}
	if len(parts) == 2 {
		if req.Subscriber, err = url.QueryUnescape(parts[1]); err != nil {
			return SubscriptionsRequest{}, false
		}
	}
	return req, true
}

// MarshalDocument encodes a subscription or collection document as Mercure
// does (json.MarshalIndent with two spaces).
func MarshalDocument(doc any) ([]byte, error) { return json.MarshalIndent(doc, "", "  ") }

// marshalSubscription encodes sub for a subscription event. It cannot fail
// unless the payload is not valid JSON (a Subscriber built by hand); the
// event then goes without it rather than not at all.
func marshalSubscription(sub Subscription) []byte {
	b, err := MarshalDocument(sub)
	if err != nil {
		sub.Payload = nil
		b, _ = MarshalDocument(sub)
	}
	return b
}
