package pubsub

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Topology is how the gateway reaches Redis.
type Topology uint8

const (
	Standalone Topology = iota // one Redis (or a proxy in front of several)
	Sentinel                   // a primary found and followed through Sentinel
	Cluster                    // Redis Cluster: sharded pub/sub, one shard per topic
)

func (t Topology) String() string {
	switch t {
	case Sentinel:
		return "sentinel"
	case Cluster:
		return "cluster"
	}
	return "standalone"
}

// RedisConfig says where Redis is: a URL, or the explicit Sentinel or
// Cluster settings. Exactly one way must be used.
//
// URLs:
//
//	redis://[user:password@]host:port[/db]          standalone; rediss:// for TLS
//	redis-sentinel://[user:password@]s1:26379,s2:26379,s3:26379/master[/db]
//	redis-cluster://[user:password@]n1:6379,n2:6379,n3:6379
//
// rediss-sentinel:// and rediss-cluster:// use TLS to the data nodes. In a
// sentinel URL the user and password are the primary's; a query parameter
// sentinel_password=… authenticates to the sentinels.
type RedisConfig struct {
	URL            string
	SentinelMaster string   // with SentinelAddrs: Sentinel
	SentinelAddrs  []string // host:port of the sentinels
	ClusterAddrs   []string // seed nodes of a cluster
	// Username and Password authenticate to Redis (to the primary, with
	// Sentinel); a URL's own user and password win over them.
	Username string
	Password string
}

// Configured reports whether any way to reach Redis was given.
func (c RedisConfig) Configured() bool {
	return c.URL != "" || c.SentinelMaster != "" || len(c.SentinelAddrs) > 0 || len(c.ClusterAddrs) > 0
}

// Client returns a client for the configured Redis and its topology. It
// connects to nothing yet.
func (c RedisConfig) Client() (redis.UniversalClient, Topology, error) {
	ways := 0
	for _, set := range []bool{c.URL != "", c.SentinelMaster != "" || len(c.SentinelAddrs) > 0, len(c.ClusterAddrs) > 0} {
		if set {
			ways++
		}
	}
	switch {
	case ways == 0:
		return nil, 0, errors.New("no Redis configured")
	case ways > 1:
		return nil, 0, errors.New("configure Redis one way: a URL, Sentinel settings, or cluster seed addresses")
	case len(c.ClusterAddrs) > 0:
		return redis.NewClusterClient(clusterOptions(&redis.ClusterOptions{Addrs: c.ClusterAddrs, Username: c.Username, Password: c.Password})), Cluster, nil
	case c.URL == "":
		if c.SentinelMaster == "" || len(c.SentinelAddrs) == 0 {
			return nil, 0, errors.New("Sentinel needs both the primary's name and the sentinels' addresses")
		}
		return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: c.SentinelMaster, SentinelAddrs: c.SentinelAddrs,
			Username: c.Username, Password: c.Password}), Sentinel, nil
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, 0, fmt.Errorf("redis URL: %w", err)
	}
	switch u.Scheme {
	case "redis", "rediss", "unix":
		opts, err := redis.ParseURL(c.URL)
		if err != nil {
			return nil, 0, fmt.Errorf("redis URL: %w", err)
		}
		c.fill(&opts.Username, &opts.Password)
		return redis.NewClient(opts), Standalone, nil
	case "redis-sentinel", "rediss-sentinel":
		return c.sentinelURL(u)
	case "redis-cluster", "rediss-cluster":
		addrs, err := hostList(u)
		if err != nil {
			return nil, 0, err
		}
		if len(u.Query()) > 0 || (u.Path != "" && u.Path != "/") {
			return nil, 0, errors.New("redis-cluster URL: no path or parameters are supported (a cluster has one database)")
		}
		opts := &redis.ClusterOptions{Addrs: addrs}
		opts.Username, opts.Password = userinfo(u)
		c.fill(&opts.Username, &opts.Password)
		if u.Scheme == "rediss-cluster" {
			opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		return redis.NewClusterClient(clusterOptions(opts)), Cluster, nil
	}
	return nil, 0, fmt.Errorf("redis URL: unknown scheme %q; use redis://, rediss://, redis-sentinel:// or redis-cluster://", u.Scheme)
}

// clusterOptions sets what the gateway needs of a cluster client: a slot
// map refreshed every few seconds (go-redis's default is a minute, and a
// dead primary's slots keep being sent to it until then).
func clusterOptions(o *redis.ClusterOptions) *redis.ClusterOptions {
	o.ClusterStateReloadInterval = 2 * time.Second
	return o
}

// fill sets the configured user and password where the URL gave none, so
// the password can come from elsewhere (a Secret) than the URL.
func (c RedisConfig) fill(user, password *string) {
	if *password == "" && c.Password != "" {
		*user, *password = c.Username, c.Password
	}
}

func (c RedisConfig) sentinelURL(u *url.URL) (redis.UniversalClient, Topology, error) {
	addrs, err := hostList(u)
	if err != nil {
		return nil, 0, err
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if parts[0] == "" || len(parts) > 2 {
		return nil, 0, errors.New("redis-sentinel URL: the path is /<primary name>[/<db>]")
	}
	opts := &redis.FailoverOptions{MasterName: parts[0], SentinelAddrs: addrs}
	if len(parts) == 2 {
		if opts.DB, err = strconv.Atoi(parts[1]); err != nil || opts.DB < 0 {
			return nil, 0, fmt.Errorf("redis-sentinel URL: bad database %q", parts[1])
		}
	}
	opts.Username, opts.Password = userinfo(u)
	c.fill(&opts.Username, &opts.Password)
	q := u.Query()
	opts.SentinelPassword = q.Get("sentinel_password")
	q.Del("sentinel_password")
	if len(q) > 0 {
		return nil, 0, fmt.Errorf("redis-sentinel URL: unknown parameters %v (only sentinel_password)", q)
	}
	if u.Scheme == "rediss-sentinel" {
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return redis.NewFailoverClient(opts), Sentinel, nil
}

// hostList reads the comma-separated host:port list of a URL's host part.
func hostList(u *url.URL) ([]string, error) {
	var addrs []string
	for _, a := range strings.Split(u.Host, ",") {
		if a == "" {
			continue
		}
		if _, _, err := splitHostPort(a); err != nil {
			return nil, fmt.Errorf("%s URL: address %q: %w", u.Scheme, a, err)
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%s URL: no addresses", u.Scheme)
	}
	return addrs, nil
}

func splitHostPort(a string) (string, int, error) {
	i := strings.LastIndexByte(a, ':')
	if i <= 0 {
		return "", 0, errors.New("want host:port")
	}
	p, err := strconv.Atoi(a[i+1:])
	if err != nil || p <= 0 || p > 65535 {
		return "", 0, errors.New("bad port")
	}
	return a[:i], p, nil
}

func userinfo(u *url.URL) (user, password string) {
	if u.User == nil {
		return "", ""
	}
	p, _ := u.User.Password()
	return u.User.Username(), p
}

// Describe names where Redis is, without credentials, for logs.
func (c RedisConfig) Describe() string {
	switch {
	case len(c.ClusterAddrs) > 0:
		return "cluster " + strings.Join(c.ClusterAddrs, ",")
	case c.SentinelMaster != "":
		return "sentinel " + c.SentinelMaster + "@" + strings.Join(c.SentinelAddrs, ",")
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	u.RawQuery = "" // may hold sentinel_password
	return u.Redacted()
}
