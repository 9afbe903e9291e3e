// Command gateway runs a node of the SSE gateway, or publishes an event.
//
//	gateway [flags]                              run a node (gateway -h lists the flags)
//	gateway publish --topic T [--type X] DATA    publish one event
//	gateway script                               print the publish Lua script
//	gateway healthcheck [--ready]                exit 0 if the local node is healthy
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}
