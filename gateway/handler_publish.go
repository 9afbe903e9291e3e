package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/ssegateway/ssegateway/contract"
	"github.com/ssegateway/ssegateway/pubsub"
)

// publishRequest is the body of POST /publish. Its fields are read raw:
// encoding/json would turn invalid UTF-8 and lone surrogate escapes into
// U+FFFD without a word, and they must be refused instead (jsonText).
type publishRequest struct {
	Topic json.RawMessage `json:"topic"`
	Type  json.RawMessage `json:"type"`
	Data  json.RawMessage `json:"data"`
}

// handlePublish serves POST /publish. data may be a JSON string, sent as is,
// or any other JSON value, sent as its compact JSON text. An Idempotency-Key
// header makes a retry of the same request return the first id instead of
// publishing the event again.
//
// The token is checked before a byte of the body is read (the topic, in
// the body, is checked after), and the body is read under the deadlines of
// boundBody.
func (s *Server) handlePublish(c echo.Context) error {
	req := c.Request()
	pub, herr := s.authenticatePublisher(c)
	if herr != nil {
		skipBody(c)
		return s.refuse(c, herr)
	}
	body := http.MaxBytesReader(c.Response(), req.Body, s.cfg.MaxPublishBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	var pr publishRequest
	err := dec.Decode(&pr)
	if err == nil {
		if _, err = dec.Token(); errors.Is(err, io.EOF) {
			err = nil
		} else if _, timedOut := errors.AsType[*bodyTimeoutError](err); !timedOut {
			err = errNotSingle
		}
	}
	if err != nil {
		herr := badBody(err, s.cfg.MaxPublishBytes)
		switch herr.status {
		case http.StatusRequestEntityTooLarge:
			s.m.limited.WithLabelValues(limitPublishBody).Inc()
		case http.StatusRequestTimeout:
			s.m.limited.WithLabelValues(limitBodyTimeout).Inc()
			skipBody(c)
		}
		return s.publishError(c, herr)
	}
	topic, herr := jsonText("topic", pr.Topic)
	if herr != nil {
		return s.publishError(c, herr)
	}
	typ, herr := jsonText("type", pr.Type)
	if herr != nil {
		return s.publishError(c, herr)
	}
	if pr.Data == nil {
		return s.publishError(c, badRequest(`"data" is required (a string, or any JSON value)`))
	}
	var data string
	if pr.Data[0] == '"' {
		if data, herr = jsonText("data", pr.Data); herr != nil {
			return s.publishError(c, herr)
		}
	} else {
		// Sent as its JSON text, escapes and all: only raw bytes can be
		// invalid there.
		if i, ok := invalidUTF8(pr.Data); !ok {
			return s.publishError(c, badRequest(fmt.Sprintf(`"data" is not valid UTF-8: byte %#x at offset %d of the value; SSE carries UTF-8 text only`, pr.Data[i], i)))
		}
		var b bytes.Buffer
		if err := json.Compact(&b, pr.Data); err != nil {
			return s.publishError(c, badRequest("data: "+err.Error()))
		}
		data = b.String()
	}
	if herr := pub.authorizeTopic(topic); herr != nil {
		return s.refuse(c, herr)
	}
	if s.publishLimit != nil {
		if wait, ok := s.publishLimit.allow(pub.key); !ok {
			c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			s.m.published.WithLabelValues("rate_limited").Inc()
			s.m.limited.WithLabelValues(limitPublishRate).Inc()
			return jsonError(c, http.StatusTooManyRequests,
				fmt.Sprintf("publish rate limit exceeded (%g events per second); retry later", s.cfg.PublishRate))
		}
	}
	start := time.Now()
	id, err := s.publish(req.Context(), pubsub.Message{Topic: topic, Type: typ, Data: data,
		IdempotencyKey: req.Header.Get("Idempotency-Key")})
	switch {
	case errors.Is(err, contract.ErrTooLarge):
		s.m.limited.WithLabelValues(limitEventSize).Inc()
		return s.publishError(c, &httpErr{http.StatusRequestEntityTooLarge, err.Error()})
	case errors.Is(err, contract.ErrInvalid):
		return s.publishError(c, badRequest(err.Error()))
	case err != nil:
		s.log.Warn().Err(err).Str("topic", topic).Msg("publish failed")
		return s.publishError(c, &httpErr{http.StatusServiceUnavailable, "publish failed: Redis is unavailable"})
	}
	s.m.published.WithLabelValues("ok").Inc()
	s.m.publishDuration.Observe(time.Since(start).Seconds())
	return c.JSON(http.StatusOK, map[string]string{"id": id})
}

// jsonText decodes field's raw value, a JSON string (or null, or absent:
// ""), refusing what is not UTF-8 text: invalid bytes, and \u escapes of
// a lone UTF-16 surrogate, which name no character. encoding/json would
// replace both with U+FFFD; a publisher must learn that its text was not
// sent as it was.
func jsonText(field string, raw json.RawMessage) (string, *httpErr) {
	if raw == nil || string(raw) == "null" {
		return "", nil
	}
	if raw[0] != '"' {
		return "", badRequest(fmt.Sprintf("%q must be a JSON string", field))
	}
	if i, ok := invalidUTF8(raw); !ok {
		return "", badRequest(fmt.Sprintf("%q is not valid UTF-8: byte %#x at offset %d of the string as sent; SSE carries UTF-8 text only", field, raw[i], i-1))
	}
	if i, ok := loneSurrogate(raw); !ok {
		return "", badRequest(fmt.Sprintf(`%q holds a lone UTF-16 surrogate (%s at offset %d of the string as sent), which is no character; SSE carries UTF-8 text only`,
			field, raw[i:i+6], i-1))
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", badRequest(fmt.Sprintf("%q: %v", field, err))
	}
	return s, nil
}

// invalidUTF8 finds the first byte of b that is not part of valid UTF-8.
func invalidUTF8(b []byte) (int, bool) {
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i, false
		}
		i += n
	}
	return 0, true
}

// loneSurrogate finds, in a JSON string literal encoding/json has already
// found well-formed, the first \u escape of a surrogate that is not half of
// a high-low pair.
func loneSurrogate(lit []byte) (int, bool) {
	esc := func(i int) (rune, bool) { // the \uXXXX at i, if there is one
		if i+6 > len(lit) || lit[i] != '\\' || lit[i+1] != 'u' {
			return 0, false
		}
		v, err := strconv.ParseUint(string(lit[i+2:i+6]), 16, 32)
		return rune(v), err == nil
	}
	for i := 0; i < len(lit); i++ {
		if lit[i] != '\\' {
			continue
		}
		r, ok := esc(i)
		if !ok {
			i++ // another escape: skip its second character (it may be a \\)
			continue
		}
		switch {
		case utf16.IsSurrogate(r) && r < 0xdc00: // high: a low one must follow
			if lo, ok := esc(i + 6); !ok || !utf16.IsSurrogate(lo) || lo < 0xdc00 {
				return i, false
			}
			i += 11
		case utf16.IsSurrogate(r): // low, on its own
			return i, false
		default:
			i += 5
		}
	}
	return 0, true
}

// errNotSingle is a body with more after its JSON object.
var errNotSingle = errors.New("more than one JSON value")

type httpErr struct {
	status int
	msg    string
}

func badRequest(msg string) *httpErr { return &httpErr{http.StatusBadRequest, msg} }

func (s *Server) publishError(c echo.Context, e *httpErr) error {
	result := "invalid"
	if e.status == http.StatusServiceUnavailable {
		result = "error"
	}
	s.m.published.WithLabelValues(result).Inc()
	return jsonError(c, e.status, e.msg)
}

// badBody explains a body that did not decode.
func badBody(err error, limit int64) *httpErr {
	var maxErr *http.MaxBytesError
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	var timeout *bodyTimeoutError
	switch {
	case errors.Is(err, errNotSingle):
		return badRequest("body must hold a single JSON object")
	case errors.As(err, &timeout):
		return &httpErr{http.StatusRequestTimeout, timeout.msg}
	case errors.As(err, &maxErr):
		return &httpErr{http.StatusRequestEntityTooLarge, fmt.Sprintf("body is larger than %d bytes", limit)}
	case errors.Is(err, io.EOF):
		return badRequest(`body is empty; send {"topic": "...", "data": ...}`)
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("body is not valid JSON: " + err.Error())
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return badRequest(`body must be a JSON object: {"topic": "...", "data": ...}`)
	case errors.As(err, &typeErr):
		return badRequest(fmt.Sprintf("%q must be a JSON string", typeErr.Field))
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return badRequest(strings.TrimPrefix(err.Error(), "json: ") + `; allowed are "topic", "type" and "data"`)
	}
	return badRequest("body is not a valid publish request: " + err.Error())
}
