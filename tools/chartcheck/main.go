// Command chartcheck validates rendered Kubernetes manifests (helm template
// output on stdin) the way an API server would refuse them, without one:
//
//   - every document is decoded strictly into its Kubernetes API type
//     (k8s.io/api, Gateway API, prometheus-operator): an unknown or
//     duplicated field, or a value of the wrong type, is an error;
//   - required fields and names are checked, and references between the
//     objects (selectors, ports, services, volumes, scale targets) resolve.
//
// On success it prints the objects as a JSON array, for tests to inspect.
//
// chartcheck -values-doc VALUES README checks instead that every value in a
// chart's values file is documented in its README.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientscheme "k8s.io/client-go/kubernetes/scheme"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"
)

func main() {
	valuesDoc := flag.Bool("values-doc", false, "check that every value in VALUES is named in README")
	flag.Parse()
	var err error
	if *valuesDoc {
		if flag.NArg() != 2 {
			fmt.Fprintln(os.Stderr, "usage: chartcheck -values-doc VALUES README")
			os.Exit(2)
		}
		err = checkValuesDoc(flag.Arg(0), flag.Arg(1))
	} else {
		var objs []runtime.Object
		objs, err = decodeAll(os.Stdin)
		if err == nil {
			err = check(objs)
		}
		if err == nil {
			err = json.NewEncoder(os.Stdout).Encode(objs)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chartcheck:", err)
		os.Exit(1)
	}
}

func newScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	return s, errors.Join(clientscheme.AddToScheme(s), gatewayv1.Install(s), monitoringv1.AddToScheme(s))
}

// decodeAll strictly decodes every YAML document of r.
func decodeAll(r io.Reader) ([]runtime.Object, error) {
	s, err := newScheme()
	if err != nil {
		return nil, err
	}
	dec := serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer()
	rd := utilyaml.NewYAMLReader(bufio.NewReaderSize(r, 1<<16))
	var objs []runtime.Object
	for {
		doc, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, gvk, err := dec.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s\n---\n%s", err, doc)
		}
		obj.GetObjectKind().SetGroupVersionKind(*gvk)
		objs = append(objs, obj)
	}
}

func stripComments(doc []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out = append(out, l...)
			out = append(out, '\n')
		}
	}
	return out
}

// problems collects every failed check.
type problems []string

func (p *problems) add(obj, format string, args ...any) {
	*p = append(*p, obj+": "+fmt.Sprintf(format, args...))
}

// workload is a pod template and where it came from.
type workload struct {
	name string
	pod  *corev1.PodTemplateSpec
}

func check(objs []runtime.Object) error {
	var p problems
	services := map[string]*corev1.Service{}
	var workloads []workload
	deployments := map[string]bool{}
	seen := map[string]bool{}
	for _, o := range objs {
		m, err := metaOf(o)
		if err != nil {
			return err
		}
		id := o.GetObjectKind().GroupVersionKind().Kind + "/" + m.Name
		if seen[id] {
			p.add(id, "rendered twice")
		}
		seen[id] = true
		checkMeta(&p, id, m)
		switch v := o.(type) {
		case *corev1.Service:
			services[v.Name] = v
		case *appsv1.Deployment:
			workloads = append(workloads, workload{id, &v.Spec.Template})
			deployments[v.Name] = true
		case *appsv1.StatefulSet:
			workloads = append(workloads, workload{id, &v.Spec.Template})
		}
	}
	for _, o := range objs {
		m, _ := metaOf(o)
		id := o.GetObjectKind().GroupVersionKind().Kind + "/" + m.Name
		switch v := o.(type) {
		case *appsv1.Deployment:
			checkSelector(&p, id, v.Spec.Selector, v.Spec.Template.Labels)
			checkPod(&p, id, &v.Spec.Template.Spec)
			if v.Spec.Replicas != nil && *v.Spec.Replicas < 1 {
				p.add(id, "replicas %d", *v.Spec.Replicas)
			}
		case *appsv1.StatefulSet:
			checkSelector(&p, id, v.Spec.Selector, v.Spec.Template.Labels)
			claims := map[string]bool{}
			for _, c := range v.Spec.VolumeClaimTemplates {
				claims[c.Name] = true
				if _, ok := c.Spec.Resources.Requests[corev1.ResourceStorage]; !ok {
					p.add(id, "volume claim %s requests no storage", c.Name)
				}
			}
			checkPod(&p, id, &v.Spec.Template.Spec, claims)
			if services[v.Spec.ServiceName] == nil {
				p.add(id, "serviceName %q is not a rendered Service", v.Spec.ServiceName)
			}
		case *corev1.Service:
			checkService(&p, id, v, workloads)
		case *networkingv1.Ingress:
			if len(v.Spec.Rules) == 0 {
				p.add(id, "no rules")
			}
			for _, r := range v.Spec.Rules {
				if r.Host != "" && len(validation.IsDNS1123Subdomain(strings.TrimPrefix(r.Host, "*."))) > 0 {
					p.add(id, "host %q is not a DNS name", r.Host)
				}
				if r.HTTP == nil || len(r.HTTP.Paths) == 0 {
					p.add(id, "rule for %q has no paths", r.Host)
					continue
				}
				for _, path := range r.HTTP.Paths {
					if path.PathType == nil || !strings.HasPrefix(path.Path, "/") {
						p.add(id, "path %q needs a pathType and a leading /", path.Path)
					}
					b := path.Backend.Service
					if b == nil {
						p.add(id, "path %q has no service backend", path.Path)
						continue
					}
					checkServicePort(&p, id, services[b.Name], b.Name, b.Port.Name, b.Port.Number)
				}
			}
		case *gatewayv1.HTTPRoute:
			if len(v.Spec.ParentRefs) == 0 {
				p.add(id, "no parentRefs")
			}
			for _, r := range v.Spec.Rules {
				for _, b := range r.BackendRefs {
					if b.Port == nil {
						p.add(id, "backendRef %s has no port", b.Name)
						continue
					}
					checkServicePort(&p, id, services[string(b.Name)], string(b.Name), "", int32(*b.Port))
				}
				if r.Timeouts != nil && r.Timeouts.Request != nil {
					if !regexp.MustCompile(`^([0-9]{1,5}(h|m|s|ms)){1,4}$`).MatchString(string(*r.Timeouts.Request)) {
						p.add(id, "request timeout %q is not a Gateway API duration", *r.Timeouts.Request)
					}
				}
			}
		case *autoscalingv2.HorizontalPodAutoscaler:
			t := v.Spec.ScaleTargetRef
			if t.Kind != "Deployment" || t.APIVersion != "apps/v1" || !deployments[t.Name] {
				p.add(id, "scale target %s %s/%s is not a rendered Deployment", t.APIVersion, t.Kind, t.Name)
			}
			if v.Spec.MinReplicas == nil || *v.Spec.MinReplicas < 1 || v.Spec.MaxReplicas < *v.Spec.MinReplicas {
				p.add(id, "replicas range %v..%d", v.Spec.MinReplicas, v.Spec.MaxReplicas)
			}
			if len(v.Spec.Metrics) == 0 {
				p.add(id, "no metrics")
			}
		case *policyv1.PodDisruptionBudget:
			sel, err := metav1.LabelSelectorAsSelector(v.Spec.Selector)
			if err != nil || sel.Empty() || !anyPod(sel, workloads) {
				p.add(id, "selector %v matches no rendered pods (%v)", v.Spec.Selector, err)
			}
			if (v.Spec.MaxUnavailable == nil) == (v.Spec.MinAvailable == nil) {
				p.add(id, "exactly one of maxUnavailable and minAvailable")
			}
		case *monitoringv1.ServiceMonitor:
			sel, err := metav1.LabelSelectorAsSelector(&v.Spec.Selector)
			if err != nil || sel.Empty() {
				p.add(id, "bad selector: %v", err)
				continue
			}
			matched := 0
			for _, s := range services {
				if sel.Matches(labels.Set(s.Labels)) {
					matched++
					for _, e := range v.Spec.Endpoints {
						if !slices.ContainsFunc(s.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Name == e.Port }) {
							p.add(id, "endpoint port %q is not a port of Service %s", e.Port, s.Name)
						}
					}
				}
			}
			if matched != 1 {
				p.add(id, "selects %d Services, want 1", matched)
			}
		case *monitoringv1.PrometheusRule:
			if len(v.Spec.Groups) == 0 {
				p.add(id, "no rule groups")
			}
			for _, g := range v.Spec.Groups {
				for _, r := range g.Rules {
					if r.Alert == "" || r.Expr.String() == "" {
						p.add(id, "rule %+v needs an alert name and an expression", r)
					}
				}
			}
		case *corev1.Secret:
			if len(v.Data)+len(v.StringData) == 0 {
				p.add(id, "empty")
			}
		case *corev1.ServiceAccount:
		default:
			p.add(id, "no checks for this kind; add them to chartcheck")
		}
	}
	if len(p) > 0 {
		return errors.New(strings.Join(p, "\n"))
	}
	return nil
}

func metaOf(o runtime.Object) (*metav1.ObjectMeta, error) {
	v, ok := o.(interface{ GetObjectMeta() metav1.Object })
	if !ok {
		return nil, fmt.Errorf("%T has no metadata", o)
	}
	m, ok := v.GetObjectMeta().(*metav1.ObjectMeta)
	if !ok {
		return nil, fmt.Errorf("%T: unexpected metadata type", o)
	}
	return m, nil
}

func checkMeta(p *problems, id string, m *metav1.ObjectMeta) {
	if errs := validation.IsDNS1123Subdomain(m.Name); len(errs) > 0 {
		p.add(id, "name: %s", strings.Join(errs, "; "))
	}
	checkLabels(p, id, m.Labels)
	for k := range m.Annotations {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			p.add(id, "annotation %q: %s", k, strings.Join(errs, "; "))
		}
	}
}

func checkLabels(p *problems, id string, l map[string]string) {
	for k, v := range l {
		if errs := append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...); len(errs) > 0 {
			p.add(id, "label %s=%s: %s", k, v, strings.Join(errs, "; "))
		}
	}
}

func checkSelector(p *problems, id string, s *metav1.LabelSelector, podLabels map[string]string) {
	sel, err := metav1.LabelSelectorAsSelector(s)
	switch {
	case err != nil:
		p.add(id, "selector: %v", err)
	case sel.Empty():
		p.add(id, "empty selector")
	case !sel.Matches(labels.Set(podLabels)):
		p.add(id, "selector %v does not match the pod template's labels %v", s, podLabels)
	}
	checkLabels(p, id+" pod template", podLabels)
}

// checkPod checks a pod spec; claims are volume claim templates that
// provide volumes too.
func checkPod(p *problems, id string, spec *corev1.PodSpec, claims ...map[string]bool) {
	if len(spec.Containers) == 0 {
		p.add(id, "no containers")
	}
	vols := map[string]bool{}
	for _, v := range spec.Volumes {
		vols[v.Name] = true
	}
	for _, c := range claims {
		for n := range c {
			vols[n] = true
		}
	}
	for _, c := range spec.Containers {
		cid := id + " container " + c.Name
		if errs := validation.IsDNS1123Label(c.Name); len(errs) > 0 {
			p.add(cid, "name: %s", strings.Join(errs, "; "))
		}
		if c.Image == "" || strings.HasSuffix(c.Image, ":") {
			p.add(cid, "image %q", c.Image)
		}
		ports := map[string]bool{}
		for _, cp := range c.Ports {
			if cp.ContainerPort < 1 || cp.ContainerPort > 65535 {
				p.add(cid, "port %d", cp.ContainerPort)
			}
			if cp.Name != "" {
				if errs := validation.IsValidPortName(cp.Name); len(errs) > 0 {
					p.add(cid, "port name %q: %s", cp.Name, strings.Join(errs, "; "))
				}
				if ports[cp.Name] {
					p.add(cid, "port name %q twice", cp.Name)
				}
				ports[cp.Name] = true
			}
		}
		for _, pr := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
			if pr == nil {
				continue
			}
			var port intstr.IntOrString
			switch {
			case pr.HTTPGet != nil:
				port = pr.HTTPGet.Port
				if !strings.HasPrefix(pr.HTTPGet.Path, "/") {
					p.add(cid, "probe path %q", pr.HTTPGet.Path)
				}
			case pr.TCPSocket != nil:
				port = pr.TCPSocket.Port
			case pr.Exec != nil:
				if len(pr.Exec.Command) == 0 {
					p.add(cid, "exec probe without a command")
				}
				continue
			default:
				p.add(cid, "probe with no handler")
				continue
			}
			if port.Type == intstr.String && !ports[port.StrVal] {
				p.add(cid, "probe port %q is not a container port", port.StrVal)
			}
		}
		envs := map[string]string{}
		for _, e := range c.Env {
			if errs := validation.IsEnvVarName(e.Name); len(errs) > 0 {
				p.add(cid, "env %q: %s", e.Name, strings.Join(errs, "; "))
			}
			if _, dup := envs[e.Name]; dup {
				p.add(cid, "env %s set twice", e.Name)
			}
			if e.ValueFrom != nil && e.Value != "" {
				p.add(cid, "env %s has both value and valueFrom", e.Name)
			}
			envs[e.Name] = e.Value
		}
		for _, m := range c.VolumeMounts {
			if !vols[m.Name] {
				p.add(cid, "mounts volume %q, which the pod does not have", m.Name)
			}
		}
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
			if s := c.Lifecycle.PreStop.Sleep; s != nil {
				grace := int64(30)
				if spec.TerminationGracePeriodSeconds != nil {
					grace = *spec.TerminationGracePeriodSeconds
				}
				need := s.Seconds + durationSeconds(envs["GATEWAY_SHUTDOWN_TIMEOUT"])
				if grace < need {
					p.add(id, "terminationGracePeriodSeconds %d < preStop %ds + shutdown timeout %s", grace, s.Seconds, envs["GATEWAY_SHUTDOWN_TIMEOUT"])
				}
			}
		}
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			p.add(cid, "must run with a read-only root filesystem and no privilege escalation")
		}
		if (sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot) &&
			(spec.SecurityContext == nil || spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot) {
			p.add(cid, "must run as non-root")
		}
	}
}

// durationSeconds reads "<n>s" as the chart writes the shutdown timeout.
func durationSeconds(s string) int64 {
	var n int64
	fmt.Sscanf(strings.TrimSuffix(s, "s"), "%d", &n)
	return n
}

func checkService(p *problems, id string, s *corev1.Service, workloads []workload) {
	if len(s.Spec.Ports) == 0 {
		p.add(id, "no ports")
	}
	sel := labels.SelectorFromSet(s.Spec.Selector)
	var pods []workload
	for _, w := range workloads {
		if len(s.Spec.Selector) > 0 && sel.Matches(labels.Set(w.pod.Labels)) {
			pods = append(pods, w)
		}
	}
	if len(pods) != 1 {
		p.add(id, "selector %v matches %d rendered workloads, want 1", s.Spec.Selector, len(pods))
		return
	}
	for _, sp := range s.Spec.Ports {
		if sp.TargetPort.Type != intstr.String {
			continue
		}
		found := false
		for _, c := range pods[0].pod.Spec.Containers {
			for _, cp := range c.Ports {
				found = found || cp.Name == sp.TargetPort.StrVal
			}
		}
		if !found {
			p.add(id, "targetPort %q is not a port of %s", sp.TargetPort.StrVal, pods[0].name)
		}
	}
}

func checkServicePort(p *problems, id string, s *corev1.Service, name, port string, number int32) {
	if s == nil {
		p.add(id, "backend Service %q is not rendered", name)
		return
	}
	if !slices.ContainsFunc(s.Spec.Ports, func(sp corev1.ServicePort) bool {
		return (port != "" && sp.Name == port) || (number != 0 && sp.Port == number)
	}) {
		p.add(id, "backend Service %s has no port %q/%d", name, port, number)
	}
}

func anyPod(sel labels.Selector, ws []workload) bool {
	return slices.ContainsFunc(ws, func(w workload) bool { return sel.Matches(labels.Set(w.pod.Labels)) })
}

// checkValuesDoc: every leaf path of the values file (a.b.c) appears in
// the README, in backquotes.
func checkValuesDoc(valuesFile, readme string) error {
	vb, err := os.ReadFile(valuesFile)
	if err != nil {
		return err
	}
	rb, err := os.ReadFile(readme)
	if err != nil {
		return err
	}
	var values map[string]any
	if err := yaml.Unmarshal(vb, &values); err != nil {
		return err
	}
	var missing []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if m, ok := v.(map[string]any); ok && len(m) > 0 {
			for k, c := range m {
				walk(strings.TrimPrefix(prefix+"."+k, "."), c)
			}
			return
		}
		if !bytes.Contains(rb, []byte("`"+prefix+"`")) {
			missing = append(missing, prefix)
		}
	}
	walk("", values)
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("values not documented in %s: %s", readme, strings.Join(missing, ", "))
	}
	return nil
}
