package gateway

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"time"

	"github.com/labstack/echo/v4"

	jsclient "github.com/ssegateway/ssegateway/clients/js"
)

//go:embed demo.html
var demoPage []byte

// handleDemo serves the page a newcomer opens after starting the gateway: it
// subscribes with the browser client (/client/index.js), or with the
// browser's own EventSource when opened with ?client=eventsource, and
// publishes through /publish.
func (s *Server) handleDemo(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.Blob(http.StatusOK, "text/html; charset=utf-8", demoPage)
}

// handleClient serves the browser client's ES modules under /client/, so a
// page can `import { connect } from "/client/index.js"` from any node.
// Browsers revalidate them (no-cache) and get 304 while they are unchanged.
func (s *Server) handleClient(c echo.Context) error {
	name := c.Param("*")
	if name == "" || !fs.ValidPath(name) {
		return echo.ErrNotFound
	}
	b, err := fs.ReadFile(jsclient.Files(), name)
	if err != nil {
		return echo.ErrNotFound
	}
	sum := sha256.Sum256(b)
	h := c.Response().Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", `"`+hex.EncodeToString(sum[:8])+`"`)
	h.Set("X-Content-Type-Options", "nosniff")
	if path.Ext(name) == ".js" {
		h.Set("Content-Type", "text/javascript; charset=utf-8")
	} else {
		h.Set("Content-Type", "text/plain; charset=utf-8")
	}
	http.ServeContent(c.Response(), c.Request(), name, time.Time{}, bytes.NewReader(b))
	return nil
}
