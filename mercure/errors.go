package mercure

import (
	"errors"
	"fmt"
	"net/http"
)

// The kinds of refusal, matched with errors.Is. Every error this package
// returns about a request's content is a [*RequestError] of one of them.
var (
	// ErrInvalid: the request can never succeed as sent (400).
	ErrInvalid = errors.New("mercure: invalid")
	// ErrTooLarge: the request is over a configured size limit (413).
	ErrTooLarge = errors.New("mercure: too large")
	// ErrReserved: a publisher named a topic in the hub's own
	// "/.well-known/mercure" namespace (403, as Mercure answers).
	ErrReserved = errors.New("mercure: reserved")
	// ErrUnauthorized: the credentials are missing where required, cannot be
	// read, or come from a disallowed origin (401, as Mercure answers).
	ErrUnauthorized = errors.New("mercure: unauthorized")
)

// RequestError is a refusal of a Mercure request: the HTTP status the
// protocol answers it with (Mercure v0.24 where it has one) and a message fit
// for the client, as the text/plain body.
type RequestError struct {
	Status  int
	Message string
	kind    error
}

func (e *RequestError) Error() string { return e.Message }

// Unwrap returns the kind: ErrInvalid, ErrTooLarge, ErrReserved or
// ErrUnauthorized.
func (e *RequestError) Unwrap() error { return e.kind }

func newError(kind error, format string, args ...any) *RequestError {
	status := http.StatusBadRequest
	switch kind {
	case ErrTooLarge:
		status = http.StatusRequestEntityTooLarge
	case ErrReserved:
		status = http.StatusForbidden
	case ErrUnauthorized:
		status = http.StatusUnauthorized
	}
	return &RequestError{Status: status, Message: fmt.Sprintf(format, args...), kind: kind}
}

func invalid(format string, args ...any) *RequestError { return newError(ErrInvalid, format, args...) }

// truncate shortens s for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
