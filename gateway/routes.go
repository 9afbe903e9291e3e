package gateway

import (
	"errors"
	"io"
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ssegateway/ssegateway/mercure"
)

// routes is the node's whole HTTP surface.
func (s *Server) routes() *echo.Echo {
	s.metricsH = promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{Registry: s.m.reg})
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.httpError
	e.IPExtractor = ipExtractor(s.cfg.TrustedProxies)
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.log.Error().Err(err).Bytes("stack", stack).Str("path", c.Path()).Msg("panic in handler")
			return err
		},
	}))

	e.Use(s.boundBody)

	if len(s.cfg.CORSOrigins) > 0 {
		e.Use(middleware.CORSWithConfig(middleware.CORSConfig{
			AllowOrigins:     s.cfg.CORSOrigins,
			AllowMethods:     []string{http.MethodGet, http.MethodPost, http.MethodOptions},
			AllowHeaders:     []string{"Authorization", "Content-Type", "Last-Event-ID", "Idempotency-Key", "Cache-Control"},
			AllowCredentials: s.cfg.CORSCredentials,
			MaxAge:           600,
		}))
	}

	e.GET("/", s.handleDemo)
	e.GET("/client/*", s.handleClient)
	e.GET("/events", s.handleEvents)
	e.POST("/publish", s.handlePublish)
	if s.mercure != nil {
		s.mercureRoutes(e)
	}
	e.GET("/healthz", s.handleHealthz)
	e.GET("/readyz", s.handleReadyz)
	if !s.cfg.AdminOnlyMetrics {
		e.GET("/metrics", echo.WrapHandler(s.metricsHandler()))
	}
	return e
}

func (s *Server) metricsHandler() http.Handler { return s.metricsH }

// mercureRoutes are the Mercure endpoint's: the hub (subscribe, publish)
// and the subscriptions API, with CORS as Mercure's cors_origins.
func (s *Server) mercureRoutes(e *echo.Echo) {
	var mw []echo.MiddlewareFunc
	if len(s.mercure.cfg.CORSOrigins) > 0 {
		mw = append(mw, middleware.CORSWithConfig(middleware.CORSConfig{
			AllowOriginFunc:  func(origin string) (bool, error) { return s.mercure.cors.Allows(origin), nil },
			AllowMethods:     []string{http.MethodGet, http.MethodPost, http.MethodHead},
			AllowHeaders:     []string{"Authorization", "Cache-Control", "Last-Event-ID"},
			ExposeHeaders:    []string{"Last-Event-ID"},
			AllowCredentials: true,
			MaxAge:           600,
		}))
	}
	g := e.Group(mercure.HubPath, mw...)
	g.GET("", s.handleMercureSubscribe)
	g.HEAD("", s.handleMercureSubscribe)
	g.POST("", s.handleMercurePublish)
	if s.mercure.cfg.Subscriptions {
		g.GET("/subscriptions", s.handleMercureSubscriptions)
		g.GET("/subscriptions/*", s.handleMercureSubscriptions)
	}
	if len(mw) > 0 {
		// Preflights need an OPTIONS route on every path served: for a path
		// whose route lacks one, echo answers OPTIONS itself, outside the
		// group's middleware, so without CORS headers.
		preflight := func(c echo.Context) error { return c.NoContent(http.StatusNoContent) }
		g.OPTIONS("", preflight)
		g.OPTIONS("/*", preflight)
		if s.mercure.cfg.Subscriptions {
			g.OPTIONS("/subscriptions", preflight)
			g.OPTIONS("/subscriptions/*", preflight)
		}
	}
}

// AdminHandler serves what operators need and the public must not reach:
// /metrics, /healthz, /readyz and the pprof profiles under /debug/pprof/.
// Run it on a separate, private listener; request bodies are bounded there
// as on the public one. Nothing it serves shows a
// secret: /debug/pprof/cmdline shows cmdline, which the caller has cleaned
// of secrets (pprof's own handler prints os.Args as they are, so a
// --jwt-secret given as a flag would be there for anyone who reaches the
// listener); nil shows nothing.
func (s *Server) AdminHandler(cmdline []string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metricsHandler())
	mux.Handle("GET /healthz", s.e)
	mux.Handle("GET /readyz", s.e)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", func(w http.ResponseWriter, _ *http.Request) {
		// As pprof.Cmdline writes it: arguments separated by NUL bytes.
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, strings.Join(cmdline, "\x00"))
	})
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return s.boundBodyHTTP(mux)
}

// errorBody is every error response's JSON body.
type errorBody struct {
	Error string `json:"error"`
}

func jsonError(c echo.Context, status int, msg string) error {
	return c.JSON(status, errorBody{Error: msg})
}

// httpError renders echo's own errors (404, 405, panics) as JSON.
func (s *Server) httpError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, msg := http.StatusInternalServerError, "internal error"
	var he *echo.HTTPError
	if errors.As(err, &he) {
		status = he.Code
		if m, ok := he.Message.(string); ok {
			msg = m
		} else {
			msg = http.StatusText(status)
		}
	}
	_ = jsonError(c, status, msg)
}
