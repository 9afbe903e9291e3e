package mercure_test

import (
	"net/url"
	"testing"

	"github.com/ssegateway/ssegateway/mercure"
)

func TestLastEventID(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		header, query, want string
	}{
		{"", "", ""},
		{"h", "lastEventID=q", "h"},
		{"", "lastEventID=q", "q"},
		{"", "lastEventID=earliest", "earliest"},
		{"", "lastEventId=q2", "q2"},
		{"", "last_event_id=q3", "q3"},
		{"", "last_event_id=q3&lastEventId=q2&lastEventID=q", "q"},
		{"", "lastEventID=&lastEventId=q2", "q2"},
		{"", "lastEventID=a&lastEventID=b", "a"},
		{"", "Last-Event-ID=legacy", ""}, // Mercure reads it only in version 7 compatibility
		{"", "lasteventid=q", ""},
	} {
		q, _ := url.ParseQuery(c.query)
		if got := mercure.LastEventID(c.header, q); got != c.want {
			t.Errorf("header %q, query %q: %q, want %q", c.header, c.query, got, c.want)
		}
	}
}
