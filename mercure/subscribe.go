package mercure

// LastEventID returns the last event id a subscribe request resumes from:
// the Last-Event-ID header when not empty (EventSource sends it when it
// reconnects), otherwise the first non-empty of the query parameters
// lastEventID (Mercure's), lastEventId and last_event_id (sent by
// event-source-polyfill and other clients), each read as its first value.
// "" means the request does not resume: the subscriber gets live updates
// only, and the response carries no Last-Event-ID header. [EarliestID] asks
// for every update the hub still has.
func LastEventID(header string, query map[string][]string) string {
	if header != "" {
		return header
	}
	for _, name := range [...]string{"lastEventID", "lastEventId", "last_event_id"} {
		if v := query[name]; len(v) > 0 && v[0] != "" {
			return v[0]
		}
	}
	return ""
}
