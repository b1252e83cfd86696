package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/shakenfist/kerbside-latency/harness/runid"
)

// No cluster is reachable from where this project is developed, so the
// manifests in deploy/k8s are decoded strictly into the Kubernetes API
// types (a misspelt field or a number where a string belongs fails here,
// not on a cluster) and checked for what a broken Job would only show
// there.

const (
	// completionIndexField is the downward-API path of an Indexed Job pod's index.
	completionIndexField = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
	// minGracePeriod: on SIGTERM the loadtest deletes the server it booted,
	// which can take minutes.
	minGracePeriod = 300
	// defaultTestTimeout is deploy/entrypoint.sh's LATENCY_TEST_TIMEOUT.
	defaultTestTimeout = 40 * time.Minute
	// resultsMount is the image's results directory; cloudsMount is where
	// gophercloud looks for clouds.yaml.
	resultsMount, cloudsMount = "/results", "/etc/openstack"
)

// manifests are the documents of the manifest files, by kind and name.
type manifests struct {
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
	claims     map[string]*corev1.PersistentVolumeClaim
	jobs       []*batchv1.Job
}

// parseManifests decodes every document of files (name to content) as
// kubectl and the API server would: YAML to JSON, then JSON into the API
// type with unknown and duplicate fields refused. Any other kind is an
// error.
func parseManifests(files map[string]string) (*manifests, error) {
	m := &manifests{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}, claims: map[string]*corev1.PersistentVolumeClaim{}}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(files[name])))
		for i := 1; ; i++ {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			js, err := yaml.YAMLToJSONStrict(doc)
			if err != nil {
				return nil, fmt.Errorf("%s document %d: %w", name, i, err)
			}
			if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
				continue // only comments
			}
			var tm metav1.TypeMeta
			if err := json.Unmarshal(js, &tm); err != nil {
				return nil, fmt.Errorf("%s document %d: %w", name, i, err)
			}
			var obj any
			switch tm.GroupVersionKind() {
			case corev1.SchemeGroupVersion.WithKind("ConfigMap"):
				obj = &corev1.ConfigMap{}
			case corev1.SchemeGroupVersion.WithKind("Secret"):
				obj = &corev1.Secret{}
			case corev1.SchemeGroupVersion.WithKind("PersistentVolumeClaim"):
				obj = &corev1.PersistentVolumeClaim{}
			case batchv1.SchemeGroupVersion.WithKind("Job"):
				obj = &batchv1.Job{}
			default:
				return nil, fmt.Errorf("%s document %d: %s %s is not a kind these manifests use", name, i, tm.APIVersion, tm.Kind)
			}
			// Case-sensitive, as the API server decodes: encoding/json would
			// take a misspelt "restartpolicy" for restartPolicy.
			strictErrs, err := sigsjson.UnmarshalStrict(js, obj)
			if err := errors.Join(append(strictErrs, err)...); err != nil {
				return nil, fmt.Errorf("%s document %d (%s): %w", name, i, tm.Kind, err)
			}
			switch o := obj.(type) {
			case *corev1.ConfigMap:
				m.configMaps[o.Name] = o
			case *corev1.Secret:
				m.secrets[o.Name] = o
			case *corev1.PersistentVolumeClaim:
				m.claims[o.Name] = o
			case *batchv1.Job:
				m.jobs = append(m.jobs, o)
			}
		}
	}
	return m, nil
}

// envRef is $(NAME) in an env value; $$ is an escaped $.
var envRef = regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// podEnv is the container's environment as the kubelet makes it for the
// pod with the given completion index: envFrom ConfigMaps, then env in
// order, each $(NAME) expanded only if NAME is already set.
func podEnv(m *manifests, c *corev1.Container, index int) map[string]string {
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef != nil && m.configMaps[from.ConfigMapRef.Name] != nil {
			maps.Copy(env, m.configMaps[from.ConfigMapRef.Name].Data)
		}
	}
	for _, e := range c.Env {
		switch from := e.ValueFrom; {
		case from == nil:
			env[e.Name] = envRef.ReplaceAllStringFunc(e.Value, func(ref string) string {
				if ref == "$$" {
					return "$"
				}
				if v, ok := env[ref[2:len(ref)-1]]; ok {
					return v
				}
				return ref // the kubelet leaves an unknown $(X) as it is
			})
		case from.FieldRef != nil && from.FieldRef.FieldPath == completionIndexField:
			env[e.Name] = strconv.Itoa(index)
		case from.ConfigMapKeyRef != nil && m.configMaps[from.ConfigMapKeyRef.Name] != nil:
			env[e.Name] = m.configMaps[from.ConfigMapKeyRef.Name].Data[from.ConfigMapKeyRef.Key]
		default:
			env[e.Name] = "<" + e.Name + ">"
		}
	}
	return env
}

// secretFile reports whether the Secret volume sv holds file, from a
// Secret the manifests define.
func (m *manifests) secretFile(sv *corev1.SecretVolumeSource, file string) bool {
	sec := m.secrets[sv.SecretName]
	has := func(key string) bool { return sec != nil && (sec.StringData[key] != "" || len(sec.Data[key]) > 0) }
	if len(sv.Items) == 0 {
		return has(file)
	}
	return slices.ContainsFunc(sv.Items, func(k corev1.KeyToPath) bool { return k.Path == file && has(k.Key) })
}

// checkManifests returns every way the manifests would make a broken run.
func checkManifests(m *manifests, u imageUser) error {
	var p problems
	if len(m.jobs) != 1 || len(m.jobs[0].Spec.Template.Spec.Containers) != 1 {
		p.add("want one Job with one container")
		return p.err()
	}
	j := m.jobs[0]
	ps := &j.Spec.Template.Spec
	c := &ps.Containers[0]

	// Indexed, all at once, no retries.
	s := j.Spec
	n := int32(1)
	if s.Completions != nil {
		n = *s.Completions
	}
	if s.CompletionMode == nil || *s.CompletionMode != batchv1.IndexedCompletion {
		p.add("completionMode is not Indexed: each pod's run id is built from its completion index")
	}
	if s.Parallelism == nil || *s.Parallelism != n {
		p.add("parallelism must equal completions (%d): the pods load the cloud together", n)
	}
	if s.BackoffLimitPerIndex == nil || *s.BackoffLimitPerIndex != 0 || s.MaxFailedIndexes == nil || *s.MaxFailedIndexes != n {
		p.add("want backoffLimitPerIndex 0 and maxFailedIndexes %d: a retried pod reuses its run id, and one failed pod must not stop the others", n)
	}
	if ps.RestartPolicy != corev1.RestartPolicyNever {
		p.add("restartPolicy is %q, want Never: a restarted container reuses its run id", ps.RestartPolicy)
	}

	// The completion index reaches each pod's run id and results directory.
	for i := range int(n) {
		env := podEnv(m, c, i)
		id, dir := env["LATENCY_RUN_ID"], env["LATENCY_RESULTS_DIR"]
		if err := runid.Validate(id); err != nil {
			p.add("pod %d: LATENCY_RUN_ID: %w", i, err)
		} else if !strings.HasSuffix(id, fmt.Sprintf("-p%d", i)) {
			p.add("pod %d: LATENCY_RUN_ID is %q, want <run>-p%d, built from the completion index", i, id, i)
		}
		if dir != path.Join(resultsMount, id) {
			p.add("pod %d: LATENCY_RESULTS_DIR is %q, want %s/<run id>: its own directory on the results volume", i, dir, resultsMount)
		}
	}

	// Volumes: clouds.yaml from the Secret, read-only; results on a shared claim.
	volumes := map[string]corev1.Volume{}
	for _, v := range ps.Volumes {
		volumes[v.Name] = v
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, vm := range c.VolumeMounts {
		if _, ok := volumes[vm.Name]; !ok {
			p.add("mount %s names no volume", vm.Name)
		}
		mounts[vm.MountPath] = vm
	}
	if vm, sv := mounts[cloudsMount], volumes[mounts[cloudsMount].Name].Secret; sv == nil || !vm.ReadOnly {
		p.add("want a Secret volume mounted read-only at %s, where gophercloud looks for clouds.yaml", cloudsMount)
	} else if !m.secretFile(sv, "clouds.yaml") {
		p.add("the clouds volume must hold clouds.yaml from a Secret defined here (at least as an example); it uses Secret %q", sv.SecretName)
	}
	if vm, cv := mounts[resultsMount], volumes[mounts[resultsMount].Name].PersistentVolumeClaim; cv == nil || vm.ReadOnly {
		p.add("want a PersistentVolumeClaim mounted read-write at %s, or the results die with the pod", resultsMount)
	} else if claim := m.claims[cv.ClaimName]; claim == nil || !slices.Contains(claim.Spec.AccessModes, corev1.ReadWriteMany) {
		p.add("claim %q must be defined here and ReadWriteMany: pods on several nodes write to it at once", cv.ClaimName)
	}
	if sc := ps.SecurityContext; sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != u.uid || sc.FSGroup == nil || *sc.FSGroup != u.gid {
		p.add("want securityContext runAsUser %d and fsGroup %d, the image's user, so it can write the results volume and read clouds.yaml", u.uid, u.gid)
	}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef == nil || m.configMaps[from.ConfigMapRef.Name] == nil {
			p.add("envFrom names a ConfigMap no manifest defines")
		}
	}

	// Stopping: time to delete the server, and a deadline past the test timeout.
	grace := int64(30) // Kubernetes' default
	if ps.TerminationGracePeriodSeconds != nil {
		grace = *ps.TerminationGracePeriodSeconds
	}
	if grace < minGracePeriod {
		p.add("terminationGracePeriodSeconds is %d, want at least %d: the loadtest deletes its server after the stop signal", grace, minGracePeriod)
	}
	timeout := defaultTestTimeout
	if v, ok := podEnv(m, c, 0)["LATENCY_TEST_TIMEOUT"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			p.add("LATENCY_TEST_TIMEOUT %q: %w", v, err)
		}
		timeout = d
	}
	if need := timeout + time.Duration(grace)*time.Second; s.ActiveDeadlineSeconds == nil || time.Duration(*s.ActiveDeadlineSeconds)*time.Second < need {
		p.add("activeDeadlineSeconds must be at least the test timeout plus the grace period (%v), or the Job kills pods before they clean up", need)
	}
	return p.err()
}

// credentialKey matches a dotted path whose last key names a credential.
var credentialKey = regexp.MustCompile(`(?i)(password|secret|token)[^.]*$`)

// checkExampleSecret keeps the example Secret an example: every password,
// secret or token in its clouds.yaml is a placeholder.
func checkExampleSecret(m *manifests) error {
	var p problems
	for name, s := range m.secrets {
		for key, text := range s.StringData {
			var doc any
			if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
				p.add("Secret %s key %s: %w", name, key, err)
			}
			var walk func(string, any)
			walk = func(at string, v any) {
				if mv, ok := v.(map[string]any); ok {
					for k, x := range mv {
						walk(at+"."+k, x)
					}
				} else if credentialKey.MatchString(at) && v != "REPLACE_ME" {
					p.add("Secret %s: %s must be the placeholder REPLACE_ME", name, at)
				}
			}
			walk(key, doc)
		}
	}
	return p.err()
}

// checkRepoManifests parses and checks manifest files against the
// repository's Dockerfile.
func checkRepoManifests(t testing.TB, files map[string]string) error {
	t.Helper()
	df, err := parseDockerfile(readRepoFile(t, "Dockerfile"))
	require.NoError(t, err)
	u, err := df.user()
	require.NoError(t, err)
	m, err := parseManifests(files)
	if err != nil {
		return err
	}
	return errors.Join(checkManifests(m, u), checkExampleSecret(m))
}

func readManifests(t testing.TB) map[string]string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("k8s", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	files := map[string]string{}
	for _, p := range paths {
		files[filepath.Base(p)] = readRepoFile(t, filepath.Join("deploy", p))
	}
	return files
}

func TestK8sManifests(t *testing.T) {
	assert.NoError(t, checkRepoManifests(t, readManifests(t)))
}

// TestK8sChecksCatchMistakes breaks a copy of the manifests in each way the
// checks exist for.
func TestK8sChecksCatchMistakes(t *testing.T) {
	const job, pvc, example = "latency-job.yaml", "results-pvc.yaml", "clouds-secret.example.yaml"
	indexEnv := `            - name: POD_INDEX
              valueFrom:
                fieldRef:
                  fieldPath: metadata.annotations['batch.kubernetes.io/job-completion-index']
`
	replace := func(old, new string) func(string) string {
		return func(s string) string { return strings.Replace(s, old, new, 1) }
	}
	for _, tc := range []struct {
		name, file string
		edit       func(string) string
		want       string
	}{
		{"misspelt field", job, replace("restartPolicy: Never", "restartpolicy: Never"), `unknown field "spec.template.spec.restartpolicy"`},
		{"number where a string belongs", job, replace(`LATENCY_SAMPLES: "60"`, "LATENCY_SAMPLES: 60"), "cannot unmarshal number"},
		{"unknown kind", pvc, replace("kind: PersistentVolumeClaim", "kind: PersistentVolume"), "v1 PersistentVolume is not a kind"},
		{"not Indexed", job, replace("completionMode: Indexed", "completionMode: NonIndexed"), "completionMode is not Indexed"},
		{"retries per index", job, replace("backoffLimitPerIndex: 0", "backoffLimitPerIndex: 2"), "want backoffLimitPerIndex 0"},
		{"run id without the index", job, replace(`"$(RUN_NAME)-p$(POD_INDEX)"`, `"$(RUN_NAME)-p0"`), `pod 1: LATENCY_RUN_ID is "k8s-run1-p0", want <run>-p1`},
		{"index from the wrong field", job, replace("job-completion-index']", "job-name']"), `pod 0: LATENCY_RUN_ID: invalid run id "k8s-run1-p<POD_INDEX>"`},
		{"index declared after its use", job, func(s string) string {
			return strings.Replace(strings.Replace(s, indexEnv, "", 1), "          volumeMounts:\n", indexEnv+"          volumeMounts:\n", 1)
		}, `LATENCY_RUN_ID: invalid run id "k8s-run1-p$(POD_INDEX)"`},
		{"shared results directory", job, replace(`"/results/$(LATENCY_RUN_ID)"`, `"/results"`), `LATENCY_RESULTS_DIR is "/results", want /results/<run id>`},
		{"results volume elsewhere", job, replace("mountPath: /results", "mountPath: /data"), "PersistentVolumeClaim mounted read-write at /results"},
		{"clouds.yaml writable", job, replace("readOnly: true", "readOnly: false"), "Secret volume mounted read-only at /etc/openstack"},
		{"undefined Secret", job, replace("secretName: latency-clouds", "secretName: latency-cloud"), `it uses Secret "latency-cloud"`},
		{"claim not shared", pvc, replace("- ReadWriteMany", "- ReadWriteOnce"), `claim "latency-results" must be defined here and ReadWriteMany`},
		{"another uid", job, replace("runAsUser: 1000", "runAsUser: 1001"), "want securityContext runAsUser 1000"},
		{"short grace period", job, replace("terminationGracePeriodSeconds: 360", "terminationGracePeriodSeconds: 30"), "terminationGracePeriodSeconds is 30"},
		{"deadline before cleanup", job, replace(`LATENCY_TEST_TIMEOUT: "40m"`, `LATENCY_TEST_TIMEOUT: "90m"`), "activeDeadlineSeconds must be at least"},
		{"real password in the example", example, replace("password: REPLACE_ME", "password: hunter2"), "clouds.yaml.clouds.kerbside.auth.password must be the placeholder"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := readManifests(t)
			broken := tc.edit(files[tc.file])
			require.NotEqual(t, files[tc.file], broken, "the edit must change %s", tc.file)
			files[tc.file] = broken
			assert.ErrorContains(t, checkRepoManifests(t, files), tc.want)
		})
	}
}
