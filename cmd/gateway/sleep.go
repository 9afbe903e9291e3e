package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// maxSleep bounds `gateway sleep`: a preStop pause longer than a day is a
// mistake, and the bound keeps a huge number from overflowing a Duration.
const maxSleep = 24 * time.Hour

// runSleep is `gateway sleep DURATION`: the preStop pause of an image with
// no shell to run sleep(1). It works on every Kubernetes version, unlike the
// pod lifecycle's sleep action.
func runSleep(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("gateway sleep", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: gateway sleep DURATION

Waits DURATION (a Go duration such as 5s or 1m30s, or a number of seconds),
then exits 0: a pause before SIGTERM in a container image that has no shell
(the Helm chart's preStop hook runs /gateway sleep). SIGINT or SIGTERM ends it
early, with exit status 1.
`)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "gateway sleep: need exactly one DURATION (see gateway sleep -h)")
		return errUsage
	}
	d, err := parseSleep(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "gateway sleep: %v\n", err)
		return errUsage
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sleep: interrupted: %w", context.Cause(ctx))
	}
}

// parseSleep reads a Go duration or a number of seconds, from 0 to maxSleep.
func parseSleep(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		secs, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || math.IsNaN(secs) || math.IsInf(secs, 0) {
			return 0, fmt.Errorf("invalid duration %q: want a Go duration (5s, 500ms) or a number of seconds", s)
		}
		if secs < 0 || secs > maxSleep.Seconds() {
			return 0, fmt.Errorf("duration %q is out of range (0 to %v)", s, maxSleep)
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d < 0 || d > maxSleep {
		return 0, fmt.Errorf("duration %q is out of range (0 to %v)", s, maxSleep)
	}
	return d, nil
}
