package gateway

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

//go:embed demo.html
var demoPage []byte

// handleDemo serves the page a newcomer opens after starting the gateway: it
// subscribes with the browser's EventSource and publishes through /publish.
func (s *Server) handleDemo(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.Blob(http.StatusOK, "text/html; charset=utf-8", demoPage)
}
