package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of real redis-server processes on free ports,
// formed with redis-cli --cluster create.
type Cluster struct {
	tb    testing.TB
	Nodes []*Server
}

// StartCluster starts masters primaries with replicas replicas each, forms
// the cluster and waits until every node reports it healthy and every
// replica is in sync. Failure detection is fast (node timeout 1 s), so
// failover tests do not wait long.
func StartCluster(tb testing.TB, masters, replicas int, opts ...Option) *Cluster {
	tb.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		tb.Fatal("redis-cli is not installed; install redis-server (Debian: apt-get install -y redis-server) or run `make test`")
	}
	c := &Cluster{tb: tb}
	var addrs []string
	for range masters * (1 + replicas) {
		bus := FreePort(tb)
		o := append([]Option{WithArgs("--cluster-enabled", "yes", "--cluster-node-timeout", "1000",
			"--cluster-port", strconv.Itoa(bus), "--cluster-config-file", "nodes.conf")}, opts...)
		n := Start(tb, o...)
		c.Nodes = append(c.Nodes, n)
		addrs = append(addrs, n.Addr())
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		tb.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitHealthy()
	return c
}

// Addrs are the nodes' host:port.
func (c *Cluster) Addrs() []string {
	var a []string
	for _, n := range c.Nodes {
		a = append(a, n.Addr())
	}
	return a
}

// URL is the cluster's redis-cluster:// URL.
func (c *Cluster) URL() string { return "redis-cluster://" + strings.Join(c.Addrs(), ",") }

// Client returns a cluster client, closed when the test ends.
func (c *Cluster) Client() *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	c.tb.Cleanup(func() { _ = cc.Close() })
	return cc
}

func (c *Cluster) do(n *Server, args ...any) (any, error) {
	cl := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1})
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return cl.Do(ctx, args...).Result()
}

// Do runs a command on node n and fails the test on error.
func (c *Cluster) Do(n *Server, args ...any) any {
	c.tb.Helper()
	v, err := c.do(n, args...)
	if err != nil {
		c.tb.Fatalf("%v on %s: %v", args, n.Addr(), err)
	}
	return v
}

// ID is node n's cluster node id.
func (c *Cluster) ID(n *Server) string {
	c.tb.Helper()
	return c.Do(n, "cluster", "myid").(string)
}

// alive are the nodes whose process runs.
func (c *Cluster) alive() []*Server {
	var a []*Server
	for _, n := range c.Nodes {
		if n.cmd != nil {
			a = append(a, n)
		}
	}
	return a
}

// MasterOf returns the node that owns slot, as a live node sees it.
func (c *Cluster) MasterOf(slot int) *Server {
	c.tb.Helper()
	for _, n := range c.alive() {
		v, err := c.do(n, "cluster", "slots")
		if err != nil {
			continue
		}
		for _, r := range v.([]any) {
			rng := r.([]any)
			if int(rng[0].(int64)) <= slot && slot <= int(rng[1].(int64)) {
				port := rng[2].([]any)[1].(int64)
				return c.byPort(int(port))
			}
		}
	}
	c.tb.Fatalf("no node owns slot %d", slot)
	return nil
}

// Masters are the live nodes that are primaries.
func (c *Cluster) Masters() []*Server {
	c.tb.Helper()
	var m []*Server
	for _, n := range c.alive() {
		if v, err := c.do(n, "role"); err == nil && v.([]any)[0] == "master" {
			m = append(m, n)
		}
	}
	return m
}

// ReplicaOf returns a live replica of master.
func (c *Cluster) ReplicaOf(master *Server) *Server {
	c.tb.Helper()
	for _, n := range c.alive() {
		info, err := c.do(n, "info", "replication")
		if err != nil {
			continue
		}
		if s, ok := info.(string); ok && strings.Contains(s, "role:slave") &&
			strings.Contains(s, fmt.Sprintf("master_port:%d", master.port)) {
			return n
		}
	}
	c.tb.Fatalf("no replica of %s", master.Addr())
	return nil
}

func (c *Cluster) byPort(port int) *Server {
	for _, n := range c.Nodes {
		if n.port == port {
			return n
		}
	}
	c.tb.Fatalf("no node on port %d", port)
	return nil
}

// WaitHealthy waits until every live node sees the cluster as ok, knows
// every live node, and every live replica's link to its primary is up.
func (c *Cluster) WaitHealthy() {
	c.tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		why := c.unhealthy()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("cluster not healthy: %s", why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) unhealthy() string {
	alive := c.alive()
	for _, n := range alive {
		v, err := c.do(n, "cluster", "info")
		if err != nil {
			return err.Error()
		}
		info := v.(string)
		if !strings.Contains(info, "cluster_state:ok") {
			return n.Addr() + " state not ok"
		}
		rep, err := c.do(n, "info", "replication")
		if err != nil {
			return err.Error()
		}
		if r := rep.(string); strings.Contains(r, "role:slave") && !strings.Contains(r, "master_link_status:up") {
			return n.Addr() + " replica link down"
		}
		nodes, err := c.do(n, "cluster", "nodes")
		if err != nil {
			return err.Error()
		}
		for _, line := range strings.Split(strings.TrimSpace(nodes.(string)), "\n") {
			if strings.Contains(line, "fail") && !strings.Contains(line, "noaddr") {
				// A failed node that is no longer running is expected.
				f := strings.Fields(line)
				addr := strings.SplitN(f[1], "@", 2)[0]
				for _, a := range alive {
					if a.Addr() == addr {
						return n.Addr() + " sees " + addr + " failed"
					}
				}
			}
		}
	}
	return ""
}

// Sentinel is a primary, a replica and three sentinels watching them.
type Sentinel struct {
	tb        testing.TB
	Master    *Server
	Replica   *Server
	Sentinels []*Server
	Name      string
}

// StartSentinel starts a primary with one replica and three sentinels
// (quorum 2) that fail over after 1 s of silence.
func StartSentinel(tb testing.TB, opts ...Option) *Sentinel {
	tb.Helper()
	s := &Sentinel{tb: tb, Name: "ssegw"}
	s.Master = Start(tb, opts...)
	s.Replica = Start(tb, append([]Option{WithArgs("--replicaof", "127.0.0.1", strconv.Itoa(s.Master.port))}, opts...)...)
	for range 3 {
		n := &Server{tb: tb, dir: tb.TempDir(), port: FreePort(tb)}
		n.conf = filepath.Join(n.dir, "sentinel.conf")
		conf := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2\nsentinel down-after-milliseconds %[1]s 1000\n"+
			"sentinel failover-timeout %[1]s 5000\nsentinel parallel-syncs %[1]s 1\n", s.Name, s.Master.port)
		if err := os.WriteFile(n.conf, []byte(conf), 0o644); err != nil {
			tb.Fatal(err)
		}
		n.args = []string{"--sentinel"}
		n.launch()
		tb.Cleanup(n.Kill)
		s.Sentinels = append(s.Sentinels, n)
	}
	// Wait for the replica to sync and every sentinel to know both.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := true
		rep := s.Replica.Client().Info(context.Background(), "replication").Val()
		ok = ok && strings.Contains(rep, "master_link_status:up")
		for _, sn := range s.Sentinels {
			c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr()})
			reps, err := c.Replicas(context.Background(), s.Name).Result()
			c.Close()
			ok = ok && err == nil && len(reps) == 1
		}
		if ok {
			return s
		}
		if time.Now().After(deadline) {
			tb.Fatal("sentinels did not discover the replica")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Addrs are the sentinels' host:port.
func (s *Sentinel) Addrs() []string {
	var a []string
	for _, n := range s.Sentinels {
		a = append(a, n.Addr())
	}
	return a
}

// URL is the redis-sentinel:// URL of the primary.
func (s *Sentinel) URL() string {
	return "redis-sentinel://" + strings.Join(s.Addrs(), ",") + "/" + s.Name
}

// CurrentMaster asks a sentinel for the primary's address.
func (s *Sentinel) CurrentMaster() string {
	for _, sn := range s.Sentinels {
		if sn.cmd == nil {
			continue
		}
		c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr()})
		a, err := c.GetMasterAddrByName(context.Background(), s.Name).Result()
		c.Close()
		if err == nil {
			return a[0] + ":" + a[1]
		}
	}
	return ""
}
