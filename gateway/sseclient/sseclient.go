// Package sseclient is a Server-Sent Events client that follows the WHATWG
// HTML standard's event stream parsing and EventSource reconnection rules:
// the parser is written from the standard, not from the gateway's encoder,
// so tests can decode what the gateway writes and compare.
package sseclient

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Event is a dispatched event, as a MessageEvent would carry it.
type Event struct {
	Type        string // "message" unless the stream named one
	Data        string
	LastEventID string // the source's last event id at dispatch
}

// Parser reads events from one stream.
type Parser struct {
	r       *bufio.Reader
	line    []byte
	skipLF  bool
	started bool

	data    []byte
	typ     string
	idBuf   string
	hasData bool

	// LastEventID is the source's last event id: updated on every
	// dispatch, with or without data.
	LastEventID string
	// Retry is the last valid retry: value, 0 if none was seen.
	Retry time.Duration
}

// NewParser returns a parser of r for a source whose last event id is
// lastEventID. The standard leaves the id buffer of a new connection empty;
// browsers start it at the source's last event id, and so does this parser.
func NewParser(r io.Reader, lastEventID string) *Parser {
	return &Parser{r: bufio.NewReader(r), LastEventID: lastEventID, idBuf: lastEventID}
}

// Next returns the next dispatched event. At the end of the stream it
// returns io.EOF (an event not ended by a blank line is discarded).
func (p *Parser) Next() (Event, error) {
	for {
		line, err := p.readLine()
		if err != nil {
			return Event{}, err
		}
		if len(line) == 0 {
			if ev, ok := p.dispatch(); ok {
				return ev, nil
			}
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value := string(line), ""
		if i := strings.IndexByte(field, ':'); i >= 0 {
			field, value = field[:i], field[i+1:]
			value = strings.TrimPrefix(value, " ")
		}
		switch field {
		case "event":
			p.typ = value
		case "data":
			p.data = append(p.data, value...)
			p.data = append(p.data, '\n')
			p.hasData = true
		case "id":
			if !strings.ContainsRune(value, 0) {
				p.idBuf = value
			}
		case "retry":
			if value != "" && strings.Trim(value, "0123456789") == "" {
				if ms, err := strconv.ParseInt(value, 10, 64); err == nil {
					p.Retry = time.Duration(ms) * time.Millisecond
				}
			}
		}
	}
}

func (p *Parser) dispatch() (Event, bool) {
	p.LastEventID = p.idBuf
	if !p.hasData {
		p.typ = ""
		return Event{}, false
	}
	ev := Event{Type: p.typ, Data: string(p.data[:len(p.data)-1]), LastEventID: p.LastEventID}
	if ev.Type == "" {
		ev.Type = "message"
	}
	p.data, p.typ, p.hasData = p.data[:0], "", false
	return ev, true
}

// readLine returns the next line without its end (CRLF, LF or CR). A CR is
// a whole line end at once, so a stream that pauses after one is not
// stalled waiting for a possible LF.
func (p *Parser) readLine() ([]byte, error) {
	p.line = p.line[:0]
	for {
		if p.skipLF {
			b, err := p.r.ReadByte()
			if err != nil {
				return nil, err
			}
			p.skipLF = false
			if b != '\n' {
				_ = p.r.UnreadByte()
			}
		}
		buf, err := p.r.Peek(max(p.r.Buffered(), 1))
		if len(buf) == 0 {
			return nil, err
		}
		i := bytes.IndexAny(buf, "\r\n")
		if i < 0 {
			p.line = append(p.line, buf...)
			_, _ = p.r.Discard(len(buf))
			continue
		}
		p.line = append(p.line, buf[:i]...)
		p.skipLF = buf[i] == '\r'
		_, _ = p.r.Discard(i + 1)
		return p.stripBOM(), nil
	}
}

func (p *Parser) stripBOM() []byte {
	if !p.started {
		p.started = true
		if len(p.line) >= 3 && string(p.line[:3]) == "\xEF\xBB\xBF" {
			return p.line[3:]
		}
	}
	return p.line
}

// Client is an EventSource: it reconnects after the stream ends or the
// connection fails, sending Last-Event-ID, and gives up for good only when
// the server answers with something other than 200 text/event-stream.
type Client struct {
	URL         string
	HTTP        *http.Client // default http.DefaultClient
	Header      http.Header  // extra request headers
	LastEventID string       // sent on the first connect too, when set
	Retry       time.Duration
	// OnOpen, when set, is called after each successful connect.
	OnOpen func()
}

// ErrFailed wraps the reason a Client gave up, as an EventSource would.
var ErrFailed = errors.New("sseclient: event source failed")

// Run connects and calls handle for every event until ctx ends (it then
// returns nil), handle returns an error (returned as is), or the server
// refuses the stream (an error wrapping ErrFailed).
func (c *Client) Run(ctx context.Context, handle func(Event) error) error {
	if c.Retry == 0 {
		c.Retry = 3 * time.Second
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	for {
		err := c.once(ctx, hc, handle)
		var stop *stopError
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &stop):
			return stop.err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(c.Retry):
		}
	}
}

type stopError struct{ err error }

func (e *stopError) Error() string { return e.err.Error() }

func (c *Client) once(ctx context.Context, hc *http.Client, handle func(Event) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return &stopError{fmt.Errorf("%w: %v", ErrFailed, err)}
	}
	for k, v := range c.Header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if c.LastEventID != "" {
		req.Header.Set("Last-Event-ID", c.LastEventID)
	}
	res, err := hc.Do(req)
	if err != nil {
		return err // network error: reconnect
	}
	defer res.Body.Close()
	mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if res.StatusCode != http.StatusOK || mt != "text/event-stream" {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return &stopError{fmt.Errorf("%w: %s %q: %s", ErrFailed, res.Status, mt, strings.TrimSpace(string(body)))}
	}
	if c.OnOpen != nil {
		c.OnOpen()
	}
	p := NewParser(res.Body, c.LastEventID)
	defer func() {
		c.LastEventID = p.LastEventID
		if p.Retry > 0 {
			c.Retry = p.Retry
		}
	}()
	for {
		ev, err := p.Next()
		if err != nil {
			return err
		}
		c.LastEventID = p.LastEventID
		if err := handle(ev); err != nil {
			return &stopError{err}
		}
	}
}
