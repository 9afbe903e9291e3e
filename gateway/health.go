package gateway

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// handleHealthz is liveness only: the process answers.
func (s *Server) handleHealthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// handleReadyz is 200 only while the node should get new streams: not
// draining, Redis answering, and the node's pub/sub connection alive.
func (s *Server) handleReadyz(c echo.Context) error {
	fail := func(why string) error {
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unready", "reason": why})
	}
	if s.draining.Load() {
		return fail("draining")
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), time.Second)
	defer cancel()
	if err := s.ping(ctx); err != nil {
		return fail("redis unreachable")
	}
	if !s.sub.Healthy() {
		return fail("pub/sub connection down")
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}
