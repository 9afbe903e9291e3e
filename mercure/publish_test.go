package mercure_test

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/ssegateway/ssegateway/mercure"
)

const formType = "application/x-www-form-urlencoded"

func TestParsePublishForm(t *testing.T) {
	t.Parallel()
	// What the conformance suite's page posts (URLSearchParams), with a
	// publisher-chosen id.
	conf := url.Values{}
	conf.Add("topic", "https://example.net/foo/abc")
	conf.Set("id", `id-["https://example.net/foo/abc"]`)
	conf.Set("data", "data for\n\n        URI")
	conf.Set("private", "on")

	for _, c := range []struct {
		name, ct, body string
		want           mercure.Update // ID "" means a generated one
	}{
		{"conformance suite's body", formType, conf.Encode(), mercure.Update{
			Topics: []string{"https://example.net/foo/abc"}, ID: `id-["https://example.net/foo/abc"]`,
			Data: "data for\n\n        URI", Private: true}},
		{"minimal", formType, "topic=a", mercure.Update{Topics: []string{"a"}}},
		{"charset parameter", formType + "; charset=UTF-8", "topic=a&data=%C3%A9", mercure.Update{Topics: []string{"a"}, Data: "é"}},
		{"canonical then alternates, in order", formType, "topic=c&data=x&topic=a&topic=b",
			mercure.Update{Topics: []string{"c", "a", "b"}, Data: "x"}},
		{"an empty topic is a topic", formType, "topic=", mercure.Update{Topics: []string{""}}},
		{"first data, id and type win", formType, "topic=a&data=1&data=2&id=i1&id=i2&type=t1&type=t2",
			mercure.Update{Topics: []string{"a"}, Data: "1", ID: "i1", Type: "t1"}},
		{"private=on", formType, "topic=a&private=on", mercure.Update{Topics: []string{"a"}, Private: true}},
		{"private with no value", formType, "topic=a&private", mercure.Update{Topics: []string{"a"}, Private: true}},
		{"private=false is private", formType, "topic=a&private=false", mercure.Update{Topics: []string{"a"}, Private: true}},
		{"empty id is generated", formType, "topic=a&id=", mercure.Update{Topics: []string{"a"}}},
		{"retry", formType, "topic=a&retry=5000", mercure.Update{Topics: []string{"a"}, Retry: 5000}},
		{"retry 0", formType, "topic=a&retry=0", mercure.Update{Topics: []string{"a"}}},
		{"empty retry", formType, "topic=a&retry=", mercure.Update{Topics: []string{"a"}}},
		{"only the first retry counts", formType, "topic=a&retry=&retry=x", mercure.Update{Topics: []string{"a"}}},
		{"largest retry", formType, "topic=a&retry=18446744073709551615", mercure.Update{Topics: []string{"a"}, Retry: 1<<64 - 1}},
		{"plus is a space", formType, "topic=a+b&data=1+%2B+1", mercure.Update{Topics: []string{"a b"}, Data: "1 + 1"}},
		{"unknown names ignored", formType, "topic=a&foo=bar&authorization=x", mercure.Update{Topics: []string{"a"}}},
		{"invalid UTF-8 data kept as is", formType, "topic=a&data=%FF%00", mercure.Update{Topics: []string{"a"}, Data: "\xff\x00"}},
	} {
		u, err := mercure.ParsePublishForm(c.ct, []byte(c.body), mercure.PublishConfig{})
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		want := c.want
		if want.ID == "" {
			if !strings.HasPrefix(u.ID, "urn:uuid:") {
				t.Errorf("%s: id %q, want a generated urn:uuid:", c.name, u.ID)
			}
			want.ID = u.ID
		}
		if !equalUpdates(*u, want) {
			t.Errorf("%s: %+v, want %+v", c.name, *u, want)
		}
	}
}

func TestParsePublishForm_refuses(t *testing.T) {
	t.Parallel()
	manyTopics := strings.Repeat("topic=a&", mercure.MaxPublishTopics+1)
	for _, c := range []struct {
		name, ct, body string
		cfg            mercure.PublishConfig
		status         int
		msg            string
	}{
		{"no topic", formType, "data=x", mercure.PublishConfig{}, 400, `Missing "topic" parameter`},
		{"empty body", formType, "", mercure.PublishConfig{}, 400, `Missing "topic" parameter`},
		{"no Content-Type: not read", "", "topic=a", mercure.PublishConfig{}, 400, `Missing "topic" parameter`},
		{"JSON: not read", "application/json", "topic=a", mercure.PublishConfig{}, 400, `Missing "topic" parameter`},
		{"multipart: not read", "multipart/form-data; boundary=x", "topic=a", mercure.PublishConfig{}, 400, `Missing "topic" parameter`},
		{"malformed Content-Type", "text/", "topic=a", mercure.PublishConfig{}, 400, ""},
		{"bad escape", formType, "topic=a&data=%zz", mercure.PublishConfig{}, 400, ""},
		{"semicolon separator", formType, "topic=a;data=b", mercure.PublishConfig{}, 400, ""},
		{"too many topics", formType, manyTopics, mercure.PublishConfig{}, 400, "too many topics in update"},
		{"negative retry", formType, "topic=a&retry=-1", mercure.PublishConfig{}, 400, `Invalid "retry" parameter`},
		{"fractional retry", formType, "topic=a&retry=1.5", mercure.PublishConfig{}, 400, `Invalid "retry" parameter`},
		{"signed retry", formType, "topic=a&retry=%2B1", mercure.PublishConfig{}, 400, `Invalid "retry" parameter`},
		{"retry overflow", formType, "topic=a&retry=18446744073709551616", mercure.PublishConfig{}, 400, `Invalid "retry" parameter`},
		{"data over the default limit", formType, "topic=a&data=" + strings.Repeat("x", mercure.DefaultMaxDataBytes+1),
			mercure.PublishConfig{}, 413, ""},
		{"data over a configured limit", formType, "topic=a&data=12345", mercure.PublishConfig{MaxDataBytes: 4}, 413,
			`"data" is 5 bytes, at most 4 allowed`},
	} {
		u, err := mercure.ParsePublishForm(c.ct, []byte(c.body), c.cfg)
		var re *mercure.RequestError
		if !errors.As(err, &re) || re.Status != c.status || (c.msg != "" && re.Message != c.msg) {
			t.Errorf("%s: %+v, %v; want %d %q", c.name, u, err, c.status, c.msg)
		}
	}
	if _, err := mercure.ParsePublishForm(formType, []byte("topic=a&data=12345"), mercure.PublishConfig{MaxDataBytes: 5}); err != nil {
		t.Errorf("data at the limit: %v", err)
	}
	if _, err := mercure.ParsePublishForm(formType, []byte("topic=a&data="+strings.Repeat("x", 1<<20)), mercure.PublishConfig{MaxDataBytes: -1}); err != nil {
		t.Errorf("no limit: %v", err)
	}
	if u, err := mercure.ParsePublishForm(formType, []byte(strings.Repeat("topic=a&", mercure.MaxPublishTopics)), mercure.PublishConfig{}); err != nil || len(u.Topics) != mercure.MaxPublishTopics {
		t.Errorf("%d topics: %v", mercure.MaxPublishTopics, err)
	}
}

// Parsing does not validate: Validate comes after authorization, as in
// Mercure, so a reserved topic or a bad id parses.
func TestParsePublishForm_thenValidate(t *testing.T) {
	t.Parallel()
	u, err := mercure.ParsePublishForm(formType, []byte("topic=%2F.well-known%2Fmercure%2Fx&id=%23frag"), mercure.PublishConfig{})
	if err != nil || !slices.Equal(u.Topics, []string{"/.well-known/mercure/x"}) || u.ID != "#frag" {
		t.Fatalf("%+v, %v", u, err)
	}
	var re *mercure.RequestError
	if err := u.Validate(); !errors.As(err, &re) || re.Status != 403 || !errors.Is(err, mercure.ErrReserved) {
		t.Errorf("Validate: %v, want 403", err)
	}
}
