// Command ssebench is a load tool for Server-Sent Events servers: this
// gateway or any other. It spreads connections over several worker
// processes (one process may hold only so many open files) and several
// source addresses (each has its own ephemeral ports).
//
//	ssebench idle    --conns 10000 --pid PID           RSS per idle connection
//	ssebench fanout  --subs 1000 --rate 200 --pid PID  latency, loss and server CPU
//	ssebench fanout  --topic 'bench/*' --spread 100    the same on a pattern subscription
//	ssebench storm   --clients 1000 --events 1000      many clients resuming at once
//	ssebench publish --concurrency 64                  POST /publish throughput
//	ssebench publish --redis-url redis://… --batch 64  Go publisher throughput (pipelined)
//	ssebench floor-server --addr 127.0.0.1:8090        the bare SSE fan-out the gateway is compared with
//	ssebench suite                                     all of it against a local node, Redis and floor server
//	ssebench soak --duration 10m --streams 19000       hours-long health: a node, Redis (AOF) restarted midway,
//	                                                   churn, publishing, exact delivery to tracked clients
//
// Events it publishes carry "<publisher> <seq> <unix nanoseconds>" (padded
// to --size) as their data; the subscribers measure latency from that
// timestamp and count loss per publisher. On a pattern subscription each
// event's data is {"topic","data"}, unwrapped before it is read.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "ssebench:", err)
		os.Exit(1)
	}
}

const usage = `Usage: ssebench idle|fanout|storm|publish|floor-server|suite|soak [flags]   (ssebench MODE -h for its flags)
`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no mode given")
	}
	switch args[0] {
	case "worker":
		return runWorker(stdin, stdout)
	case "idle":
		return cmdIdle(ctx, args[1:], stdout, stderr)
	case "fanout":
		return cmdFanout(ctx, args[1:], stdout, stderr)
	case "storm":
		return cmdStorm(ctx, args[1:], stdout, stderr)
	case "publish":
		return cmdPublish(ctx, args[1:], stdout, stderr)
	case "floor-server":
		return cmdFloorServer(ctx, args[1:], stdout, stderr)
	case "suite":
		return cmdSuite(ctx, args[1:], stdout, stderr)
	case "soak":
		return cmdSoak(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown mode %q", args[0])
}
