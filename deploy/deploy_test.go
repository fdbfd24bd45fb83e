package deploy_test

// The deployment files cannot be tried here (no Docker, no cluster), so this
// test reads them offline: every YAML document parses, every Kubernetes
// object has a known apiVersion and kind and the essentials an operator
// relies on, and every SSO_* name they set is a documented setting.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/govsso/sso/config"
)

// knownKinds maps each kind the manifests may use to its apiVersion.
var knownKinds = map[string]string{
	"Deployment":              "apps/v1",
	"Service":                 "v1",
	"Ingress":                 "networking.k8s.io/v1",
	"HorizontalPodAutoscaler": "autoscaling/v2",
	"PodDisruptionBudget":     "policy/v1",
	"Secret":                  "v1",
	"ConfigMap":               "v1",
	"Job":                     "batch/v1",
}

type object = map[string]any

// doc is one YAML document and the file it came from.
type doc struct {
	file string
	obj  object
}

// readYAML decodes every document of every .yaml/.yml file under dir.
func readYAML(t *testing.T, dir string) []doc {
	t.Helper()
	var docs []doc
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || (filepath.Ext(path) != ".yaml" && filepath.Ext(path) != ".yml") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var o object
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if o != nil {
				docs = append(docs, doc{path, o})
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// get walks obj along keys (map keys, or list indexes as ints).
func get(obj any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, ok := obj.(object)
			if !ok {
				return nil
			}
			obj = m[k]
		case int:
			l, ok := obj.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			obj = l[k]
		}
	}
	return obj
}

func str(obj any, keys ...any) string {
	s, _ := get(obj, keys...).(string)
	return s
}

func knownSettings() map[string]bool {
	known := map[string]bool{}
	for _, o := range config.Options {
		known[o.Env()] = true
	}
	return known
}

func kubernetesObjects(t *testing.T) map[string][]object {
	t.Helper()
	byKind := map[string][]object{}
	for _, d := range readYAML(t, "kubernetes") {
		kind, api := str(d.obj, "kind"), str(d.obj, "apiVersion")
		want, ok := knownKinds[kind]
		if !ok {
			t.Errorf("%s: unknown kind %q", d.file, kind)
			continue
		}
		if api != want {
			t.Errorf("%s: %s has apiVersion %q, want %q", d.file, kind, api, want)
		}
		if str(d.obj, "metadata", "name") == "" {
			t.Errorf("%s: %s has no metadata.name", d.file, kind)
		}
		byKind[kind] = append(byKind[kind], d.obj)
	}
	for kind := range knownKinds {
		if len(byKind[kind]) == 0 {
			t.Errorf("no %s manifest in deploy/kubernetes", kind)
		}
	}
	return byKind
}

func TestEveryYAMLDocumentParses(t *testing.T) {
	if docs := readYAML(t, "."); len(docs) < len(knownKinds)+1 {
		t.Fatalf("found only %d YAML documents", len(docs))
	}
}

func TestKubernetesManifests(t *testing.T) {
	byKind := kubernetesObjects(t)
	if t.Failed() {
		t.FailNow()
	}
	dep := byKind["Deployment"][0]
	name := str(dep, "metadata", "name")
	if n, _ := get(dep, "spec", "replicas").(int); n < 2 {
		t.Errorf("Deployment has %d replicas, want at least 2", n)
	}
	if len(get(dep, "spec", "template", "spec", "topologySpreadConstraints").([]any)) == 0 {
		t.Error("Deployment has no topologySpreadConstraints")
	}
	labels, _ := get(dep, "spec", "template", "metadata", "labels").(object)
	if !matches(get(dep, "spec", "selector", "matchLabels"), labels) {
		t.Error("Deployment selector does not match its pod labels")
	}
	c := get(dep, "spec", "template", "spec", "containers", 0)
	for probe, path := range map[string]string{"readinessProbe": "/healthz/ready", "livenessProbe": "/healthz/live"} {
		if got := str(c, probe, "httpGet", "path"); got != path {
			t.Errorf("%s path %q, want %q", probe, got, path)
		}
	}
	checkPodSecurity(t, "Deployment", get(dep, "spec", "template", "spec"))

	t.Run("selectors and targets point at the Deployment", func(t *testing.T) {
		if !matches(get(byKind["Service"][0], "spec", "selector"), labels) {
			t.Error("Service selector does not match the pods")
		}
		if !matches(get(byKind["PodDisruptionBudget"][0], "spec", "selector", "matchLabels"), labels) {
			t.Error("PodDisruptionBudget selector does not match the pods")
		}
		hpa := byKind["HorizontalPodAutoscaler"][0]
		if str(hpa, "spec", "scaleTargetRef", "kind") != "Deployment" || str(hpa, "spec", "scaleTargetRef", "name") != name {
			t.Error("HorizontalPodAutoscaler does not scale the Deployment")
		}
		if n, _ := get(hpa, "spec", "minReplicas").(int); n < 2 {
			t.Errorf("HorizontalPodAutoscaler minReplicas %d, want at least 2", n)
		}
		svc := str(byKind["Service"][0], "metadata", "name")
		if got := str(byKind["Ingress"][0], "spec", "rules", 0, "http", "paths", 0, "backend", "service", "name"); got != svc {
			t.Errorf("Ingress backend %q, want the Service %q", got, svc)
		}
	})

	t.Run("migration job", func(t *testing.T) {
		job := byKind["Job"][0]
		spec := get(job, "spec", "template", "spec")
		if got := fmt.Sprint(get(spec, "containers", 0, "args")); got != "[migrate up]" {
			t.Errorf("Job args %s, want [migrate up]", got)
		}
		if matches(get(dep, "spec", "selector", "matchLabels"), get(job, "spec", "template", "metadata", "labels").(object)) {
			t.Error("the Deployment's selector also selects the migration Job's pod")
		}
		checkPodSecurity(t, "Job", spec)
	})

	t.Run("secret example holds placeholders only", func(t *testing.T) {
		for _, s := range byKind["Secret"] {
			if get(s, "data") != nil {
				t.Error("Secret example has base64 data; use stringData placeholders")
			}
			for k, v := range get(s, "stringData").(object) {
				if !strings.Contains(fmt.Sprint(v), "REPLACE") {
					t.Errorf("Secret example %s is not a REPLACE… placeholder", k)
				}
			}
		}
	})
}

// checkPodSecurity asserts the pod runs as non-root with a hardened
// container and resource requests and limits.
func checkPodSecurity(t *testing.T, what string, pod any) {
	t.Helper()
	if get(pod, "securityContext", "runAsNonRoot") != true {
		t.Errorf("%s pod: runAsNonRoot not set", what)
	}
	for i, c := range get(pod, "containers").([]any) {
		sc := get(c, "securityContext")
		want := map[string]any{"runAsNonRoot": true, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false}
		for k, v := range want {
			if get(sc, k) != v {
				t.Errorf("%s container %d: securityContext.%s is %v, want %v", what, i, k, get(sc, k), v)
			}
		}
		if fmt.Sprint(get(sc, "capabilities", "drop")) != "[ALL]" {
			t.Errorf("%s container %d: capabilities.drop is not [ALL]", what, i)
		}
		for _, k := range []string{"requests", "limits"} {
			if str(c, "resources", k, "memory") == "" || str(c, "resources", k, "cpu") == "" {
				t.Errorf("%s container %d: resources.%s needs cpu and memory", what, i, k)
			}
		}
	}
}

// matches reports whether every selector label is among labels.
func matches(selector any, labels object) bool {
	sel, ok := selector.(object)
	if !ok || len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestComposeFile(t *testing.T) {
	docs := readYAML(t, "compose.yaml")
	if len(docs) != 1 {
		t.Fatalf("compose.yaml: %d documents", len(docs))
	}
	services, _ := get(docs[0].obj, "services").(object)
	if !strings.HasPrefix(str(services, "postgres", "image"), "postgres:16") {
		t.Errorf("postgres image %q, want postgres:16", str(services, "postgres", "image"))
	}
	if got := fmt.Sprint(get(services, "sso-migrate", "command")); got != "[migrate up]" {
		t.Errorf("sso-migrate command %s, want [migrate up]", got)
	}
	for _, node := range []string{"sso-1", "sso-2"} {
		if str(services, node, "depends_on", "sso-migrate", "condition") != "service_completed_successfully" {
			t.Errorf("%s does not wait for sso-migrate", node)
		}
		if str(services, node, "environment", "SSO_DATABASE_URL") == "" || !strings.HasPrefix(str(services, node, "environment", "SSO_DATABASE_URL"), "postgres://") {
			t.Errorf("%s is not on PostgreSQL", node)
		}
	}
	caddy, err := os.ReadFile("Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(get(services, "proxy", "volumes").([]any), any("./Caddyfile:/etc/caddy/Caddyfile:ro")) {
		t.Error("the proxy does not mount deploy/Caddyfile")
	}
	for _, node := range []string{"sso-1:8080", "sso-2:8080", "/healthz/ready"} {
		if !bytes.Contains(caddy, []byte(node)) {
			t.Errorf("Caddyfile does not mention %s", node)
		}
	}
}

// settingNames collects every environment variable name the deployment
// files set, with where each was found.
func settingNames(t *testing.T) map[string]string {
	t.Helper()
	names := map[string]string{}
	for _, d := range readYAML(t, ".") {
		switch str(d.obj, "kind") {
		case "ConfigMap":
			addKeys(names, get(d.obj, "data"), d.file)
		case "Secret":
			addKeys(names, get(d.obj, "stringData"), d.file)
		}
		walkEnv(d.obj, func(name string) { names[name] = d.file })
		for svc, s := range object(orEmpty(get(d.obj, "services"))) {
			if strings.HasPrefix(svc, "sso") {
				addKeys(names, get(s, "environment"), d.file)
			}
		}
	}
	for _, line := range lines(t, "Dockerfile") {
		if rest, ok := strings.CutPrefix(line, "ENV "); ok {
			for _, kv := range strings.Fields(rest) {
				k, _, _ := strings.Cut(kv, "=")
				names[k] = "Dockerfile"
			}
		}
	}
	for _, f := range []string{"systemd/sso.env", "systemd/sso.service"} {
		for _, line := range lines(t, f) {
			line = strings.TrimPrefix(strings.TrimPrefix(line, "#"), "Environment=")
			if k, _, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "SSO_") {
				names[k] = f
			}
		}
	}
	return names
}

func orEmpty(v any) object {
	if m, ok := v.(object); ok {
		return m
	}
	return object{}
}

func addKeys(names map[string]string, m any, file string) {
	for k := range orEmpty(m) {
		names[k] = file
	}
}

// walkEnv calls fn with the name of every container env entry under obj.
func walkEnv(obj any, fn func(string)) {
	switch v := obj.(type) {
	case object:
		if env, ok := v["env"].([]any); ok {
			for _, e := range env {
				if n := str(e, "name"); n != "" {
					fn(n)
				}
			}
		}
		for _, c := range v {
			walkEnv(c, fn)
		}
	case []any:
		for _, c := range v {
			walkEnv(c, fn)
		}
	}
}

func lines(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, strings.TrimSpace(sc.Text()))
	}
	return out
}

func TestEverySettingIsDocumented(t *testing.T) {
	known := knownSettings()
	names := settingNames(t)
	if len(names) < 5 {
		t.Fatalf("found only %d settings: %v", len(names), names)
	}
	for name, file := range names {
		if !known[name] {
			t.Errorf("%s sets %s, which is not an SSO_* setting of config.Options", file, name)
		}
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, want := range []string{
		"FROM golang:1.26 AS build",
		`CGO_ENABLED=0 go build -trimpath -ldflags "-s -w`,
		"FROM gcr.io/distroless/static-debian12:nonroot",
		"USER nonroot",
		"EXPOSE 8080",
		"ENV SSO_ADDR=0.0.0.0:8080 SSO_DATA_DIR=/data",
		`HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 CMD ["/sso", "healthcheck"]`,
		`ENTRYPOINT ["/sso"]`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if strings.Count(text, "\nFROM ") != 2 {
		t.Error("Dockerfile is not a two-stage build")
	}
}

func TestSystemdUnitIsHardened(t *testing.T) {
	set := map[string][]string{}
	for _, line := range lines(t, "systemd/sso.service") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			set[k] = append(set[k], v)
		}
	}
	for k, want := range map[string]string{
		"DynamicUser":             "yes",
		"StateDirectory":          "sso",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"NoNewPrivileges":         "yes",
		"CapabilityBoundingSet":   "",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"SystemCallFilter":        "@system-service",
		"MemoryDenyWriteExecute":  "yes",
		"LockPersonality":         "yes",
		"EnvironmentFile":         "-/etc/sso/sso.env",
		"ExecStart":               "/usr/local/bin/sso serve",
	} {
		if !slices.Contains(set[k], want) {
			t.Errorf("sso.service: %s=%s missing (have %q)", k, want, set[k])
		}
	}
}
