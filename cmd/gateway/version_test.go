package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func TestResolveVersion(t *testing.T) {
	checkout := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"}}}
	for _, tc := range []struct {
		name, stamped string
		bi            *debug.BuildInfo
		want          string
	}{
		{"stamped wins", "v1.2.0", checkout, "v1.2.0"},
		{"checkout build: its commit", "", checkout, "0123456789ab"},
		{"go install of a release", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.1.0"}}, "v1.1.0"},
		{"checkout without VCS information", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "(devel)"},
		{"no build information", "", nil, "unknown"},
		{"empty module version", "", &debug.BuildInfo{}, "unknown"},
	} {
		if got := resolveVersion(tc.stamped, tc.bi); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestRun_version: `gateway version` prints what build_info reports.
func TestRun_version(t *testing.T) {
	var out, errs bytes.Buffer
	if err := run(context.Background(), []string{"version"}, func(string) string { return "" }, &out, &errs); err != nil {
		t.Fatalf("gateway version: %v\n%s", err, errs.String())
	}
	want := "ssegateway " + buildVersion() + " (" + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"
	if out.String() != want {
		t.Errorf("gateway version printed %q, want %q", out.String(), want)
	}
	if err := run(context.Background(), []string{"version", "extra"}, func(string) string { return "" }, io.Discard, io.Discard); !errors.Is(err, errUsage) {
		t.Errorf("gateway version extra = %v, want a usage error", err)
	}
}

// TestRun_sleep: `gateway sleep` is the chart's preStop pause: it waits, it
// refuses what is not a duration, and a signal ends it.
func TestRun_sleep(t *testing.T) {
	sleep := func(ctx context.Context, args ...string) (string, error) {
		var errs bytes.Buffer
		err := run(ctx, append([]string{"sleep"}, args...), func(string) string { return "" }, io.Discard, &errs)
		return errs.String(), err
	}
	for _, arg := range []string{"1ms", "0", "0s", "0.001"} {
		if msg, err := sleep(context.Background(), arg); err != nil {
			t.Errorf("sleep %s: %v %s", arg, err, msg)
		}
	}
	for _, args := range [][]string{{}, {"1s", "2s"}, {"soon"}, {"-1s"}, {"--", "-3"}, {"25h"}, {"NaN"}, {"Inf"}, {"1e300"}, {""}} {
		msg, err := sleep(context.Background(), args...)
		if !errors.Is(err, errUsage) || !strings.Contains(msg, "gateway sleep") {
			t.Errorf("sleep %q = %v, %q; want a usage error that says why", args, err, msg)
		}
	}
	if _, err := sleep(context.Background(), "-h"); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("sleep -h = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := sleep(ctx, "1h"); err == nil || errors.Is(err, errUsage) {
		t.Errorf("an interrupted sleep returned %v, want an error", err)
	}
	if d, err := parseSleep("1.5"); err != nil || d != 1500*time.Millisecond {
		t.Errorf("parseSleep(1.5) = %v, %v", d, err)
	}
}
