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

	"github.com/labstack/echo/v4"

	"github.com/ssegateway/ssegateway/pubsub"
)

// publishRequest is the body of POST /publish.
type publishRequest struct {
	Topic string          `json:"topic"`
	Type  string          `json:"type"`
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
	if pr.Data == nil {
		return s.publishError(c, badRequest(`"data" is required (a string, or any JSON value)`))
	}
	var data string
	if pr.Data[0] == '"' {
		if err := json.Unmarshal(pr.Data, &data); err != nil {
			return s.publishError(c, badRequest("data: "+err.Error()))
		}
	} else {
		var b bytes.Buffer
		if err := json.Compact(&b, pr.Data); err != nil {
			return s.publishError(c, badRequest("data: "+err.Error()))
		}
		data = b.String()
	}
	if herr := pub.authorizeTopic(pr.Topic); herr != nil {
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
	id, err := s.publish(req.Context(), pubsub.Message{Topic: pr.Topic, Type: pr.Type, Data: data,
		IdempotencyKey: req.Header.Get("Idempotency-Key")})
	switch {
	case errors.Is(err, pubsub.ErrTooLarge):
		s.m.limited.WithLabelValues(limitEventSize).Inc()
		return s.publishError(c, &httpErr{http.StatusRequestEntityTooLarge, err.Error()})
	case errors.Is(err, pubsub.ErrInvalid):
		return s.publishError(c, badRequest(err.Error()))
	case err != nil:
		s.log.Warn().Err(err).Str("topic", pr.Topic).Msg("publish failed")
		return s.publishError(c, &httpErr{http.StatusServiceUnavailable, "publish failed: Redis is unavailable"})
	}
	s.m.published.WithLabelValues("ok").Inc()
	s.m.publishDuration.Observe(time.Since(start).Seconds())
	return c.JSON(http.StatusOK, map[string]string{"id": id})
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
