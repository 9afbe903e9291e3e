// Package redistest starts real redis-server processes for tests: one per
// test, on a free port, with persistence off unless asked for, killed when
// the test ends.
package redistest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is one redis-server process owned by a test.
type Server struct {
	tb   testing.TB
	port int
	dir  string
	conf string // a config file to start with, if any
	args []string
	cmd  *exec.Cmd
	done chan struct{}
}

// Option adjusts the server's command line.
type Option func(*Server)

// WithPersistence turns on the append-only file (fsync every write), so a
// restart keeps every acknowledged write.
func WithPersistence() Option {
	return func(s *Server) { s.args = append(s.args, "--appendonly", "yes", "--appendfsync", "always") }
}

// WithArgs appends raw redis-server arguments.
func WithArgs(args ...string) Option {
	return func(s *Server) { s.args = append(s.args, args...) }
}

// Start starts a redis-server for tb and stops it in tb.Cleanup. It fails
// the test, saying how to install Redis, if redis-server is not installed.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		tb.Fatal("redis-server is not installed; install it (Debian: apt-get install -y redis-server) or run `make test`, which does")
	}
	s := &Server{tb: tb, dir: tb.TempDir(), port: FreePort(tb)}
	s.args = []string{"--save", "", "--appendonly", "no"}
	for _, o := range opts {
		o(s)
	}
	s.launch()
	tb.Cleanup(s.Kill)
	return s
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (s *Server) launch() {
	s.tb.Helper()
	var args []string
	if s.conf != "" {
		args = append(args, s.conf)
	}
	args = append(args, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--daemonize", "no", "--loglevel", "warning", "--logfile", "")
	args = append(args, s.args...)
	cmd := exec.Command("redis-server", args...)
	logf, err := os.OpenFile(filepath.Join(s.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.tb.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		s.tb.Fatalf("start redis-server: %v", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(s.done)

	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		select {
		case <-s.done:
			out, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			s.tb.Fatalf("redis-server on port %d exited at start:\n%s", s.port, out)
		default:
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("redis-server on port %d did not answer PING: %v", s.port, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// URL is the server's redis:// URL.
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Client returns a new client of the server, closed when the test ends.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	s.tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Kill stops the server at once (SIGKILL), as a crash would.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart starts the server again on the same port and directory, so it
// reloads whatever it persisted.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Kill()
	s.launch()
}

// RestartEmpty stops the server, deletes everything it persisted and starts
// it again on the same port: Redis coming back without its data.
func (s *Server) RestartEmpty() {
	s.tb.Helper()
	s.Kill()
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		s.tb.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "redis.log" {
			if err := os.RemoveAll(filepath.Join(s.dir, e.Name())); err != nil {
				s.tb.Fatal(err)
			}
		}
	}
	s.launch()
}

// CPU is the CPU time (user and system) the server process has used, read
// from /proc (Linux); 0 if it cannot be read.
func (s *Server) CPU() time.Duration {
	if s.cmd == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which is in parentheses): utime and
	// stime are the 12th and 13th, in clock ticks (100 per second on Linux).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}
