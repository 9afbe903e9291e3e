package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is the release this binary was built as, set by the linker:
//
//	go build -ldflags "-X main.version=v1.2.0" ./cmd/gateway
//
// as make build, make dist and make image do. It stays empty in a plain
// go build or go install; buildVersion then reads the binary's build
// information instead.
var version string

// buildVersion is the binary's version, as `gateway version` prints it and
// ssegateway_build_info{version} reports it.
func buildVersion() string {
	bi, _ := debug.ReadBuildInfo()
	return resolveVersion(version, bi)
}

// resolveVersion picks the version: the stamped one if any; else the
// module's (go install …@v1.2.0); else, for a build from a checkout
// ("(devel)"), the first 12 digits of its commit; else "unknown".
func resolveVersion(stamped string, bi *debug.BuildInfo) string {
	if stamped != "" {
		return stamped
	}
	if bi == nil {
		return "unknown"
	}
	v := bi.Main.Version
	if v == "(devel)" {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v = s.Value[:12]
			}
		}
	}
	if v == "" {
		v = "unknown"
	}
	return v
}

// runVersion is `gateway version`.
func runVersion(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gateway version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: gateway version

Prints the gateway's version (stamped at build time, else the module version
or the commit of a checkout build), the Go version it was built with and its
platform.
`)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	_, err := fmt.Fprintf(stdout, "ssegateway %s (%s, %s/%s)\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}
