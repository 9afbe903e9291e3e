package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssegateway/ssegateway/internal/redistest"
	"github.com/ssegateway/ssegateway/pubsub"
)

// TestMain_SIGTERM_underLoad: a node with 200 streams receiving a steady
// flow of events gets SIGTERM. Readiness turns false before any stream is
// closed; the streams end in waves spread over the drain period, each with
// a retry hint; the process exits 0 within the shutdown timeout.
func TestMain_SIGTERM_underLoad(t *testing.T) {
	const (
		streams         = 200
		drainPeriod     = time.Second
		shutdownTimeout = 3 * time.Second
	)
	srv := redistest.Start(t)
	bin := filepath.Join(t.TempDir(), "gateway")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	port := redistest.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := exec.Command(bin, "--addr", fmt.Sprintf("127.0.0.1:%d", port), "--redis-url", srv.URL(), "--insecure-no-auth",
		"--log-format", "json", "--log-level", "warn", "--drain-period", drainPeriod.String(),
		"--shutdown-timeout", shutdownTimeout.String(), "--max-streams-per-client", "0") // 200 streams from one address
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	waitReady(t, base)

	// Load: streams over 20 topics, and a publisher at ~500 events/s.
	tr := &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: streams}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	type ending struct {
		at    time.Time
		retry bool
		err   error
	}
	ends := make(chan ending, streams)
	for i := range streams {
		res, err := hc.Get(eventsURL(base, fmt.Sprintf("load-%d", i%20)))
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer res.Body.Close()
			br := bufio.NewReader(res.Body)
			retries := 0
			for {
				line, err := br.ReadString('\n')
				if strings.HasPrefix(line, "retry: ") {
					retries++
				}
				if err != nil {
					// The first retry: line opens every stream; a second is
					// the goodbye.
					ends <- ending{at: time.Now(), retry: retries >= 2}
					return
				}
			}
		}()
	}
	rdb := redis.NewClient(&redis.Options{Addr: strings.TrimPrefix(srv.URL(), "redis://")})
	defer rdb.Close()
	pub := pubsub.NewPublisher(rdb, pubsub.PublisherConfig{})
	pctx, stopPub := context.WithCancel(context.Background())
	var pwg sync.WaitGroup
	pwg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-pctx.Done():
				return
			case <-tick.C:
				_, _ = pub.Publish(pctx, pubsub.Message{Topic: fmt.Sprintf("load-%d", i%20), Data: fmt.Sprint(i)})
			}
		}
	})
	defer func() { stopPub(); pwg.Wait() }()
	time.Sleep(500 * time.Millisecond) // under load

	// Readiness, polled from the signal on.
	unready := make(chan time.Time, 1)
	rctx, stopPoll := context.WithCancel(context.Background())
	defer stopPoll()
	go func() {
		for rctx.Err() == nil {
			res, err := http.Get(base + "/readyz")
			if err == nil {
				res.Body.Close()
			}
			if err != nil || res.StatusCode == http.StatusServiceUnavailable {
				unready <- time.Now()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	var at []time.Time
	for range streams {
		select {
		case e := <-ends:
			if !e.retry {
				t.Errorf("a stream ended without a retry hint")
			}
			at = append(at, e.at)
		case <-time.After(shutdownTimeout + 2*time.Second):
			t.Fatalf("%d of %d streams ended", len(at), streams)
		}
	}
	var exitAt time.Time
	select {
	case err := <-exited:
		exitAt = time.Now()
		exited <- err // for the cleanup
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, logs.String())
		}
	case <-time.After(shutdownTimeout + 2*time.Second):
		t.Fatalf("no exit within the shutdown timeout\n%s", logs.String())
	}
	var unreadyAt time.Time
	select {
	case unreadyAt = <-unready:
	default:
		t.Fatal("readiness never turned false")
	}

	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	first, last := at[0], at[len(at)-1]
	// Waves: count the 50 ms slots in which streams ended.
	slots := map[int64]bool{}
	for _, a := range at {
		slots[int64(a.Sub(first)/(50*time.Millisecond))] = true
	}
	t.Logf("unready after %v; streams ended from %v to %v after the signal, in %d distinct 50ms slots; exit after %v",
		unreadyAt.Sub(sent), first.Sub(sent), last.Sub(sent), len(slots), exitAt.Sub(sent))
	switch {
	case !unreadyAt.Before(first):
		t.Errorf("readiness turned false at %v, after the first stream closed at %v", unreadyAt.Sub(sent), first.Sub(sent))
	case last.Sub(first) < drainPeriod/2:
		t.Errorf("streams closed within %v; want them spread over the %v drain period", last.Sub(first), drainPeriod)
	case len(slots) < 5:
		t.Errorf("streams closed in %d slots of 50ms; want waves", len(slots))
	case exitAt.Sub(sent) > shutdownTimeout:
		t.Errorf("exit %v after SIGTERM, over the %v shutdown timeout", exitAt.Sub(sent), shutdownTimeout)
	}
}
