package gateway

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v4"
)

// Request bodies are bounded in time: net/http bounds the headers
// (ReadHeaderTimeout) but, without a ReadTimeout — which SSE streams cannot
// have — nothing bounds a body, and a client that announces a body and
// sends it a byte at a time holds a socket and a goroutine for as long as
// it likes, even on a route that never reads it (net/http reads what is
// left of a small body before it answers). So every request with a body
// gets a read deadline BodyTimeout after its headers, and, after
// BodyRateGrace, one that keeps moving only while the body arrives at
// MinBodyRate bytes a second on average. The deadline is the connection's
// (or the HTTP/2 stream's): it also cuts off a client that sends nothing.
// Once the body is in, net/http clears it before it starts watching the
// connection for the client going away, so a handler may then wait on
// Redis as long as it takes.

// boundBody is the middleware that puts every request body under the
// deadlines above.
func (s *Server) boundBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		s.bound(c.Response(), c.Request())
		return next(c)
	}
}

// boundBodyHTTP does the same for a net/http handler: the admin listener's.
func (s *Server) boundBodyHTTP(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.bound(w, r)
		h.ServeHTTP(w, r)
	})
}

// bound arms the deadlines of req's body, if it has one, and has it read
// through them.
func (s *Server) bound(w http.ResponseWriter, req *http.Request) {
	if req.ContentLength == 0 || req.Body == nil || req.Body == http.NoBody {
		return
	}
	now := time.Now()
	b := &deadlineBody{
		r:     req.Body,
		rc:    http.NewResponseController(w),
		limit: s.cfg.BodyTimeout,
		end:   now.Add(s.cfg.BodyTimeout),
		rate:  s.cfg.MinBodyRate,
		from:  now.Add(s.cfg.BodyRateGrace),
	}
	b.arm()
	req.Body = b
}

// deadlineBody is a request body read under a moving deadline: the next
// bytes are due when the average rate since the grace would fall under
// rate, and everything by end.
type deadlineBody struct {
	r     io.ReadCloser
	rc    *http.ResponseController
	limit time.Duration // BodyTimeout, for the error message
	end   time.Time     // the whole body is due by then
	rate  int           // bytes per second after from; <= 0: no rate
	from  time.Time     // when the rate starts to count
	n     int64         // bytes read so far
	due   time.Time     // the deadline armed
}

// arm sets the deadline for the next bytes.
func (b *deadlineBody) arm() {
	due := b.end
	if b.rate > 0 {
		if d := b.from.Add(time.Duration(float64(b.n) / float64(b.rate) * float64(time.Second))); d.Before(due) {
			due = d
		}
	}
	if !due.Equal(b.due) {
		b.due = due
		_ = b.rc.SetReadDeadline(due)
	}
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	switch {
	case err == nil:
		b.arm()
	case errors.Is(err, os.ErrDeadlineExceeded):
		if b.due.Before(b.end) {
			err = &bodyTimeoutError{fmt.Sprintf("the request body arrived slower than %d bytes per second", b.rate)}
		} else {
			err = &bodyTimeoutError{fmt.Sprintf("the request body did not arrive within %v", b.limit)}
		}
	}
	return n, err
}

func (b *deadlineBody) Close() error { return b.r.Close() }

// bodyTimeoutError is a body cut off by its deadline; its text says which.
type bodyTimeoutError struct{ msg string }

func (e *bodyTimeoutError) Error() string { return e.msg }

// skipBody makes a response that did not read the request's body end the
// connection at once rather than first read what is left of the body,
// however slowly it comes.
func skipBody(c echo.Context) {
	req := c.Request()
	if req.ContentLength == 0 || req.Body == nil || req.Body == http.NoBody {
		return
	}
	if req.ProtoMajor == 1 {
		c.Response().Header().Set("Connection", "close")
	}
	_ = http.NewResponseController(c.Response()).SetReadDeadline(time.Now())
}
