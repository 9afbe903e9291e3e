package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ssegateway/ssegateway/gateway/sseclient"
	"github.com/ssegateway/ssegateway/internal/redistest"
)

// podman runs podman confined to a directory of the test's own: its own
// configuration, image storage, state, locks and temporary files, so it
// touches none of the machine's other containers, needs no daemon, and
// everything it made goes with the directory.
type podman struct {
	t   *testing.T
	env []string
}

// makeEnv is the environment for commands the tests run, without what an
// enclosing make passes to sub-makes (its command-line variables would
// override the test's).
func makeEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "TMPDIR":
			continue
		}
		env = append(env, kv)
	}
	return env
}

func newPodman(t *testing.T) *podman {
	t.Helper()
	for _, tool := range []string{"podman", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err := os.Stat("/usr/sbin/" + tool); err != nil {
				t.Fatalf("%s is not installed: the image tests build and run the image with podman and runc; "+
					"install them (Debian: apt-get install -y podman runc) or run `make test`, which does", tool)
			}
		}
	}
	dir := t.TempDir()
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	containersConf := fmt.Sprintf(`[containers]
# Podman (as root) raises the open-file limit of containers to 1048576 by
# default; where the host's hard limit is lower and cannot be raised (as in
# a container or a sandboxed VM), runc then fails with "error setting
# rlimits". Inherit the host's limits instead.
default_ulimits = []

[engine]
# runc: crun refuses hosts with hybrid cgroups (and is not always installed).
runtime = "runc"
# No systemd or journald needed.
cgroup_manager = "cgroupfs"
events_logger = "file"
# State, locks and events in the test's directory.
tmp_dir = %q
lock_type = "file"
`, tmp)
	storageConf := fmt.Sprintf(`[storage]
# vfs: plain directories, no mounts left behind if the test is killed.
driver = "vfs"
graphroot = %q
runroot = %q
`, filepath.Join(dir, "storage"), filepath.Join(dir, "run"))
	for name, text := range map[string]string{"containers.conf": containersConf, "storage.conf": storageConf} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := &podman{t: t, env: append(makeEnv(),
		"CONTAINERS_CONF="+filepath.Join(dir, "containers.conf"),
		"CONTAINERS_STORAGE_CONF="+filepath.Join(dir, "storage.conf"),
		"TMPDIR="+tmp)}
	if out, err := p.run("info", "--format", "{{.Host.OCIRuntime.Name}} {{.Store.GraphDriverName}}"); err != nil {
		t.Fatalf("podman does not work here: %v\n%s", err, out)
	}
	// Runs before t.TempDir's removal (cleanups run last-registered first).
	t.Cleanup(func() {
		for _, args := range [][]string{{"rm", "--all", "--force", "--time", "0"}, {"rmi", "--all", "--force"}} {
			if out, err := p.run(args...); err != nil {
				t.Logf("cleanup: podman %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	})
	return p
}

func (p *podman) command(args ...string) *exec.Cmd {
	cmd := exec.Command("podman", args...)
	cmd.Env = p.env
	return cmd
}

// run runs podman and returns its standard output, with its standard error
// in the error.
func (p *podman) run(args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := p.command(args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("podman %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func (p *podman) must(args ...string) string {
	p.t.Helper()
	out, err := p.run(args...)
	if err != nil {
		p.t.Fatalf("%v\n%s", err, out)
	}
	return strings.TrimSpace(out)
}

// chartTiming is what the Helm chart's default values give a pod to stop:
// the preStop pause, the drain period and shutdown timeout it passes to the
// gateway, and the grace period the template derives from them.
type chartTiming struct{ preStop, drain, shutdown, grace int }

func readChartTiming(t *testing.T) chartTiming {
	t.Helper()
	values, err := os.ReadFile("../helm/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile("../helm/templates/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	num := func(text []byte, re string) int {
		t.Helper()
		m := regexp.MustCompile(re).FindSubmatch(text)
		if m == nil {
			t.Fatalf("the chart has no match for %s: update readChartTiming", re)
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	c := chartTiming{
		preStop:  num(values, `(?m)^preStopSleepSeconds: (\d+)$`),
		drain:    num(values, `(?m)^  drainPeriodSeconds: (\d+)$`),
		shutdown: num(values, `(?m)^  shutdownTimeoutSeconds: (\d+)$`),
	}
	margin := num(tmpl, `terminationGracePeriodSeconds: \{\{ add \.Values\.preStopSleepSeconds \.Values\.gateway\.shutdownTimeoutSeconds (\d+) \}\}`)
	c.grace = c.preStop + c.shutdown + margin
	return c
}

// imageInfo is what the tests read of `podman image inspect`.
type imageInfo struct {
	Size         int64
	Architecture string
	Os           string
	Config       struct {
		User         string
		ExposedPorts map[string]any
		Env          []string
		Entrypoint   []string
		StopSignal   string
		Labels       map[string]string
	}
	Healthcheck *struct{ Test []string }
}

// TestImage builds the container image with `make image`, offline (it
// needs no base image), and runs it in a real container runtime the way
// the Helm chart runs it: as uid 65532 with a read-only root filesystem,
// no capabilities and no privilege escalation. On the embedded Redis and on
// a real redis-server it must turn ready, deliver a published event to a
// stream, answer its own healthcheck, and on the kubelet's stop sequence
// (the chart's preStop command, then SIGTERM) drain its streams and exit 0
// within the grace period the chart gives it.
func TestImage(t *testing.T) {
	p := newPodman(t)
	const version = "v0.0.0-imagetest"
	const image = "localhost/ssegateway:test"
	start := time.Now()
	build := exec.Command("make", "-C", "..", "image", "CONTAINER_ENGINE=podman", "IMAGE="+image,
		"VERSION="+version, "IMAGE_CONTEXT="+filepath.Join(t.TempDir(), "context"))
	build.Env = p.env
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	t.Logf("make image: %v", time.Since(start).Round(time.Millisecond))

	var infos []imageInfo
	if err := json.Unmarshal([]byte(p.must("image", "inspect", image)), &infos); err != nil || len(infos) != 1 {
		t.Fatalf("podman image inspect: %d images, %v", len(infos), err)
	}
	img := infos[0]
	t.Logf("image size: %.1f MB", float64(img.Size)/1e6)
	expect := func(what string, got, want any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("image %s = %v, want %v", what, got, want)
		}
	}
	expect("platform", img.Os+"/"+img.Architecture, "linux/"+runtime.GOARCH)
	expect("user", img.Config.User, "65532:65532")
	expect("entrypoint", img.Config.Entrypoint, []string{"/gateway"})
	expect("stop signal", img.Config.StopSignal, "SIGTERM")
	for _, port := range []string{"8080/tcp", "9090/tcp"} {
		if _, ok := img.Config.ExposedPorts[port]; !ok {
			t.Errorf("image does not expose %s: %v", port, img.Config.ExposedPorts)
		}
	}
	for _, env := range []string{"GATEWAY_ADDR=:8080", "GATEWAY_LOG_FORMAT=json"} {
		if !slices.Contains(img.Config.Env, env) {
			t.Errorf("image environment lacks %s: %v", env, img.Config.Env)
		}
	}
	if img.Healthcheck == nil {
		t.Error("image has no HEALTHCHECK (podman keeps it only with --format docker)")
	} else {
		expect("healthcheck", img.Healthcheck.Test, []string{"CMD", "/gateway", "healthcheck"})
	}
	expect("version label", img.Config.Labels["org.opencontainers.image.version"], version)
	expect("source label", img.Config.Labels["org.opencontainers.image.source"], "https://github.com/ssegateway/ssegateway")
	if img.Config.Labels["org.opencontainers.image.revision"] == "" {
		t.Error("image has no revision label")
	}
	if out := p.must("run", "--rm", "--network", "none", "--no-healthcheck", image, "version"); !strings.HasPrefix(out, "ssegateway "+version+" (") {
		t.Errorf("gateway version in the image printed %q", out)
	}

	timing := readChartTiming(t)
	t.Run("embedded", func(t *testing.T) {
		c := startContainer(t, p, image, timing)
		c.checkRunsLikeTheChart(version)
		c.checkDelivers("embedded")
		c.stopLikeKubelet()
	})
	t.Run("redis-server", func(t *testing.T) {
		srv := redistest.Start(t)
		c := startContainer(t, p, image, timing, "GATEWAY_REDIS_URL="+srv.URL(), "GATEWAY_INSECURE_NO_AUTH=true")
		c.checkRunsLikeTheChart(version)
		c.checkDelivers("real")
		rdb := srv.Client()
		defer rdb.Close()
		if n, err := rdb.XLen(context.Background(), "sse:{real}:stream").Result(); err != nil || n != 1 {
			t.Errorf("the event is not in the real Redis's stream: XLEN = %d, %v", n, err)
		}
		c.stopLikeKubelet()
	})
}

// container is one gateway container of a test.
type container struct {
	t             *testing.T
	p             *podman
	name          string
	public, admin string // base URLs
	timing        chartTiming
	hc            *http.Client
	stream        *http.Response // open from checkDelivers to stopLikeKubelet
	events        *bufio.Reader
}

// startContainer runs the image on the host network, as the chart runs it
// (a read-only root with no tmpfs added, no capabilities, the chart's
// listeners, drain period and shutdown timeout), and waits until it is
// ready.
func startContainer(t *testing.T, p *podman, image string, timing chartTiming, env ...string) *container {
	t.Helper()
	public, admin := redistest.FreePort(t), redistest.FreePort(t)
	c := &container{t: t, p: p, name: fmt.Sprintf("ssegateway-test-%d-%d", os.Getpid(), public), timing: timing,
		public: fmt.Sprintf("http://127.0.0.1:%d", public), admin: fmt.Sprintf("http://127.0.0.1:%d", admin),
		hc: &http.Client{Transport: &http.Transport{}}}
	args := []string{"run", "--detach", "--name", c.name, "--network", "host",
		"--read-only", "--read-only-tmpfs=false", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
		// No timer for the image's healthcheck (podman would need systemd):
		// the test runs it itself.
		"--health-interval", "disable",
		"--env", fmt.Sprintf("GATEWAY_ADDR=127.0.0.1:%d", public),
		"--env", fmt.Sprintf("GATEWAY_ADMIN_ADDR=127.0.0.1:%d", admin),
		"--env", fmt.Sprintf("GATEWAY_DRAIN_PERIOD=%ds", timing.drain),
		"--env", fmt.Sprintf("GATEWAY_SHUTDOWN_TIMEOUT=%ds", timing.shutdown)}
	for _, e := range env {
		args = append(args, "--env", e)
	}
	p.must(append(args, image)...)
	t.Cleanup(func() {
		if c.stream != nil {
			c.stream.Body.Close()
		}
		c.hc.CloseIdleConnections()
		if t.Failed() {
			logs, _ := p.run("logs", c.name)
			t.Logf("container log:\n%s", logs)
		}
		if out, err := p.run("rm", "--force", "--time", "0", c.name); err != nil {
			t.Logf("cleanup: %v\n%s", err, out)
		}
	})
	deadline := time.Now().Add(time.Minute) // a bound for a broken container, not a timing check
	for {
		res, err := c.hc.Get(c.admin + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return c
			}
		}
		if state := p.must("inspect", "--format", "{{.State.Status}}", c.name); state != "running" {
			t.Fatalf("container is %s before turning ready", state)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/readyz: not 200 (%v)", c.admin, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkRunsLikeTheChart: the process runs as 65532:65532 (named nonroot by
// the image's passwd), with no capabilities, no way to gain privileges, and
// a read-only root filesystem; the image has no shell; /readyz answers on
// both listeners; the binary's own healthcheck and the image's HEALTHCHECK
// pass; the stamped version is the one reported.
func (c *container) checkRunsLikeTheChart(version string) {
	t := c.t
	t.Helper()
	pid := c.p.must("inspect", "--format", "{{.State.Pid}}", c.name)
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Uid:\t65532\t65532\t65532\t65532", "Gid:\t65532\t65532\t65532\t65532",
		"CapEff:\t0000000000000000", "NoNewPrivs:\t1"} {
		if !strings.Contains(string(status), want+"\n") {
			t.Errorf("the gateway process's status lacks %q:\n%s", want, status)
		}
	}
	if top := c.p.must("top", c.name, "user"); !strings.Contains(top, "nonroot") {
		t.Errorf("podman top: the process's user is not nonroot:\n%s", top)
	}
	mounts, err := os.ReadFile("/proc/" + pid + "/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	rootReadOnly := false
	for _, line := range strings.Split(string(mounts), "\n") {
		// id parent major:minor root mount-point options ...
		if f := strings.Fields(line); len(f) > 5 && f[4] == "/" {
			rootReadOnly = slices.Contains(strings.Split(f[5], ","), "ro")
		}
	}
	if !rootReadOnly {
		t.Errorf("the root filesystem is not read-only:\n%s", mounts)
	}
	if out, err := c.p.run("exec", c.name, "/bin/sh", "-c", "true"); err == nil {
		t.Errorf("the image has a shell: %s", out)
	}
	for _, u := range []string{c.public + "/readyz", c.admin + "/readyz", c.admin + "/healthz"} {
		res, err := c.hc.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("%s: %s", u, res.Status)
		}
	}
	if out := c.p.must("exec", c.name, "/gateway", "healthcheck", "--ready"); !strings.Contains(out, "ready") {
		t.Errorf("gateway healthcheck --ready printed %q", out)
	}
	c.p.must("healthcheck", "run", c.name) // the image's HEALTHCHECK
	if out := c.p.must("exec", c.name, "/gateway", "version"); !strings.Contains(out, " "+version+" ") {
		t.Errorf("gateway version printed %q, want %s", out, version)
	}
	res, err := c.hc.Get(c.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !regexp.MustCompile(`(?m)^ssegateway_build_info\{[^}]*version="` + regexp.QuoteMeta(version) + `"[^}]*\} 1$`).Match(metrics) {
		t.Errorf("/metrics has no build_info with version %q", version)
	}
}

// checkDelivers opens a stream of topic, publishes an event with POST
// /publish and reads it from the stream. The stream stays open.
func (c *container) checkDelivers(topic string) {
	t := c.t
	t.Helper()
	res, err := c.hc.Get(c.public + "/events?topic=" + topic)
	if err != nil {
		t.Fatal(err)
	}
	c.stream = res
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /events: %s", res.Status)
	}
	c.events = bufio.NewReader(res.Body)
	// The checkpoint (an id: line, then a blank line) says the stream is
	// live: what is published from now on reaches it.
	sawID := false
	for {
		line, err := c.events.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended before its checkpoint: %v", err)
		}
		if strings.HasPrefix(line, "id:") {
			sawID = true
		} else if line == "\n" && sawID {
			break
		}
	}
	body := fmt.Sprintf(`{"topic":%q,"data":"hello from the host"}`, topic)
	pres, err := c.hc.Post(c.public+"/publish", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var published struct{ ID string }
	err = json.NewDecoder(pres.Body).Decode(&published)
	pres.Body.Close()
	if pres.StatusCode != http.StatusOK || err != nil || published.ID == "" {
		t.Fatalf("POST /publish: %s, %+v, %v", pres.Status, published, err)
	}
	ev, err := sseclient.NewParser(c.events, "").Next()
	if err != nil || ev.Data != "hello from the host" || ev.LastEventID != published.ID {
		t.Fatalf("stream got %+v, %v; want the event %s", ev, err, published.ID)
	}
}

// stopLikeKubelet stops the container as the kubelet stops a pod of the
// chart: it runs the preStop hook's command (the chart's, in the image,
// which has no shell), then sends the stop signal with the rest of the
// grace period before a SIGKILL. The open stream must end with a retry
// hint and the gateway exit 0 — a SIGKILL at the end of the grace period
// would make it 137.
func (c *container) stopLikeKubelet() {
	t := c.t
	t.Helper()
	rest := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(c.events) // until the gateway closes the stream
		rest <- string(b)
	}()
	start := time.Now()
	c.p.must("exec", c.name, "/gateway", "sleep", fmt.Sprintf("%ds", c.timing.preStop))
	c.p.must("stop", "--time", strconv.Itoa(c.timing.grace-c.timing.preStop), c.name)
	took := time.Since(start)
	if code := c.p.must("inspect", "--format", "{{.State.ExitCode}}", c.name); code != "0" {
		t.Errorf("exit code %s after SIGTERM, want 0", code)
	}
	t.Logf("preStop (%ds), SIGTERM, drain (%ds) and exit: %v of the chart's %ds grace period",
		c.timing.preStop, c.timing.drain, took.Round(time.Millisecond), c.timing.grace)
	select {
	case tail := <-rest:
		if !strings.Contains(tail, "retry: ") {
			t.Errorf("the stream ended without a retry hint: %q", tail)
		}
	case <-time.After(30 * time.Second): // a bound for a hung connection, not a timing check
		c.stream.Body.Close()
		<-rest
		t.Error("the stream stayed open after the gateway exited")
	}
}
