package deploy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/app/apptest"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/fixture/shop"
	"github.com/tandemcdc/tandem/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite kubernetes/prometheusrule.yaml and kubernetes/grafana-dashboard.yaml from prometheus/ and grafana/")

const kubeDir = "kubernetes"

// object is one object of the kustomize base, decoded strictly.
type object struct {
	file string
	obj  runtime.Object
}

func (o object) String() string {
	m, _ := o.obj.(metav1.Object)
	return fmt.Sprintf("%s %s/%s", o.file, o.obj.GetObjectKind().GroupVersionKind().Kind, m.GetName())
}

// strictDecoder decodes YAML into the Kubernetes API types (core, apps, and
// the Prometheus Operator's monitoring.coreos.com/v1), failing on unknown
// and duplicate fields and on field names in the wrong case, as the API
// server's strict field validation does.
func strictDecoder(t *testing.T) runtime.Decoder {
	t.Helper()
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, monitoringv1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer()
}

// decodeAll decodes every YAML document of data.
func decodeAll(d runtime.Decoder, file string, data []byte) ([]object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []object
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, _, err := d.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		out = append(out, object{file: file, obj: obj})
	}
}

var commentLine = regexp.MustCompile(`(?m)^\s*#.*$`)

func stripComments(doc []byte) []byte { return commentLine.ReplaceAll(doc, nil) }

// render returns the objects `kubectl apply -k kubernetes` applies. The base
// has no generators, patches or transformers (the test refuses them), so
// they are the resources' objects as written.
func render(t *testing.T) []object {
	t.Helper()
	var k struct {
		APIVersion string   `yaml:"apiVersion"`
		Kind       string   `yaml:"kind"`
		Resources  []string `yaml:"resources"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, filepath.Join(kubeDir, "kustomization.yaml"))))
	dec.KnownFields(true)
	if err := dec.Decode(&k); err != nil {
		t.Fatalf("kustomization.yaml: %v (only apiVersion, kind and resources: teach render() before adding a transformer)", err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Fatalf("kustomization.yaml: %s %s, want kustomize.config.k8s.io/v1beta1 Kustomization", k.APIVersion, k.Kind)
	}
	files, err := filepath.Glob(filepath.Join(kubeDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" && !slices.Contains(k.Resources, base) {
			t.Errorf("%s is not in kustomization.yaml's resources: kubectl apply -k would leave it out", f)
		}
	}
	d := strictDecoder(t)
	var out []object
	seen := map[string]bool{}
	for _, res := range k.Resources {
		objs, err := decodeAll(d, res, readFile(t, filepath.Join(kubeDir, res)))
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) == 0 {
			t.Errorf("%s holds no object", res)
		}
		for _, o := range objs {
			m := o.obj.(metav1.Object)
			id := o.obj.GetObjectKind().GroupVersionKind().Kind + "/" + m.GetName()
			if seen[id] {
				t.Errorf("%s: %s defined twice", res, id)
			}
			seen[id] = true
			if m.GetNamespace() != "" {
				t.Errorf("%s: a namespace in the base; overlays set it", o)
			}
			out = append(out, o)
		}
	}
	return out
}

// find returns the objects of type T.
func find[T runtime.Object](objs []object) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.obj.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func TestKubernetes_EveryObjectDecodesStrictly(t *testing.T) {
	objs := render(t)
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.obj.GetObjectKind().GroupVersionKind().Kind]++
	}
	want := map[string]int{"ServiceAccount": 1, "ConfigMap": 2, "Secret": 2, "Service": 1, "StatefulSet": 1, "Deployment": 2, "PodMonitor": 1, "PrometheusRule": 1}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("%d %s objects, want %d", kinds[k], k, n)
		}
	}
	t.Logf("%d objects: %v", len(objs), kinds)
}

// The decoder must really be strict: a misspelt field, a field in the wrong
// case or a duplicate key fails, as `kubectl apply` with the API server's
// strict field validation would.
func TestKubernetes_DecoderRejectsUnknownCaseAndDuplicateFields(t *testing.T) {
	d := strictDecoder(t)
	good := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: 1\n"
	if _, err := decodeAll(d, "good", []byte(good)); err != nil {
		t.Fatalf("a valid Deployment: %v", err)
	}
	for name, bad := range map[string]string{
		"unknown":   good + "  replica: 2\n",
		"case":      strings.Replace(good, "replicas", "Replicas", 1),
		"duplicate": good + "  replicas: 2\n",
		"kind":      strings.Replace(good, "Deployment", "Deploymnet", 1),
		"rule":      "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: x}\nspec:\n  groups: [{name: g, rules: [{alert: A, expr: up, fro: 1m}]}]\n",
	} {
		if _, err := decodeAll(d, name, []byte(bad)); err == nil {
			t.Errorf("%s: decoded without error:\n%s", name, bad)
		}
	}
}

// workload is a pod template and what owns it.
type workload struct {
	name     string
	template corev1.PodTemplateSpec
}

func workloads(objs []object) []workload {
	var out []workload
	for _, s := range find[*appsv1.StatefulSet](objs) {
		out = append(out, workload{"StatefulSet/" + s.Name, s.Spec.Template})
	}
	for _, d := range find[*appsv1.Deployment](objs) {
		out = append(out, workload{"Deployment/" + d.Name, d.Spec.Template})
	}
	return out
}

// tandemConfig returns the ConfigMap holding tandem.yaml and its text.
func tandemConfig(t *testing.T, objs []object) (*corev1.ConfigMap, string) {
	t.Helper()
	for _, cm := range find[*corev1.ConfigMap](objs) {
		if text, ok := cm.Data["tandem.yaml"]; ok {
			return cm, text
		}
	}
	t.Fatal("no ConfigMap holds tandem.yaml")
	return nil, ""
}

// secretValues returns every key of every Secret of the base, as name/key.
func secretValues(objs []object) map[string]string {
	out := map[string]string{}
	for _, s := range find[*corev1.Secret](objs) {
		for k, v := range s.StringData {
			out[s.Name+"/"+k] = v
		}
		for k, v := range s.Data {
			out[s.Name+"/"+k] = string(v)
		}
	}
	return out
}

var envRef = regexp.MustCompile(`\$\{(\w+)\}`)

// The ConfigMap's tandem.yaml is one tandem's own parser accepts, with each
// ${VAR} set as every container sets it (from the Secrets' placeholders).
func TestKubernetes_ConfigMapParsesWithTandemsConfig(t *testing.T) {
	objs := render(t)
	_, text := tandemConfig(t, objs)
	secrets := secretValues(objs)
	for _, w := range workloads(objs) {
		if len(w.template.Spec.Containers) == 0 {
			t.Fatalf("%s has no container", w.name)
		}
		c := w.template.Spec.Containers[0]
		env := map[string]string{}
		for _, e := range c.Env {
			switch {
			case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
				ref := e.ValueFrom.SecretKeyRef
				v, ok := secrets[ref.Name+"/"+ref.Key]
				if !ok {
					t.Errorf("%s: env %s reads secret %s key %s, which the base does not define", w.name, e.Name, ref.Name, ref.Key)
				}
				env[e.Name] = v
			case e.ValueFrom == nil:
				env[e.Name] = e.Value
			}
		}
		cfg, err := config.Parse("tandem.yaml", []byte(text), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		if err != nil {
			t.Errorf("%s: tandem.yaml of the ConfigMap with this container's environment: %v", w.name, err)
			continue
		}
		if len(cfg.Kafka.Brokers) == 0 {
			t.Errorf("%s: kafka.brokers is empty: the embedded broker cannot join separate capture and apply pods", w.name)
		}
	}
}

// goMemLimit parses a GOMEMLIMIT value (bytes, or a number with B, KiB,
// MiB, GiB or TiB, as the Go runtime reads it).
func goMemLimit(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}, {"", 1}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("GOMEMLIMIT %q: %w", s, err)
			}
			return v * u.mult, nil
		}
	}
	return 0, fmt.Errorf("GOMEMLIMIT %q: no unit", s)
}

// roleOf is the verb each workload's tandem runs, by component label.
var roleOf = map[string]string{"capture": "capture", "apply": "apply", "reconcile": "reconcile"}

// Every pod runs tandem the way tandem runs: the image's non-root user, the
// config where -c says, the port http.listen says, probes on the paths the
// binary serves, secrets only from Secrets, hardened, with GOMEMLIMIT under
// the memory limit.
func TestKubernetes_PodsAgreeWithTandem(t *testing.T) {
	objs := render(t)
	cm, text := tandemConfig(t, objs)
	cfg, err := config.Parse("tandem.yaml", []byte(text), func(name string) (string, bool) {
		if strings.HasSuffix(name, "_DSN") {
			return "postgres://set@db.example/set", true // a DSN from the Secret
		}
		return "set", true
	})
	if err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(cfg.HTTP.Listen)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		t.Errorf("http.listen %q: probes and Prometheus reach the pod from outside it; listen on :%s", cfg.HTTP.Listen, port)
	}
	listenPort, _ := strconv.Atoi(port)
	uid := imageUser(t)
	accounts := map[string]bool{}
	for _, sa := range find[*corev1.ServiceAccount](objs) {
		accounts[sa.Name] = true
	}
	ws := workloads(objs)
	if len(ws) != 3 {
		t.Fatalf("%d workloads, want capture, apply and reconcile", len(ws))
	}
	probePaths := map[string]bool{}
	for _, w := range ws {
		spec := w.template.Spec
		errorf := func(format string, args ...any) {
			t.Helper()
			t.Errorf(w.name+": "+format, args...)
		}
		if len(spec.Containers) != 1 {
			errorf("%d containers, want 1", len(spec.Containers))
			continue
		}
		c := spec.Containers[0]
		if c.Image != "tandem" {
			errorf("image %q, want tandem (the name `make image` gives; overlays set the registry with `images:`)", c.Image)
		}
		component := w.template.Labels["app.kubernetes.io/component"]
		if len(c.Args) == 0 || c.Args[0] != roleOf[component] {
			errorf("args %v, want the verb %q of its component label", c.Args, roleOf[component])
		}
		// -c names the ConfigMap's tandem.yaml where it is mounted.
		cfgPath := ""
		if i := slices.Index(c.Args, "-c"); i >= 0 && i+1 < len(c.Args) {
			cfgPath = c.Args[i+1]
		}
		mountedAt := map[string]corev1.Volume{}
		for _, vm := range c.VolumeMounts {
			i := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name })
			if i < 0 {
				errorf("mount %s has no volume", vm.Name)
				continue
			}
			if !vm.ReadOnly {
				errorf("mount %s is writable", vm.Name)
			}
			mountedAt[vm.MountPath] = spec.Volumes[i]
		}
		if v, ok := mountedAt[filepath.Dir(cfgPath)]; !ok || v.ConfigMap == nil || v.ConfigMap.Name != cm.Name || filepath.Base(cfgPath) != "tandem.yaml" {
			errorf("-c %q is not tandem.yaml of ConfigMap %s as mounted", cfgPath, cm.Name)
		}
		for _, v := range spec.Volumes {
			if v.Secret != nil && !slices.ContainsFunc(find[*corev1.Secret](objs), func(s *corev1.Secret) bool { return s.Name == v.Secret.SecretName }) {
				errorf("volume %s: Secret %s is not in the base", v.Name, v.Secret.SecretName)
			}
		}
		// The port http.listen says, named as the probes and the PodMonitor name it.
		if len(c.Ports) != 1 || c.Ports[0].Name != "metrics" || int(c.Ports[0].ContainerPort) != listenPort {
			errorf("ports %+v, want one named metrics on %d (http.listen)", c.Ports, listenPort)
		}
		for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
			want := map[string]string{"liveness": "/healthz", "readiness": "/readyz"}[name]
			if p == nil || p.HTTPGet == nil {
				errorf("no HTTP %s probe", name)
				continue
			}
			if p.HTTPGet.Path != want || p.HTTPGet.Port.String() != "metrics" && p.HTTPGet.Port.IntValue() != listenPort {
				errorf("%s probe %s on port %s, want %s on metrics", name, p.HTTPGet.Path, p.HTTPGet.Port.String(), want)
			}
			probePaths[p.HTTPGet.Path] = true
		}
		// Secrets only through Secrets.
		for _, e := range c.Env {
			if e.ValueFrom == nil && (strings.Contains(e.Name, "DSN") || strings.Contains(e.Name, "PASSWORD") || strings.Contains(e.Value, "://")) {
				errorf("env %s holds a literal value; read it from a Secret", e.Name)
			}
		}
		for _, m := range envRef.FindAllStringSubmatch(text, -1) {
			if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == m[1] }) {
				errorf("tandem.yaml reads ${%s}, which the container does not set", m[1])
			}
		}
		// Hardened: the image's non-root uid, read-only root, no capabilities.
		psc, sc := spec.SecurityContext, c.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != uid {
			errorf("pod securityContext %+v, want runAsNonRoot and runAsUser %d (the Dockerfile's USER)", psc, uid)
		}
		if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			errorf("no RuntimeDefault seccomp profile")
		}
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
			errorf("container securityContext %+v, want readOnlyRootFilesystem, no privilege escalation, capabilities drop [ALL]", sc)
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken || !accounts[spec.ServiceAccountName] {
			errorf("service account %q (token mounted: %v): want one of the base, without a token", spec.ServiceAccountName, spec.AutomountServiceAccountToken)
		}
		// GOMEMLIMIT leaves the GC room under the limit: at most 90%.
		limit, ok := c.Resources.Limits[corev1.ResourceMemory]
		if !ok {
			errorf("no memory limit")
		}
		i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" })
		if i < 0 {
			errorf("no GOMEMLIMIT: the Go heap would grow to the memory limit and be killed there")
		} else if n, err := goMemLimit(c.Env[i].Value); err != nil || n > limit.Value()*9/10 {
			errorf("GOMEMLIMIT %q (%v): want at most 90%% of the memory limit %s", c.Env[i].Value, err, limit.String())
		}
		if spec.TerminationGracePeriodSeconds == nil || *spec.TerminationGracePeriodSeconds <= 30 {
			errorf("terminationGracePeriodSeconds %v: want more than shutdown_timeout's default 30s", spec.TerminationGracePeriodSeconds)
		}
	}

	// The paths the probes use answer 200 on tandem's own HTTP server once
	// it is ready, and /metrics serves tandem's metrics.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m, err := shop.Open(ctx, testenv.NewDatabase(t), testenv.NewDatabase(t), true)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	run := apptest.Start(t, apptest.ParseConfig(t, shop.Config(shop.ConfigOptions{SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN, Slot: "deploy_probes"})),
		app.Roles{Capture: true, Apply: true}, slog.LevelWarn)
	client := &http.Client{Timeout: 5 * time.Second}
	probePaths["/metrics"] = true
	for path := range probePaths {
		resp, err := client.Get("http://" + run.Addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s on a ready tandem: %d %s", path, resp.StatusCode, body)
		}
		if path == "/metrics" && !bytes.Contains(body, []byte("tandem_capture_lag_seconds")) {
			t.Errorf("/metrics serves no tandem metric")
		}
	}
}

// The StatefulSet is capture's, of 2 started in parallel (one active, one
// standby, which is ready: the source fences the second, so a rolling
// update can replace them one at a time), behind its headless Service;
// apply and reconcile are Deployments, reconcile never two at once.
func TestKubernetes_RolesHaveTheirControllers(t *testing.T) {
	objs := render(t)
	for _, s := range find[*appsv1.StatefulSet](objs) {
		if s.Spec.Template.Labels["app.kubernetes.io/component"] != "capture" {
			t.Errorf("StatefulSet %s is not capture's", s.Name)
		}
		if s.Spec.Replicas == nil || *s.Spec.Replicas != 2 || s.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
			t.Errorf("capture: replicas %v, pod management %q; want 2 in parallel: an active capture and its standby", s.Spec.Replicas, s.Spec.PodManagementPolicy)
		}
		svc := find[*corev1.Service](objs)
		if !slices.ContainsFunc(svc, func(v *corev1.Service) bool {
			return v.Name == s.Spec.ServiceName && v.Spec.ClusterIP == corev1.ClusterIPNone && selects(v.Spec.Selector, s.Spec.Template.Labels)
		}) {
			t.Errorf("capture: serviceName %q is not a headless Service of the base selecting its pods", s.Spec.ServiceName)
		}
		if sel, err := metav1.LabelSelectorAsMap(s.Spec.Selector); err != nil || !selects(sel, s.Spec.Template.Labels) {
			t.Errorf("capture: selector %v does not select its own pods", s.Spec.Selector)
		}
	}
	roles := map[string]*appsv1.Deployment{}
	for _, d := range find[*appsv1.Deployment](objs) {
		roles[d.Spec.Template.Labels["app.kubernetes.io/component"]] = d
		if sel, err := metav1.LabelSelectorAsMap(d.Spec.Selector); err != nil || !selects(sel, d.Spec.Template.Labels) {
			t.Errorf("%s: selector %v does not select its own pods", d.Name, d.Spec.Selector)
		}
	}
	if roles["apply"] == nil || roles["reconcile"] == nil {
		t.Fatalf("Deployments by component: %v, want apply and reconcile", roles)
	}
	if r := roles["reconcile"]; r.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || r.Spec.Replicas == nil || *r.Spec.Replicas != 1 {
		t.Errorf("reconcile: %s strategy, replicas %v; want Recreate, 1", r.Spec.Strategy.Type, r.Spec.Replicas)
	}
	if a := roles["apply"]; a.Spec.Strategy.RollingUpdate == nil || a.Spec.Strategy.RollingUpdate.MaxUnavailable == nil || a.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("apply: strategy %+v; want a rolling update that keeps every replica until its successor is ready", a.Spec.Strategy)
	}
}

// selects reports whether every label of sel is in labels.
func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// The PodMonitor scrapes every tandem pod on its metrics port, under the
// job the alert rules look for.
func TestKubernetes_PodMonitorScrapesEveryPodAsTheRulesJob(t *testing.T) {
	objs := render(t)
	pms := find[*monitoringv1.PodMonitor](objs)
	if len(pms) != 1 {
		t.Fatalf("%d PodMonitors, want 1", len(pms))
	}
	pm := pms[0]
	m := regexp.MustCompile(`up\{job="([^"]+)"\}`).FindStringSubmatch(string(readFile(t, "prometheus/tandem-alerts.yml")))
	if m == nil {
		t.Fatal(`the rules have no up{job="..."}`)
	}
	job := m[1]
	sel, err := metav1.LabelSelectorAsMap(&pm.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if len(pm.Spec.PodMetricsEndpoints) != 1 {
		t.Fatalf("%d endpoints, want 1", len(pm.Spec.PodMetricsEndpoints))
	}
	ep := pm.Spec.PodMetricsEndpoints[0]
	if ep.Path != "/metrics" || ep.Port == nil || *ep.Port != "metrics" {
		t.Errorf("endpoint %+v, want port metrics, path /metrics", ep)
	}
	for _, w := range workloads(objs) {
		l := w.template.Labels
		if !selects(sel, l) {
			t.Errorf("%s: pods %v not selected by the PodMonitor (%v)", w.name, l, sel)
		}
		if l[pm.Spec.JobLabel] != job {
			t.Errorf("%s: label %s=%q makes the job; the rules' TandemDown wants job %q", w.name, pm.Spec.JobLabel, l[pm.Spec.JobLabel], job)
		}
		for _, tl := range pm.Spec.PodTargetLabels {
			if l[tl] == "" {
				t.Errorf("%s: no label %s for podTargetLabels", w.name, tl)
			}
		}
	}
}

const generatedHeader = "# Generated from deploy/%s by\n#   go test ./deploy -run TestKubernetes_GeneratedFilesAreCurrent -update\n# Edit that file, not this one.\n"

// indent indents every non-empty line of text by n spaces.
func indent(text []byte, n int) []byte {
	pad := strings.Repeat(" ", n)
	var b bytes.Buffer
	for line := range strings.Lines(string(text)) {
		if strings.TrimSpace(line) != "" {
			b.WriteString(pad)
		}
		b.WriteString(line)
	}
	return b.Bytes()
}

// generated returns the two files made from deploy/prometheus and
// deploy/grafana: the alert rules as a PrometheusRule (its spec is the rule
// file, comments and all) and the dashboard as a ConfigMap that Grafana's
// dashboard sidecar loads (label grafana_dashboard).
func generated(t *testing.T) map[string][]byte {
	t.Helper()
	rules := readFile(t, "prometheus/tandem-alerts.yml")
	dashboard := readFile(t, "grafana/tandem.json")
	return map[string][]byte{
		"prometheusrule.yaml": slices.Concat([]byte(fmt.Sprintf(generatedHeader, "prometheus/tandem-alerts.yml")),
			[]byte("apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  name: tandem\n  labels:\n    app.kubernetes.io/name: tandem\nspec:\n"),
			indent(rules, 2)),
		"grafana-dashboard.yaml": slices.Concat([]byte(fmt.Sprintf(generatedHeader, "grafana/tandem.json")),
			[]byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tandem-dashboard\n  labels:\n    app.kubernetes.io/name: tandem\n    grafana_dashboard: \"1\"\ndata:\n  tandem.json: |\n"),
			indent(dashboard, 4)),
	}
}

func TestKubernetes_GeneratedFilesAreCurrent(t *testing.T) {
	for name, want := range generated(t) {
		path := filepath.Join(kubeDir, name)
		if *update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is not what deploy/prometheus or deploy/grafana make of it: go test ./deploy -run %s -update", path, t.Name())
		}
	}
}

// Decoded, the PrometheusRule holds the very rules promtool tests, with the
// same metric names; the dashboard ConfigMap holds tandem.json byte for byte.
func TestKubernetes_PrometheusRuleAndDashboardAreDeploysOwn(t *testing.T) {
	objs := render(t)
	var file struct {
		Groups []monitoringv1.RuleGroup `json:"groups"`
	}
	d := strictDecoder(t)
	// The rule file, decoded as the spec of a PrometheusRule: every key of
	// every rule must be one the Prometheus Operator knows.
	spec, err := decodeAll(d, "tandem-alerts.yml", slices.Concat(
		[]byte("apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: x}\nspec:\n"),
		indent(readFile(t, "prometheus/tandem-alerts.yml"), 2)))
	if err != nil {
		t.Fatal(err)
	}
	file.Groups = spec[0].obj.(*monitoringv1.PrometheusRule).Spec.Groups
	prs := find[*monitoringv1.PrometheusRule](objs)
	if len(prs) != 1 {
		t.Fatalf("%d PrometheusRules, want 1", len(prs))
	}
	var fileAlerts, ruleAlerts, fileMetrics, ruleMetrics []string
	collect := func(groups []monitoringv1.RuleGroup, alerts, metrics *[]string) {
		for _, g := range groups {
			for _, r := range g.Rules {
				*alerts = append(*alerts, r.Alert+"\x00"+r.Expr.String())
				*metrics = append(*metrics, metricName.FindAllString(r.Expr.String(), -1)...)
			}
		}
		slices.Sort(*alerts)
		slices.Sort(*metrics)
		*metrics = slices.Compact(*metrics)
	}
	collect(file.Groups, &fileAlerts, &fileMetrics)
	collect(prs[0].Spec.Groups, &ruleAlerts, &ruleMetrics)
	if len(fileAlerts) == 0 || !slices.Equal(fileAlerts, ruleAlerts) {
		t.Errorf("PrometheusRule's alerts differ from prometheus/tandem-alerts.yml's (%d vs %d)", len(ruleAlerts), len(fileAlerts))
	}
	if !slices.Equal(fileMetrics, ruleMetrics) {
		t.Errorf("PrometheusRule reads %v, the rule file %v", ruleMetrics, fileMetrics)
	}
	for _, name := range ruleMetrics {
		if _, ok := knownMetrics[family(name)]; !ok {
			t.Errorf("PrometheusRule reads %s, which tandem does not export", name)
		}
	}
	dash := readFile(t, "grafana/tandem.json")
	found := false
	for _, cm := range find[*corev1.ConfigMap](objs) {
		if v, ok := cm.Data["tandem.json"]; ok {
			found = true
			if v != string(dash) {
				t.Errorf("ConfigMap %s: tandem.json differs from grafana/tandem.json", cm.Name)
			}
			if cm.Labels["grafana_dashboard"] != "1" {
				t.Errorf("ConfigMap %s: no grafana_dashboard: \"1\" label, which Grafana's dashboard sidecar looks for", cm.Name)
			}
		}
	}
	if !found {
		t.Error("no ConfigMap holds tandem.json")
	}
}

// No Secret of the base holds anything but a placeholder, and nothing
// outside the Secrets holds a password.
func TestKubernetes_SecretsHoldOnlyPlaceholders(t *testing.T) {
	objs := render(t)
	for key, v := range secretValues(objs) {
		if strings.HasSuffix(key, "/username") {
			continue
		}
		if !strings.Contains(v, "REPLACE_WITH_") {
			t.Errorf("secret %s: %q is not a REPLACE_WITH_ placeholder", key, v)
		}
	}
	files, _ := filepath.Glob(filepath.Join(kubeDir, "*.yaml"))
	for _, f := range files {
		if filepath.Base(f) == "secrets.yaml" {
			continue
		}
		if regexp.MustCompile(`://[^/\s:@]+:[^@\s]+@`).Match(readFile(t, f)) {
			t.Errorf("%s: a URL with a password outside secrets.yaml", f)
		}
	}
}
