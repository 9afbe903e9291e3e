// Command gateway runs a node of the SSE gateway, publishes an event, or
// mints a token for development.
//
//	gateway [flags]                              run a node (gateway -h lists the flags)
//	gateway publish --topic T [--type X] DATA    publish one event
//	gateway token [--subscribe P] [--publish P]  mint a JWT for development
//	gateway script                               print the publish Lua script
//	gateway healthcheck [--ready]                exit 0 if the local node is healthy
//	gateway sleep DURATION                       wait, then exit 0 (a preStop pause)
//	gateway version                              print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

func main() {
	// go-redis reports connection trouble through a logger of its own, a
	// process-wide setting: send it to stderr as log lines like ours.
	if l, err := newLogger("warn", "auto", os.Stderr); err == nil {
		redis.SetLogger(redisLog{l.With().Str("component", "go-redis").Logger()})
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		// The gateway package names itself in its errors too: say it once.
		msg := err.Error()
		if !strings.HasPrefix(msg, "gateway: ") {
			msg = "gateway: " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(1)
	}
}

// redisLog adapts zerolog to go-redis's logger.
type redisLog struct{ log zerolog.Logger }

func (l redisLog) Printf(_ context.Context, format string, v ...any) {
	l.log.Warn().Msgf(format, v...)
}
