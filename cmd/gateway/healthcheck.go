package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// runHealthcheck is `gateway healthcheck`: for container healthchecks in an
// image with no shell or curl. It asks the local node's /healthz (or
// /readyz with --ready) and fails unless the answer is 200.
func runHealthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gateway healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: gateway healthcheck [--ready] [--url URL]

Exits 0 if the node answers /healthz (with --ready: /readyz) with 200, 1
otherwise. Without --url it asks the node configured by the same environment:
the admin listener (GATEWAY_ADMIN_ADDR) if there is one, else the public one
(GATEWAY_ADDR, HTTPS if GATEWAY_TLS_CERT is set; the certificate is not
checked, as the node is local).

Flags:
`)
		fs.PrintDefaults()
	}
	ready := fs.Bool("ready", false, "check readiness (/readyz) instead of liveness (/healthz)")
	base := fs.String("url", "", "base URL of the node, e.g. http://127.0.0.1:9090")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if *base == "" {
		*base = localURL(getenv)
	}
	path := "/healthz"
	if *ready {
		path = "/readyz"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *base+path, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	res, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1024))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s%s: %s %s", *base, path, res.Status, body)
	}
	_, err = fmt.Fprintf(stdout, "%s", body)
	return err
}

// localURL is the base URL of the node this environment configures.
func localURL(getenv func(string) string) string {
	scheme, addr := "http", getenv(envName("admin-addr"))
	if addr == "" {
		addr = getenv(envName("addr"))
		if getenv(envName("tls-cert")) != "" {
			scheme = "https"
		}
	}
	if addr == "" {
		addr = ":8080"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return scheme + "://" + addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}
