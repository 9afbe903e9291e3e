// Package chart_test renders the Helm chart in this folder with helm, for
// the default values and the realistic values files in ci/, and validates
// every manifest strictly against the Kubernetes API types (chartcheck).
// helm and chartcheck are built from the tools module, so the product's
// go.mod stays lean.
package chart_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
)

// kubeVersion is the cluster version the chart is rendered for.
const kubeVersion = "1.34.0"

var tools struct {
	once                      sync.Once
	dir                       string
	helm, chartcheck, gateway string
	err                       error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if tools.dir != "" {
		os.RemoveAll(tools.dir)
	}
	os.Exit(code)
}

// buildTools builds helm and chartcheck (from ../tools) and the gateway,
// once per test binary.
func buildTools(t *testing.T) {
	t.Helper()
	tools.once.Do(func() {
		if tools.dir, tools.err = os.MkdirTemp("", "chart-tools"); tools.err != nil {
			return
		}
		tools.helm = filepath.Join(tools.dir, "helm")
		tools.chartcheck = filepath.Join(tools.dir, "chartcheck")
		tools.gateway = filepath.Join(tools.dir, "gateway")
		for _, b := range []struct{ dir, out, pkg string }{
			{"../tools", tools.helm, "helm.sh/helm/v3/cmd/helm"},
			{"../tools", tools.chartcheck, "./chartcheck"},
			{"..", tools.gateway, "./cmd/gateway"},
		} {
			cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
			cmd.Dir = b.dir
			if out, err := cmd.CombinedOutput(); err != nil {
				tools.err = fmt.Errorf("build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
	})
	if tools.err != nil {
		t.Fatal(tools.err)
	}
}

func run(t *testing.T, stdin []byte, name string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// render lints and renders the chart with the given helm value arguments,
// validates the result, and returns the objects.
func render(t *testing.T, valueArgs ...string) objects {
	t.Helper()
	buildTools(t)
	lint := append([]string{"lint", "--strict", "--kube-version", kubeVersion, "."}, valueArgs...)
	if _, err := run(t, nil, tools.helm, lint...); err != nil {
		t.Fatal(err)
	}
	tmpl := append([]string{"template", "rel", ".", "--namespace", "sse", "--kube-version", kubeVersion}, valueArgs...)
	manifests, err := run(t, nil, tools.helm, tmpl...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := run(t, manifests, tools.chartcheck)
	if err != nil {
		t.Fatal(err)
	}
	var objs objects
	if err := json.Unmarshal(out, &objs); err != nil {
		t.Fatal(err)
	}
	return objs
}

// objects are rendered manifests as JSON values.
type objects []map[string]any

// get walks a path of map keys and list indexes ("spec.template.0").
func get(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		switch c := v.(type) {
		case map[string]any:
			v = c[k]
		case []any:
			var i int
			if _, err := fmt.Sscan(k, &i); err != nil || i >= len(c) {
				return nil
			}
			v = c[i]
		default:
			return nil
		}
	}
	return v
}

func (o objects) kinds() []string {
	var ks []string
	for _, obj := range o {
		ks = append(ks, fmt.Sprintf("%s/%s", obj["kind"], get(obj, "metadata.name")))
	}
	sort.Strings(ks)
	return ks
}

func (o objects) find(t *testing.T, kind, name string) map[string]any {
	t.Helper()
	for _, obj := range o {
		if obj["kind"] == kind && get(obj, "metadata.name") == name {
			return obj
		}
	}
	t.Fatalf("no %s/%s in %v", kind, name, o.kinds())
	return nil
}

// env is the gateway container's environment: name → value ("<secret>"
// for values from a Secret).
func (o objects) env(t *testing.T) map[string]string {
	t.Helper()
	d := o.find(t, "Deployment", "rel-ssegateway")
	env := map[string]string{}
	list, _ := get(d, "spec.template.spec.containers.0.env").([]any)
	for _, e := range list {
		v, _ := get(e, "value").(string)
		if get(e, "valueFrom") != nil {
			v = "<secret>"
		}
		env[get(e, "name").(string)] = v
	}
	return env
}

// secretRef is where a variable of the gateway container comes from:
// "<secret>/<key>", "" if not from a Secret.
func (o objects) secretRef(t *testing.T, name string) string {
	t.Helper()
	d := o.find(t, "Deployment", "rel-ssegateway")
	list, _ := get(d, "spec.template.spec.containers.0.env").([]any)
	for _, e := range list {
		if get(e, "name") == name {
			if ref := get(e, "valueFrom.secretKeyRef"); ref != nil {
				return fmt.Sprintf("%v/%v", get(ref, "name"), get(ref, "key"))
			}
		}
	}
	return ""
}

func expect(t *testing.T, what string, got, want any) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// Common to every install: the workload shape the issue asks for.
func checkCommon(t *testing.T, o objects) {
	d := o.find(t, "Deployment", "rel-ssegateway")
	pod := get(d, "spec.template.spec")
	c := get(pod, "containers.0")
	expect(t, "readiness probe", get(c, "readinessProbe.httpGet.path"), "/readyz")
	expect(t, "liveness probe", get(c, "livenessProbe.httpGet.path"), "/healthz")
	expect(t, "probe port", get(c, "readinessProbe.httpGet.port"), "admin")
	expect(t, "preStop command", get(c, "lifecycle.preStop.exec.command"), "[/gateway sleep 5s]")
	expect(t, "terminationGracePeriodSeconds (preStop 5 + shutdown 20 + 5)", get(pod, "terminationGracePeriodSeconds"), 30)
	expect(t, "readOnlyRootFilesystem", get(c, "securityContext.readOnlyRootFilesystem"), true)
	expect(t, "runAsNonRoot", get(pod, "securityContext.runAsNonRoot"), true)
	expect(t, "capabilities", get(c, "securityContext.capabilities.drop"), "[ALL]")
	expect(t, "topology spread keys", get(pod, "topologySpreadConstraints.1.topologyKey"), "topology.kubernetes.io/zone")
	expect(t, "rolling update maxUnavailable", get(d, "spec.strategy.rollingUpdate.maxUnavailable"), 0)
	env := o.env(t)
	for k, want := range map[string]string{"GATEWAY_ADMIN_ADDR": ":9090", "GATEWAY_DRAIN_PERIOD": "10s",
		"GATEWAY_SHUTDOWN_TIMEOUT": "20s", "GATEWAY_LOG_FORMAT": "json", "GATEWAY_BODY_TIMEOUT": "30s", "GATEWAY_MIN_BODY_RATE": "1024"} {
		expect(t, k, env[k], want)
	}
	if env["GATEWAY_REDIS_URL"] == "" {
		t.Error("no GATEWAY_REDIS_URL")
	}
}

func TestChart_valuesFiles(t *testing.T) {
	for _, tc := range []struct {
		file  string
		kinds []string
		check func(t *testing.T, o objects)
	}{
		{"minimal-values.yaml", []string{"Deployment/rel-ssegateway", "PodDisruptionBudget/rel-ssegateway",
			"Service/rel-ssegateway", "Service/rel-ssegateway-admin", "ServiceAccount/rel-ssegateway"},
			func(t *testing.T, o objects) {
				env := o.env(t)
				expect(t, "redis url", env["GATEWAY_REDIS_URL"], "redis://redis.data.svc.cluster.local:6379")
				expect(t, "hmac file", env["GATEWAY_JWT_SECRET_FILE"], "/etc/ssegateway/auth/hmac-secrets")
				expect(t, "replicas", get(o.find(t, "Deployment", "rel-ssegateway"), "spec.replicas"), 2)
				expect(t, "auth volume", get(o.find(t, "Deployment", "rel-ssegateway"), "spec.template.spec.volumes.0.secret.secretName"), "sse-jwt")
			}},
		{"hpa-values.yaml", []string{"Deployment/rel-ssegateway", "HorizontalPodAutoscaler/rel-ssegateway",
			"PodDisruptionBudget/rel-ssegateway", "PrometheusRule/rel-ssegateway", "Secret/rel-ssegateway-auth",
			"Service/rel-ssegateway", "Service/rel-ssegateway-admin", "ServiceAccount/rel-ssegateway", "ServiceMonitor/rel-ssegateway"},
			func(t *testing.T, o objects) {
				d := o.find(t, "Deployment", "rel-ssegateway")
				expect(t, "replicas with the HPA on", get(d, "spec.replicas"), nil)
				if ann, _ := get(d, "spec.template.metadata.annotations").(map[string]any); ann["checksum/auth"] == nil {
					t.Error("no checksum/auth annotation: a changed secret would not roll the pods")
				}
				h := o.find(t, "HorizontalPodAutoscaler", "rel-ssegateway")
				expect(t, "hpa min", get(h, "spec.minReplicas"), 3)
				expect(t, "hpa connections metric", get(h, "spec.metrics.1.pods.metric.name"), "ssegateway_connections_open")
				expect(t, "hpa connections target", get(h, "spec.metrics.1.pods.target.averageValue"), "8k")
				expect(t, "hpa scale-down pods per minute", get(h, "spec.behavior.scaleDown.policies.0.value"), 1)
				expect(t, "secret", get(o.find(t, "Secret", "rel-ssegateway-auth"), "stringData.hmac-secrets"),
					"a-first-hmac-secret-of-at-least-32-bytes\nthe-next-hmac-secret-during-a-rotation!\n")
				env := o.env(t)
				expect(t, "redis url from secret", env["GATEWAY_REDIS_URL"], "<secret>")
				expect(t, "max connections", env["GATEWAY_MAX_CONNECTIONS"], "20000")
				sm := o.find(t, "ServiceMonitor", "rel-ssegateway")
				expect(t, "servicemonitor port", get(sm, "spec.endpoints.0.port"), "admin")
				expect(t, "servicemonitor label", get(sm, "metadata.labels.release"), "prometheus")
				rules, _ := get(o.find(t, "PrometheusRule", "rel-ssegateway"), "spec.groups.0.rules").([]any)
				if len(rules) < 5 {
					t.Errorf("%d alerting rules", len(rules))
				}
			}},
		{"ingress-values.yaml", []string{"Deployment/rel-ssegateway", "Ingress/rel-ssegateway",
			"PodDisruptionBudget/rel-ssegateway", "Service/rel-ssegateway", "Service/rel-ssegateway-admin", "ServiceAccount/rel-ssegateway"},
			func(t *testing.T, o objects) {
				ing := o.find(t, "Ingress", "rel-ssegateway")
				ann, _ := get(ing, "metadata.annotations").(map[string]any)
				for k, want := range map[string]string{
					"nginx.ingress.kubernetes.io/proxy-buffering":    "off",
					"nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
					"nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
					"cert-manager.io/cluster-issuer":                 "letsencrypt",
				} {
					expect(t, "annotation "+k, ann[k], want)
				}
				expect(t, "ingress tls", get(ing, "spec.tls.0.secretName"), "sse-example-com-tls")
				env := o.env(t)
				expect(t, "jwks url", env["GATEWAY_JWKS_URL"], "https://auth.example.com/.well-known/jwks.json")
				expect(t, "cors", env["GATEWAY_CORS_ORIGINS"], "https://app.example.com")
				expect(t, "public topics", env["GATEWAY_PUBLIC_TOPICS"], "status,news/*")
				expect(t, "trusted proxies", env["GATEWAY_TRUSTED_PROXIES"], "10.0.0.0/8")
				expect(t, "streams per client", env["GATEWAY_MAX_STREAMS_PER_CLIENT"], "200")
			}},
		{"httproute-values.yaml", []string{"Deployment/rel-ssegateway", "HTTPRoute/rel-ssegateway",
			"PodDisruptionBudget/rel-ssegateway", "Secret/rel-ssegateway-auth", "Service/rel-ssegateway",
			"Service/rel-ssegateway-admin", "ServiceAccount/rel-ssegateway"},
			func(t *testing.T, o objects) {
				r := o.find(t, "HTTPRoute", "rel-ssegateway")
				expect(t, "route parent", get(r, "spec.parentRefs.0.name"), "public")
				expect(t, "route timeout", get(r, "spec.rules.0.timeouts.request"), "0s")
				expect(t, "route backend", get(r, "spec.rules.0.backendRefs.0.name"), "rel-ssegateway")
				env := o.env(t)
				expect(t, "tls cert", env["GATEWAY_TLS_CERT"], "/etc/ssegateway/tls/tls.crt")
				expect(t, "public key", env["GATEWAY_JWT_PUBLIC_KEY"], "/etc/ssegateway/auth/public-keys.pem")
				if _, ok := env["GATEWAY_JWT_SECRET_FILE"]; ok {
					t.Error("an HMAC secret file is configured but none was given")
				}
				expect(t, "service appProtocol", get(o.find(t, "Service", "rel-ssegateway"), "spec.ports.0.appProtocol"), "https")
				expect(t, "pdb", get(o.find(t, "PodDisruptionBudget", "rel-ssegateway"), "spec.maxUnavailable"), "25%")
			}},
		{"existing-secret-values.yaml", []string{"Deployment/rel-ssegateway", "PodDisruptionBudget/rel-ssegateway",
			"Service/rel-ssegateway", "Service/rel-ssegateway-admin"},
			func(t *testing.T, o objects) {
				env := o.env(t)
				expect(t, "public key", env["GATEWAY_JWT_PUBLIC_KEY"], "/etc/ssegateway/auth/rsa.pem")
				expect(t, "jwks file", env["GATEWAY_JWKS_FILE"], "/etc/ssegateway/auth/keys.json")
				d := o.find(t, "Deployment", "rel-ssegateway")
				expect(t, "image by digest", get(d, "spec.template.spec.containers.0.image"),
					"ghcr.io/ssegateway/ssegateway@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
				expect(t, "service account", get(d, "spec.template.spec.serviceAccountName"), "sse")
				expect(t, "mercure publisher key", o.secretRef(t, "GATEWAY_MERCURE_PUBLISHER_JWT_KEY"), "sse-keys/mercure-publisher.pem")
				expect(t, "mercure publisher alg", env["GATEWAY_MERCURE_PUBLISHER_JWT_ALG"], "RS256")
				for _, k := range []string{"GATEWAY_MERCURE_SUBSCRIBER_JWT_KEY", "GATEWAY_MERCURE_SUBSCRIBER_JWT_ALG", "GATEWAY_MERCURE_CORS_ORIGINS"} {
					if v, ok := env[k]; ok {
						t.Errorf("%s = %q, but none was configured", k, v)
					}
				}
				if ann, _ := get(d, "spec.template.metadata.annotations").(map[string]any); ann["checksum/mercure"] != nil {
					t.Error("a checksum of a Secret the chart did not create")
				}
			}},
		{"mercure-values.yaml", []string{"Deployment/rel-ssegateway", "PodDisruptionBudget/rel-ssegateway",
			"Secret/rel-ssegateway-mercure", "Service/rel-ssegateway", "Service/rel-ssegateway-admin", "ServiceAccount/rel-ssegateway"},
			func(t *testing.T, o objects) {
				env := o.env(t)
				for k, want := range map[string]string{
					"GATEWAY_MERCURE_PUBLISHER_JWT_ALG":   "HS256",
					"GATEWAY_MERCURE_SUBSCRIBER_JWT_ALG":  "HS256",
					"GATEWAY_MERCURE_ANONYMOUS":           "true",
					"GATEWAY_MERCURE_SUBSCRIPTIONS":       "true",
					"GATEWAY_MERCURE_SUBSCRIPTIONS_LEASE": "20s",
					"GATEWAY_MERCURE_CORS_ORIGINS":        "https://app.example.com,https://*.example.com",
					"GATEWAY_MERCURE_PUBLISH_ORIGINS":     "https://app.example.com",
					"GATEWAY_INSECURE_NO_AUTH":            "false",
					"GATEWAY_PUBLIC_TOPICS":               "status",
				} {
					expect(t, k, env[k], want)
				}
				expect(t, "publisher key", o.secretRef(t, "GATEWAY_MERCURE_PUBLISHER_JWT_KEY"), "rel-ssegateway-mercure/publisher-jwt-key")
				expect(t, "subscriber key", o.secretRef(t, "GATEWAY_MERCURE_SUBSCRIBER_JWT_KEY"), "rel-ssegateway-mercure/subscriber-jwt-key")
				if _, ok := env["GATEWAY_JWT_SECRET_FILE"]; ok {
					t.Error("a JWT secret file for /events, though none was given")
				}
				sec := o.find(t, "Secret", "rel-ssegateway-mercure")
				expect(t, "secret publisher key", get(sec, "stringData.publisher-jwt-key"), "a-mercure-publisher-key-of-32-bytes!")
				expect(t, "secret subscriber key", get(sec, "stringData.subscriber-jwt-key"), "a-mercure-subscriber-key-of-32-bytes")
				d := o.find(t, "Deployment", "rel-ssegateway")
				if ann, _ := get(d, "spec.template.metadata.annotations").(map[string]any); ann["checksum/mercure"] == nil {
					t.Error("no checksum/mercure annotation: changed keys would not roll the pods")
				}
				if v := get(d, "spec.template.spec.volumes"); v != nil {
					t.Errorf("volumes %v, though no key file is mounted", v)
				}
			}},
		{"cluster-values.yaml", []string{"Deployment/rel-ssegateway", "PodDisruptionBudget/rel-ssegateway",
			"Service/rel-ssegateway", "Service/rel-ssegateway-admin", "ServiceAccount/rel-ssegateway"},
			func(t *testing.T, o objects) {
				env := o.env(t)
				expect(t, "redis url", env["GATEWAY_REDIS_URL"], "redis-cluster://redis-cluster-0.redis:6379,redis-cluster-1.redis:6379,redis-cluster-2.redis:6379")
				expect(t, "redis password", env["GATEWAY_REDIS_PASSWORD"], "<secret>")
			}},
		{"bundled-redis-values.yaml", []string{"Deployment/rel-ssegateway", "PodDisruptionBudget/rel-ssegateway",
			"Service/rel-ssegateway", "Service/rel-ssegateway-admin", "Service/rel-ssegateway-redis",
			"ServiceAccount/rel-ssegateway", "StatefulSet/rel-ssegateway-redis"},
			func(t *testing.T, o objects) {
				env := o.env(t)
				expect(t, "redis url", env["GATEWAY_REDIS_URL"], "redis://rel-ssegateway-redis:6379")
				expect(t, "h2c", env["GATEWAY_H2C"], "true")
				expect(t, "anonymous", env["GATEWAY_INSECURE_NO_AUTH"], "true")
				ss := o.find(t, "StatefulSet", "rel-ssegateway-redis")
				ann, _ := get(ss, "metadata.annotations").(map[string]any)
				expect(t, "redis marked", ann["ssegateway.io/not-for-production"], "single Redis, no failover")
				expect(t, "redis volume", get(ss, "spec.volumeClaimTemplates.0.spec.resources.requests.storage"), "1Gi")
				expect(t, "service appProtocol", get(o.find(t, "Service", "rel-ssegateway"), "spec.ports.0.appProtocol"), "kubernetes.io/h2c")
			}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			o := render(t, "-f", filepath.Join("ci", tc.file))
			if got := o.kinds(); !slices.Equal(got, tc.kinds) {
				t.Errorf("rendered %v\nwant     %v", got, tc.kinds)
			}
			checkCommon(t, o)
			tc.check(t, o)
		})
	}
}

// TestChart_defaults: the defaults alone do not install — there is no safe
// default for the Redis URL or the token keys — and helm says what to set.
// With just those two, the defaults render.
func TestChart_defaults(t *testing.T) {
	buildTools(t)
	_, err := run(t, nil, tools.helm, "template", "rel", ".", "--kube-version", kubeVersion)
	if err == nil || !strings.Contains(err.Error(), "set gateway.redisURL") {
		t.Fatalf("the defaults rendered, or without saying why not: %v", err)
	}
	o := render(t, "--set", "gateway.redisURL=redis://r:6379", "--set", "auth.existingSecret=keys")
	checkCommon(t, o)
}

// TestChart_anyKubeVersion: the chart renders with a plain `helm template`
// and passes `helm lint --strict` without --kube-version (helm then assumes
// Kubernetes 1.20, as many GitOps pipelines render), and renders the same
// manifests whatever the cluster's version: nothing in it depends on it.
func TestChart_anyKubeVersion(t *testing.T) {
	buildTools(t)
	files, _ := filepath.Glob("ci/*.yaml")
	for _, f := range files {
		if _, err := run(t, nil, tools.helm, "lint", "--strict", ".", "-f", f); err != nil {
			t.Errorf("helm lint without --kube-version: %v", err)
		}
		plain, err := run(t, nil, tools.helm, "template", "rel", ".", "--namespace", "sse", "-f", f)
		if err != nil {
			t.Errorf("helm template without --kube-version: %v", err)
			continue
		}
		if _, err := run(t, plain, tools.chartcheck); err != nil {
			t.Errorf("%s rendered without --kube-version: %v", f, err)
		}
		for _, v := range []string{"1.23.0", kubeVersion} {
			out, err := run(t, nil, tools.helm, "template", "rel", ".", "--namespace", "sse", "-f", f, "--kube-version", v)
			if err != nil {
				t.Errorf("helm template --kube-version %s: %v", v, err)
			} else if !bytes.Equal(out, plain) {
				t.Errorf("%s renders differently for Kubernetes %s than with helm's default", f, v)
			}
		}
	}
}

// TestChart_preStopRunsInTheBinary: the preStop hook's command is one the
// gateway binary runs (the image has nothing else to run it with), and
// preStopSleepSeconds=0 renders no hook.
func TestChart_preStopRunsInTheBinary(t *testing.T) {
	base := []string{"--set", "gateway.redisURL=redis://r:6379", "--set", "auth.existingSecret=keys"}
	o := render(t, append(base, "--set", "preStopSleepSeconds=1")...)
	d := o.find(t, "Deployment", "rel-ssegateway")
	expect(t, "terminationGracePeriodSeconds (preStop 1 + shutdown 20 + 5)", get(d, "spec.template.spec.terminationGracePeriodSeconds"), 26)
	cmd, _ := get(d, "spec.template.spec.containers.0.lifecycle.preStop.exec.command").([]any)
	if len(cmd) < 2 || cmd[0] != "/gateway" {
		t.Fatalf("preStop command %v does not run /gateway", cmd)
	}
	var args []string
	for _, a := range cmd[1:] {
		args = append(args, fmt.Sprint(a))
	}
	if _, err := run(t, nil, tools.gateway, args...); err != nil {
		t.Errorf("the gateway does not run the preStop command: %v", err)
	}
	o = render(t, append(base, "--set", "preStopSleepSeconds=0")...)
	if l := get(o.find(t, "Deployment", "rel-ssegateway"), "spec.template.spec.containers.0.lifecycle"); l != nil {
		t.Errorf("preStopSleepSeconds=0 renders a lifecycle: %v", l)
	}
}

// TestChart_refusesBadValues: values.schema.json and the chart's checks
// refuse bad values at install time, naming the problem.
func TestChart_refusesBadValues(t *testing.T) {
	buildTools(t)
	base := []string{"--set", "gateway.redisURL=redis://r:6379", "--set", "auth.existingSecret=keys"}
	for _, tc := range []struct {
		set     []string
		mention string
	}{
		{[]string{"replicaCount=0"}, "replicaCount"},
		{[]string{"image.pullPolicy=Sometimes"}, "pullPolicy"},
		{[]string{"gateway.retry=soon"}, "retry"},
		{[]string{"gateway.heartbeat=15"}, "heartbeat"},
		{[]string{"gateway.redisURL=http://r:6379"}, "redisURL"},
		{[]string{"gateway.logLevel=verbose"}, "logLevel"},
		{[]string{"gateway.maxConnectinos=5"}, "maxConnectinos"},
		{[]string{"gateway.trustedProxies=ingress.local"}, "trustedProxies"},
		{[]string{"gateway.bodyTimeout=30"}, "bodyTimeout"},
		{[]string{"gateway.maxStreamsPerClient=-1"}, "maxStreamsPerClient"},
		{[]string{"gateway.shutdownTimeoutSeconds=5"}, "shutdownTimeoutSeconds must be longer"},
		{[]string{"tls.enabled=true", "tls.secretName=x", "h2c=true"}, "h2c is for plain-text"},
		{[]string{"tls.enabled=true"}, "tls.secretName"},
		{[]string{"auth.existingSecret=", "auth.create.hmacSecrets={short}"}, "hmacSecrets"},
		{[]string{"auth.existingSecret="}, "configure token verification"},
		{[]string{"mercure.enabled=true"}, "mercure.create.publisherKey"},
		{[]string{"mercure.enabled=true", "mercure.existingSecret=m", "mercure.secretKeys.publisherKey="}, "publisherKey"},
		{[]string{"mercure.publisherAlg=none"}, "publisherAlg"},
		{[]string{"mercure.subscriptionsLease=30"}, "subscriptionsLease"},
		{[]string{"mercure.corsOrigins={https://app.example.com/}"}, "corsOrigins"},
		{[]string{"mercure.anonymus=true"}, "anonymus"},
		{[]string{"hpa.enabled=true", "hpa.maxReplicas=1", "hpa.minReplicas=2"}, "maxReplicas must be at least"},
		{[]string{"httpRoute.enabled=true"}, "parentRefs"},
		{[]string{"admin.port=8080"}, "admin.port"},
		{[]string{"pdb.maxUnavailable=0"}, "maxUnavailable"},
		{[]string{"resources.requests.cpu=lots"}, "cpu"},
	} {
		args := []string{"template", "rel", ".", "--kube-version", kubeVersion}
		args = append(args, base...)
		for _, s := range tc.set {
			args = append(args, "--set", s)
		}
		_, err := run(t, nil, tools.helm, args...)
		if err == nil {
			t.Errorf("%v: rendered", tc.set)
			continue
		}
		if !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%v: the error does not mention %q:\n%v", tc.set, tc.mention, err)
		}
	}
}

// TestChart_valuesDocumented: every value in values.yaml is described in
// the chart's README.
func TestChart_valuesDocumented(t *testing.T) {
	buildTools(t)
	if _, err := run(t, nil, tools.chartcheck, "-values-doc", "values.yaml", "README.md"); err != nil {
		t.Fatal(err)
	}
}

// TestChart_envIsGatewayFlags: every GATEWAY_* variable the chart sets, in
// any values file, is one the gateway reads (it ignores unknown ones, so a
// typo would silently fall back to a default). A flag's variable is named
// in its help in brackets, first, before any fallback ("[GATEWAY_X, or Y]").
func TestChart_envIsGatewayFlags(t *testing.T) {
	buildTools(t)
	help, _ := run(t, nil, tools.gateway, "-h") // -h exits 0 or 2 depending on the flag package; the text is what matters
	known := map[string]bool{}
	for _, m := range regexp.MustCompile(`\[(GATEWAY_[A-Z0-9_]+)[],]`).FindAllStringSubmatch(string(help), -1) {
		known[m[1]] = true
	}
	if len(known) < 30 {
		out, err := exec.Command(tools.gateway, "-h").CombinedOutput()
		for _, m := range regexp.MustCompile(`\[(GATEWAY_[A-Z0-9_]+)[],]`).FindAllStringSubmatch(string(out), -1) {
			known[m[1]] = true
		}
		if len(known) < 30 {
			t.Fatalf("read %d variables from gateway -h (%v):\n%s", len(known), err, out)
		}
	}
	files, _ := filepath.Glob("ci/*.yaml")
	for _, f := range files {
		for name := range render(t, "-f", f).env(t) {
			if !known[name] {
				t.Errorf("%s: the chart sets %s, which the gateway does not read", f, name)
			}
		}
	}
}
