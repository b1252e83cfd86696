package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/shakenfist/kerbside-latency/harness/results"
)

// The Kubernetes manifests in deploy/k8s run the image as an Indexed Job.
// No cluster is reachable from where this project is developed, so these
// tests check the manifests' structure: every document decodes strictly
// into the fields Kubernetes knows (a misspelt field is an error here
// rather than silently ignored by kubectl), and the properties a broken
// Job would only reveal on a cluster hold: the pods are indexed, each
// pod's run id carries its completion index, every ConfigMap, Secret and
// claim it uses is defined, and it runs as the image's non-root user with
// time to clean up.

// k8sDir holds the manifests, relative to this package.
const k8sDir = "k8s"

// completionIndexField is the downward-API path of an Indexed Job pod's
// index.
const completionIndexField = "metadata.annotations['batch.kubernetes.io/job-completion-index']"

// minGracePeriod is the least terminationGracePeriodSeconds: on SIGTERM
// the loadtest deletes the server it booted, which can take minutes.
const minGracePeriod = 300

// defaultTestTimeout is deploy/entrypoint.sh's LATENCY_TEST_TIMEOUT.
const defaultTestTimeout = 40 * time.Minute

// resultsMount and cloudsMount are where the image expects its results
// directory (Dockerfile: LATENCY_RESULTS_DIR=/results) and where
// gophercloud looks for clouds.yaml.
const (
	resultsMount = "/results"
	cloudsMount  = "/etc/openstack"
)

// ---------------------------------------------------------------------------
// The subset of the Kubernetes API the manifests use. Documents are
// decoded strictly, so a field not listed here is an error: add it here
// when a manifest needs it.

type objectMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// header is what every document has.
type header struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
}

// str is a YAML value that must be a string. Kubernetes refuses a number
// or a boolean where it wants a string (a ConfigMap value, an env value),
// but YAML decoders happily convert them, so a bare `60` would pass a
// plain string field here and fail on the cluster.
type str string

func (s *str) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return fmt.Errorf("line %d: %q must be a string (quote it)", n.Line, n.Value)
	}
	*s = str(n.Value)
	return nil
}

// quantity is a resource quantity: a string ("500m") or a number (2).
type quantity string

func (q *quantity) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!str" && n.ShortTag() != "!!int" && n.ShortTag() != "!!float") {
		return fmt.Errorf("line %d: %q is not a resource quantity", n.Line, n.Value)
	}
	*q = quantity(n.Value)
	return nil
}

type configMap struct {
	header     `yaml:",inline"`
	Data       map[string]str `yaml:"data"`
	BinaryData map[string]str `yaml:"binaryData"`
	Immutable  *bool          `yaml:"immutable"`
}

type secret struct {
	header     `yaml:",inline"`
	Type       string         `yaml:"type"`
	Data       map[string]str `yaml:"data"`
	StringData map[string]str `yaml:"stringData"`
	Immutable  *bool          `yaml:"immutable"`
}

type pvc struct {
	header `yaml:",inline"`
	Spec   struct {
		AccessModes      []string `yaml:"accessModes"`
		StorageClassName *string  `yaml:"storageClassName"`
		VolumeMode       string   `yaml:"volumeMode"`
		Resources        struct {
			Requests map[string]quantity `yaml:"requests"`
		} `yaml:"resources"`
	} `yaml:"spec"`
}

type job struct {
	header `yaml:",inline"`
	Spec   struct {
		CompletionMode          string `yaml:"completionMode"`
		Completions             *int   `yaml:"completions"`
		Parallelism             *int   `yaml:"parallelism"`
		BackoffLimit            *int   `yaml:"backoffLimit"`
		BackoffLimitPerIndex    *int   `yaml:"backoffLimitPerIndex"`
		MaxFailedIndexes        *int   `yaml:"maxFailedIndexes"`
		ActiveDeadlineSeconds   *int   `yaml:"activeDeadlineSeconds"`
		TTLSecondsAfterFinished *int   `yaml:"ttlSecondsAfterFinished"`
		Template                struct {
			Metadata objectMeta `yaml:"metadata"`
			Spec     podSpec    `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	RestartPolicy                 string             `yaml:"restartPolicy"`
	TerminationGracePeriodSeconds *int               `yaml:"terminationGracePeriodSeconds"`
	AutomountServiceAccountToken  *bool              `yaml:"automountServiceAccountToken"`
	ServiceAccountName            string             `yaml:"serviceAccountName"`
	SecurityContext               podSecurityContext `yaml:"securityContext"`
	InitContainers                []container        `yaml:"initContainers"`
	Containers                    []container        `yaml:"containers"`
	Volumes                       []volume           `yaml:"volumes"`
	NodeSelector                  map[string]string  `yaml:"nodeSelector"`
}

type seccompProfile struct {
	Type string `yaml:"type"`
}

type podSecurityContext struct {
	RunAsNonRoot        *bool           `yaml:"runAsNonRoot"`
	RunAsUser           *int64          `yaml:"runAsUser"`
	RunAsGroup          *int64          `yaml:"runAsGroup"`
	FSGroup             *int64          `yaml:"fsGroup"`
	FSGroupChangePolicy string          `yaml:"fsGroupChangePolicy"`
	SeccompProfile      *seccompProfile `yaml:"seccompProfile"`
}

type containerSecurityContext struct {
	RunAsNonRoot             *bool           `yaml:"runAsNonRoot"`
	RunAsUser                *int64          `yaml:"runAsUser"`
	RunAsGroup               *int64          `yaml:"runAsGroup"`
	AllowPrivilegeEscalation *bool           `yaml:"allowPrivilegeEscalation"`
	Privileged               *bool           `yaml:"privileged"`
	ReadOnlyRootFilesystem   *bool           `yaml:"readOnlyRootFilesystem"`
	SeccompProfile           *seccompProfile `yaml:"seccompProfile"`
	Capabilities             *struct {
		Add  []string `yaml:"add"`
		Drop []string `yaml:"drop"`
	} `yaml:"capabilities"`
}

type container struct {
	Name            string                    `yaml:"name"`
	Image           string                    `yaml:"image"`
	ImagePullPolicy string                    `yaml:"imagePullPolicy"`
	Command         []string                  `yaml:"command"`
	Args            []string                  `yaml:"args"`
	EnvFrom         []envFromSource           `yaml:"envFrom"`
	Env             []envVar                  `yaml:"env"`
	VolumeMounts    []volumeMount             `yaml:"volumeMounts"`
	Resources       resources                 `yaml:"resources"`
	SecurityContext *containerSecurityContext `yaml:"securityContext"`
}

type nameRef struct {
	Name     string `yaml:"name"`
	Optional *bool  `yaml:"optional"`
}

type keyRef struct {
	Name     string `yaml:"name"`
	Key      string `yaml:"key"`
	Optional *bool  `yaml:"optional"`
}

type envFromSource struct {
	Prefix       string   `yaml:"prefix"`
	ConfigMapRef *nameRef `yaml:"configMapRef"`
	SecretRef    *nameRef `yaml:"secretRef"`
}

type envVar struct {
	Name      string `yaml:"name"`
	Value     *str   `yaml:"value"`
	ValueFrom *struct {
		FieldRef *struct {
			APIVersion string `yaml:"apiVersion"`
			FieldPath  string `yaml:"fieldPath"`
		} `yaml:"fieldRef"`
		ConfigMapKeyRef *keyRef `yaml:"configMapKeyRef"`
		SecretKeyRef    *keyRef `yaml:"secretKeyRef"`
	} `yaml:"valueFrom"`
}

type volumeMount struct {
	Name        string `yaml:"name"`
	MountPath   string `yaml:"mountPath"`
	ReadOnly    bool   `yaml:"readOnly"`
	SubPath     string `yaml:"subPath"`
	SubPathExpr string `yaml:"subPathExpr"`
}

type resources struct {
	Requests map[string]quantity `yaml:"requests"`
	Limits   map[string]quantity `yaml:"limits"`
}

type keyToPath struct {
	Key  string `yaml:"key"`
	Path string `yaml:"path"`
	Mode *int   `yaml:"mode"`
}

type volume struct {
	Name   string `yaml:"name"`
	Secret *struct {
		SecretName  string      `yaml:"secretName"`
		Items       []keyToPath `yaml:"items"`
		DefaultMode *int        `yaml:"defaultMode"`
		Optional    *bool       `yaml:"optional"`
	} `yaml:"secret"`
	ConfigMap *struct {
		Name        string      `yaml:"name"`
		Items       []keyToPath `yaml:"items"`
		DefaultMode *int        `yaml:"defaultMode"`
		Optional    *bool       `yaml:"optional"`
	} `yaml:"configMap"`
	PersistentVolumeClaim *struct {
		ClaimName string `yaml:"claimName"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"persistentVolumeClaim"`
	EmptyDir *struct {
		Medium    string   `yaml:"medium"`
		SizeLimit quantity `yaml:"sizeLimit"`
	} `yaml:"emptyDir"`
}

// ---------------------------------------------------------------------------
// Parsing.

// document is one YAML document of a manifest file.
type document struct {
	source string // file name and document number, for messages
	header
}

func (d document) String() string {
	return fmt.Sprintf("%s (%s %s/%s)", d.source, d.APIVersion, d.Kind, d.Metadata.Name)
}

// manifests is every document of the manifest files, decoded by kind.
type manifests struct {
	docs       []document
	configMaps map[string]*configMap
	secrets    map[string]*secret
	pvcs       map[string]*pvc
	jobs       []*job
}

// parseManifests decodes every document of files (name to content). A
// document of a kind it does not know is kept as a header only, for
// checkKinds to report; a known kind is decoded strictly.
func parseManifests(files map[string]string) (*manifests, error) {
	m := &manifests{configMaps: map[string]*configMap{}, secrets: map[string]*secret{}, pvcs: map[string]*pvc{}}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		dec := yaml.NewDecoder(strings.NewReader(files[name]))
		for i := 1; ; i++ {
			var node yaml.Node
			err := dec.Decode(&node)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: document %d: %w", name, i, err)
			}
			if len(node.Content) == 0 || (node.Content[0].Kind == yaml.ScalarNode && node.Content[0].Tag == "!!null") {
				continue // an empty document, e.g. after a leading ---
			}
			d := document{source: fmt.Sprintf("%s#%d", name, i)}
			if err := node.Decode(&d.header); err != nil {
				return nil, fmt.Errorf("%s: %w", d.source, err)
			}
			var target any
			switch d.Kind {
			case "ConfigMap":
				cm := &configMap{}
				target, m.configMaps[d.Metadata.Name] = cm, cm
			case "Secret":
				s := &secret{}
				target, m.secrets[d.Metadata.Name] = s, s
			case "PersistentVolumeClaim":
				p := &pvc{}
				target, m.pvcs[d.Metadata.Name] = p, p
			case "Job":
				j := &job{}
				target = j
				m.jobs = append(m.jobs, j)
			}
			if target != nil {
				if err := decodeStrict(&node, target); err != nil {
					return nil, fmt.Errorf("%s: %w", d, err)
				}
			}
			m.docs = append(m.docs, d)
		}
	}
	return m, nil
}

// decodeStrict decodes node into v, refusing fields v does not have.
// yaml.v3 only checks fields in a Decoder, so the node is encoded again.
func decodeStrict(node *yaml.Node, v any) error {
	b, err := yaml.Marshal(node)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(v)
}

// readManifests reads every *.yaml file of deploy/k8s.
func readManifests(t testing.TB) map[string]string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, paths, "no manifests in %s", k8sDir)
	files := map[string]string{}
	for _, p := range paths {
		files[filepath.Base(p)] = readRepoFile(t, filepath.Join("deploy", p))
	}
	return files
}

func dockerfileUser(t testing.TB) imageUser {
	t.Helper()
	df, err := parseDockerfile(readRepoFile(t, "Dockerfile"))
	require.NoError(t, err)
	u, err := df.user()
	require.NoError(t, err)
	return u
}

// ---------------------------------------------------------------------------
// Checks. Each returns the problems it finds, as sentences.

type k8sCheck struct {
	name string
	fn   func(m *manifests, u imageUser) []string
}

var k8sChecks = []k8sCheck{
	{"kinds", checkKinds},
	{"indexed", checkIndexed},
	{"run id", checkRunID},
	{"references", checkReferences},
	{"mounts", checkMounts},
	{"security", checkSecurity},
	{"lifetime", checkLifetime},
	{"container", checkContainer},
}

func runK8sChecks(m *manifests, u imageUser) map[string][]string {
	out := map[string][]string{}
	for _, c := range k8sChecks {
		out[c.name] = c.fn(m, u)
	}
	return out
}

// knownKinds are the apiVersion of each kind the manifests may hold.
var knownKinds = map[string]string{
	"ConfigMap":             "v1",
	"Secret":                "v1",
	"PersistentVolumeClaim": "v1",
	"Job":                   "batch/v1",
}

// theJob returns the one Job, or nil.
func (m *manifests) theJob() *job {
	if len(m.jobs) != 1 {
		return nil
	}
	return m.jobs[0]
}

// theContainer returns the Job's one container, or nil.
func (m *manifests) theContainer() *container {
	j := m.theJob()
	if j == nil || len(j.Spec.Template.Spec.Containers) != 1 {
		return nil
	}
	return &j.Spec.Template.Spec.Containers[0]
}

func checkKinds(m *manifests, _ imageUser) []string {
	var out []string
	seen := map[string]string{}
	for _, d := range m.docs {
		want, ok := knownKinds[d.Kind]
		switch {
		case d.Kind == "":
			out = append(out, fmt.Sprintf("%s has no kind", d.source))
		case !ok:
			out = append(out, fmt.Sprintf("%s: kind %q is not one these manifests should need", d, d.Kind))
		case d.APIVersion != want:
			out = append(out, fmt.Sprintf("%s: apiVersion %q, want %q for a %s", d, d.APIVersion, want, d.Kind))
		}
		if d.Metadata.Name == "" {
			out = append(out, fmt.Sprintf("%s has no metadata.name", d))
		}
		key := d.Kind + "/" + d.Metadata.Name
		if other, dup := seen[key]; dup {
			out = append(out, fmt.Sprintf("%s and %s both define %s", other, d.source, key))
		}
		seen[key] = d.source
	}
	if len(m.jobs) != 1 {
		out = append(out, fmt.Sprintf("want exactly one Job, found %d", len(m.jobs)))
	}
	return out
}

func checkIndexed(m *manifests, _ imageUser) []string {
	j := m.theJob()
	if j == nil {
		return []string{"no single Job to check"}
	}
	var out []string
	s := j.Spec
	if s.CompletionMode != "Indexed" {
		out = append(out, fmt.Sprintf("completionMode is %q: want Indexed, so each pod has its own index for its run id", s.CompletionMode))
	}
	switch {
	case s.Completions == nil || s.Parallelism == nil:
		out = append(out, "completions and parallelism must both be set")
	case *s.Completions <= 0:
		out = append(out, fmt.Sprintf("completions is %d: want at least 1", *s.Completions))
	case *s.Completions != *s.Parallelism:
		out = append(out, fmt.Sprintf("completions %d != parallelism %d: the pods are meant to load the cloud at the same time", *s.Completions, *s.Parallelism))
	}
	if s.BackoffLimit == nil && s.BackoffLimitPerIndex == nil {
		out = append(out, "neither backoffLimit nor backoffLimitPerIndex is set: a failed pod would be retried 6 times and find its own CSV")
	}
	if s.BackoffLimitPerIndex != nil {
		if *s.BackoffLimitPerIndex != 0 {
			out = append(out, fmt.Sprintf("backoffLimitPerIndex is %d: a retried pod reuses its run id and refuses to overwrite its CSV; want 0", *s.BackoffLimitPerIndex))
		}
		if s.Completions != nil && (s.MaxFailedIndexes == nil || *s.MaxFailedIndexes != *s.Completions) {
			out = append(out, "maxFailedIndexes must equal completions, so a failing pod never stops the others mid-measurement")
		}
	}
	if s.BackoffLimit != nil && s.Completions != nil && (*s.BackoffLimit < 0 || *s.BackoffLimit > *s.Completions) {
		out = append(out, fmt.Sprintf("backoffLimit is %d: want 0 to completions (%d)", *s.BackoffLimit, *s.Completions))
	}
	return out
}

// envRef matches $(NAME) in an env value; $$(NAME) is an escaped literal.
var envRef = regexp.MustCompile(`\$?\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expandEnv computes the container's env in order, as the kubelet does:
// a $(NAME) expands only to a variable declared earlier in env. The
// completion index is index, ConfigMap keys come from the manifests, and
// other sources expand to "<source>". It also returns the problems found:
// references to variables not declared earlier, and duplicate names.
func expandEnv(m *manifests, c *container, index int) (map[string]string, []string) {
	env := map[string]string{}
	var out []string
	for i, e := range c.Env {
		if _, dup := env[e.Name]; dup {
			out = append(out, fmt.Sprintf("env %s is declared twice", e.Name))
		}
		switch {
		case e.Value != nil:
			v := envRef.ReplaceAllStringFunc(string(*e.Value), func(ref string) string {
				if strings.HasPrefix(ref, "$$") {
					return ref[1:]
				}
				name := envRef.FindStringSubmatch(ref)[1]
				val, ok := env[name]
				if !ok {
					later := slices.ContainsFunc(c.Env[i:], func(o envVar) bool { return o.Name == name })
					why := "which is not declared in env"
					if later {
						why = "which is declared after it, so the kubelet leaves the reference unexpanded"
					}
					out = append(out, fmt.Sprintf("env %s uses $(%s), %s", e.Name, name, why))
					return ref
				}
				return val
			})
			env[e.Name] = v
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == completionIndexField:
			env[e.Name] = strconv.Itoa(index)
		case e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			if cm, ok := m.configMaps[ref.Name]; ok {
				env[e.Name] = string(cm.Data[ref.Key])
			} else {
				env[e.Name] = "<configmap>"
			}
		default:
			env[e.Name] = "<" + e.Name + ">"
		}
	}
	return env, out
}

func checkRunID(m *manifests, _ imageUser) []string {
	c := m.theContainer()
	if c == nil {
		return []string{"the Job must have exactly one container"}
	}
	var out []string
	var indexVar string
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == completionIndexField {
			indexVar = e.Name
			break
		}
	}
	if indexVar == "" {
		out = append(out, "no env variable takes the completion index from "+completionIndexField)
	}
	i := slices.IndexFunc(c.Env, func(e envVar) bool { return e.Name == "LATENCY_RUN_ID" })
	switch {
	case i < 0:
		return append(out, "LATENCY_RUN_ID is not set in env: every pod would make up its own run id, unrelated to its index")
	case c.Env[i].Value == nil:
		return append(out, "LATENCY_RUN_ID must be a value built from the completion index")
	case indexVar != "" && !strings.HasSuffix(string(*c.Env[i].Value), "-p$("+indexVar+")"):
		out = append(out, fmt.Sprintf("LATENCY_RUN_ID is %q: want <run>-p$(%s), so each pod's files carry its index", *c.Env[i].Value, indexVar))
	}
	n := 1
	if j := m.theJob(); j != nil && j.Spec.Completions != nil && *j.Spec.Completions > 0 {
		n = *j.Spec.Completions
	}
	ids := map[string]bool{}
	for idx := range n {
		env, problems := expandEnv(m, c, idx)
		if idx == 0 {
			out = append(out, problems...)
		}
		id := env["LATENCY_RUN_ID"]
		if err := results.ValidateRunID(id); err != nil {
			out = append(out, fmt.Sprintf("pod %d: LATENCY_RUN_ID expands to %q: %v", idx, id, err))
		}
		ids[id] = true
		if dir, ok := env["LATENCY_RESULTS_DIR"]; ok && !strings.HasPrefix(dir+"/", resultsMount+"/") {
			out = append(out, fmt.Sprintf("pod %d: LATENCY_RESULTS_DIR %q is not on the results volume at %s", idx, dir, resultsMount))
		}
	}
	if len(ids) != n {
		out = append(out, fmt.Sprintf("%d pods share %d run id(s): they would overwrite each other's files", n, len(ids)))
	}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef == nil {
			continue
		}
		cm := m.configMaps[from.ConfigMapRef.Name]
		if cm == nil {
			continue // checkReferences reports it
		}
		for _, k := range []string{"LATENCY_RUN_ID", "LATENCY_RESULTS_DIR"} {
			if _, set := cm.Data[k]; set {
				out = append(out, fmt.Sprintf("ConfigMap %s sets %s, which the Job sets per pod (env wins over envFrom, so the ConfigMap's value is dead and misleading)", cm.Metadata.Name, k))
			}
		}
	}
	return out
}

func checkReferences(m *manifests, _ imageUser) []string {
	j := m.theJob()
	if j == nil {
		return []string{"no single Job to check"}
	}
	var out []string
	ps := j.Spec.Template.Spec
	configMapKey := func(where, name, key string) {
		cm, ok := m.configMaps[name]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s uses ConfigMap %q, which no manifest defines", where, name))
		case key != "":
			if _, ok := cm.Data[key]; !ok {
				out = append(out, fmt.Sprintf("%s uses key %q of ConfigMap %s, which has no such key", where, key, name))
			}
		}
	}
	secretKey := func(where, name, key string) {
		s, ok := m.secrets[name]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s uses Secret %q, which no manifest defines (not even as an example)", where, name))
		case key != "":
			_, inData := s.Data[key]
			_, inString := s.StringData[key]
			if !inData && !inString {
				out = append(out, fmt.Sprintf("%s uses key %q of Secret %s, which has no such key", where, key, name))
			}
		}
	}
	for _, c := range slices.Concat(ps.InitContainers, ps.Containers) {
		for _, from := range c.EnvFrom {
			if from.ConfigMapRef != nil {
				configMapKey("container "+c.Name+" envFrom", from.ConfigMapRef.Name, "")
			}
			if from.SecretRef != nil {
				secretKey("container "+c.Name+" envFrom", from.SecretRef.Name, "")
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				configMapKey("env "+e.Name, r.Name, r.Key)
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				secretKey("env "+e.Name, r.Name, r.Key)
			}
		}
	}
	for _, v := range ps.Volumes {
		switch {
		case v.Secret != nil:
			for _, it := range v.Secret.Items {
				secretKey("volume "+v.Name, v.Secret.SecretName, it.Key)
			}
			if len(v.Secret.Items) == 0 {
				secretKey("volume "+v.Name, v.Secret.SecretName, "")
			}
		case v.ConfigMap != nil:
			configMapKey("volume "+v.Name, v.ConfigMap.Name, "")
		case v.PersistentVolumeClaim != nil:
			p, ok := m.pvcs[v.PersistentVolumeClaim.ClaimName]
			if !ok {
				out = append(out, fmt.Sprintf("volume %s uses PersistentVolumeClaim %q, which no manifest defines", v.Name, v.PersistentVolumeClaim.ClaimName))
			} else if !slices.Contains(p.Spec.AccessModes, "ReadWriteMany") && (j.Spec.Parallelism == nil || *j.Spec.Parallelism > 1) {
				out = append(out, fmt.Sprintf("PersistentVolumeClaim %s is %v: pods on several nodes write to it at once, so it must be ReadWriteMany", p.Metadata.Name, p.Spec.AccessModes))
			}
		}
	}
	return out
}

func checkMounts(m *manifests, _ imageUser) []string {
	j := m.theJob()
	c := m.theContainer()
	if c == nil {
		return []string{"the Job must have exactly one container"}
	}
	var out []string
	volumes := map[string]volume{}
	for _, v := range j.Spec.Template.Spec.Volumes {
		if _, dup := volumes[v.Name]; dup {
			out = append(out, fmt.Sprintf("volume %s is declared twice", v.Name))
		}
		volumes[v.Name] = v
	}
	used := map[string]bool{}
	paths := map[string]string{}
	for _, vm := range c.VolumeMounts {
		v, ok := volumes[vm.Name]
		if !ok {
			out = append(out, fmt.Sprintf("mount %s at %s names no declared volume", vm.Name, vm.MountPath))
			continue
		}
		used[vm.Name] = true
		if other, dup := paths[vm.MountPath]; dup {
			out = append(out, fmt.Sprintf("mounts %s and %s both use %s", other, vm.Name, vm.MountPath))
		}
		paths[vm.MountPath] = vm.Name
		switch {
		case v.Secret != nil && !vm.ReadOnly:
			out = append(out, fmt.Sprintf("secret volume %s is mounted read-write at %s: mount credentials readOnly", vm.Name, vm.MountPath))
		case v.Secret != nil && vm.MountPath != cloudsMount:
			out = append(out, fmt.Sprintf("secret volume %s is mounted at %s; gophercloud looks for clouds.yaml in %s", vm.Name, vm.MountPath, cloudsMount))
		case v.PersistentVolumeClaim != nil && vm.MountPath != resultsMount:
			out = append(out, fmt.Sprintf("results volume %s is mounted at %s, want %s (the image's results directory)", vm.Name, vm.MountPath, resultsMount))
		case v.PersistentVolumeClaim != nil && vm.ReadOnly:
			out = append(out, fmt.Sprintf("results volume %s is mounted read-only", vm.Name))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(volumes)) {
		if !used[name] {
			out = append(out, fmt.Sprintf("volume %s is declared but never mounted", name))
		}
	}
	if paths[cloudsMount] == "" {
		out = append(out, "nothing is mounted at "+cloudsMount+": the loadtest would find no clouds.yaml")
	}
	if paths[resultsMount] == "" {
		out = append(out, "nothing is mounted at "+resultsMount+": results would die with the pod")
	}
	return out
}

func checkSecurity(m *manifests, u imageUser) []string {
	j := m.theJob()
	if j == nil {
		return []string{"no single Job to check"}
	}
	var out []string
	sc := j.Spec.Template.Spec.SecurityContext
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		out = append(out, "pod securityContext.runAsNonRoot must be true")
	}
	if sc.RunAsUser == nil || *sc.RunAsUser != u.uid {
		out = append(out, fmt.Sprintf("pod securityContext.runAsUser is %s, want the image's uid %d (Dockerfile LATENCY_UID)", ptrString(sc.RunAsUser), u.uid))
	}
	if sc.FSGroup == nil || *sc.FSGroup != u.gid {
		out = append(out, fmt.Sprintf("pod securityContext.fsGroup is %s, want the image's gid %d (Dockerfile LATENCY_GID), so the user can write the results volume and read clouds.yaml", ptrString(sc.FSGroup), u.gid))
	}
	ps := j.Spec.Template.Spec
	for _, c := range slices.Concat(ps.InitContainers, ps.Containers) {
		cs := c.SecurityContext
		if cs == nil {
			out = append(out, fmt.Sprintf("container %s has no securityContext: set allowPrivilegeEscalation: false", c.Name))
			continue
		}
		if cs.RunAsNonRoot != nil && !*cs.RunAsNonRoot {
			out = append(out, fmt.Sprintf("container %s sets runAsNonRoot: false", c.Name))
		}
		if cs.RunAsUser != nil && *cs.RunAsUser != u.uid {
			out = append(out, fmt.Sprintf("container %s runs as uid %d, not the image's %d", c.Name, *cs.RunAsUser, u.uid))
		}
		if cs.Privileged != nil && *cs.Privileged {
			out = append(out, fmt.Sprintf("container %s is privileged", c.Name))
		}
		if cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation {
			out = append(out, fmt.Sprintf("container %s must set allowPrivilegeEscalation: false", c.Name))
		}
	}
	return out
}

func ptrString[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

func checkLifetime(m *manifests, _ imageUser) []string {
	j := m.theJob()
	if j == nil {
		return []string{"no single Job to check"}
	}
	var out []string
	ps := j.Spec.Template.Spec
	if ps.RestartPolicy != "Never" {
		out = append(out, fmt.Sprintf("restartPolicy is %q: want Never (a restarted container would reuse its run id and files)", ps.RestartPolicy))
	}
	grace := 30 // Kubernetes' default
	if ps.TerminationGracePeriodSeconds != nil {
		grace = *ps.TerminationGracePeriodSeconds
	}
	if grace < minGracePeriod {
		out = append(out, fmt.Sprintf("terminationGracePeriodSeconds is %d: want at least %d, the loadtest deletes its server after SIGTERM", grace, minGracePeriod))
	}
	s := j.Spec
	switch {
	case s.ActiveDeadlineSeconds == nil || *s.ActiveDeadlineSeconds <= 0:
		out = append(out, "activeDeadlineSeconds must bound the Job")
	default:
		timeout := defaultTestTimeout
		if c := m.theContainer(); c != nil {
			for _, from := range c.EnvFrom {
				if from.ConfigMapRef == nil || m.configMaps[from.ConfigMapRef.Name] == nil {
					continue
				}
				if v, ok := m.configMaps[from.ConfigMapRef.Name].Data["LATENCY_TEST_TIMEOUT"]; ok {
					d, err := time.ParseDuration(string(v))
					if err != nil {
						out = append(out, fmt.Sprintf("LATENCY_TEST_TIMEOUT %q: %v", v, err))
						continue
					}
					timeout = d
				}
			}
		}
		need := timeout + time.Duration(grace)*time.Second
		if got := time.Duration(*s.ActiveDeadlineSeconds) * time.Second; got < need {
			out = append(out, fmt.Sprintf("activeDeadlineSeconds is %v: the test timeout %v plus the grace period %ds need %v, or the Job kills pods before they clean up", got, timeout, grace, need))
		}
	}
	if s.TTLSecondsAfterFinished == nil || *s.TTLSecondsAfterFinished < 0 {
		out = append(out, "ttlSecondsAfterFinished must be set, so finished Jobs do not pile up")
	}
	return out
}

func checkContainer(m *manifests, _ imageUser) []string {
	c := m.theContainer()
	if c == nil {
		return []string{"the Job must have exactly one container"}
	}
	var out []string
	if strings.TrimSpace(c.Image) == "" {
		out = append(out, "container "+c.Name+" has no image")
	}
	if len(c.Command) > 0 {
		out = append(out, "container "+c.Name+" overrides the image's entry point; pass test flags with args instead")
	}
	for _, kind := range []string{"requests", "limits"} {
		r := c.Resources.Requests
		if kind == "limits" {
			r = c.Resources.Limits
		}
		for _, res := range []string{"cpu", "memory"} {
			if strings.TrimSpace(string(r[res])) == "" {
				out = append(out, fmt.Sprintf("container %s sets no %s %s", c.Name, res, kind))
			}
		}
	}
	cloud := ""
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef != nil && m.configMaps[from.ConfigMapRef.Name] != nil {
			cloud = string(m.configMaps[from.ConfigMapRef.Name].Data["OS_CLOUD"])
		}
	}
	for _, e := range c.Env {
		if e.Name == "OS_CLOUD" && e.Value != nil {
			cloud = string(*e.Value)
		}
	}
	if cloud == "" {
		out = append(out, "OS_CLOUD is set neither in the ConfigMap nor in env: gophercloud would not know which cloud of clouds.yaml to use")
	}
	return out
}

// ---------------------------------------------------------------------------
// Tests of the repository's manifests.

func TestK8sManifests(t *testing.T) {
	m, err := parseManifests(readManifests(t))
	require.NoError(t, err)
	u := dockerfileUser(t)
	for _, c := range k8sChecks {
		t.Run(c.name, func(t *testing.T) {
			assert.Empty(t, c.fn(m, u))
		})
	}
	t.Run("run ids", func(t *testing.T) {
		c := m.theContainer()
		require.NotNil(t, c)
		env, problems := expandEnv(m, c, 2)
		assert.Empty(t, problems)
		assert.Equal(t, "k8s-run1-p2", env["LATENCY_RUN_ID"])
		assert.Equal(t, "/results/k8s-run1-p2", env["LATENCY_RESULTS_DIR"])
	})
}

func TestDockerfileUser(t *testing.T) {
	assert.Equal(t, imageUser{uid: 1000, gid: 1000}, dockerfileUser(t))
}

// TestExampleSecretHoldsNoCredential keeps the example Secret an example:
// every credential in its clouds.yaml is a placeholder, and its cloud is
// the one OS_CLOUD names.
func TestExampleSecretHoldsNoCredential(t *testing.T) {
	m, err := parseManifests(readManifests(t))
	require.NoError(t, err)
	s, ok := m.secrets["latency-clouds"]
	require.True(t, ok, "no example Secret latency-clouds")
	require.Empty(t, s.Data, "the example must use stringData, so a reader sees it holds placeholders")
	raw, ok := s.StringData["clouds.yaml"]
	require.True(t, ok)

	var clouds struct {
		Clouds map[string]map[string]any `yaml:"clouds"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(raw), &clouds))
	require.NotEmpty(t, clouds.Clouds)
	secretKeys := regexp.MustCompile(`(?i)password|secret|token|key`)
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				walk(path+"."+k, x)
			}
		default:
			if secretKeys.MatchString(path[strings.LastIndex(path, ".")+1:]) {
				assert.Equal(t, "REPLACE_ME", v, "%s must be a placeholder", path)
			}
		}
	}
	for name, c := range clouds.Clouds {
		walk(name, c)
		if auth, ok := c["auth"].(map[string]any); ok {
			assert.Regexp(t, `\.(invalid|example)(:\d+)?(/|$)`, auth["auth_url"], "the example's auth_url must not point at a real cloud")
		}
	}
	cm := m.configMaps["latency-config"]
	require.NotNil(t, cm)
	assert.Contains(t, clouds.Clouds, string(cm.Data["OS_CLOUD"]), "OS_CLOUD names a cloud of the example clouds.yaml")
}

func TestK8sReadme(t *testing.T) {
	readme := readRepoFile(t, filepath.Join("deploy", k8sDir, "README.md"))
	for name := range readManifests(t) {
		assert.True(t, strings.Contains(readme, name), "the README does not mention %s", name)
	}
	for _, want := range []string{"create secret generic latency-clouds", "latency-results", "cmd/latency-merge", "no cluster"} {
		assert.True(t, strings.Contains(readme, want), "the README does not mention %q", want)
	}
}

// ---------------------------------------------------------------------------
// The checks must be able to fail.

// brokenManifest is one edit that must make one check fail.
type brokenManifest struct {
	name  string
	check string // the k8sCheck that must catch it
	edit  func(m *manifests)
	want  string // part of the problem it must report
}

func TestK8sChecksCatchBrokenManifests(t *testing.T) {
	files := readManifests(t)
	u := dockerfileUser(t)
	fresh := func(t *testing.T) *manifests {
		t.Helper()
		m, err := parseManifests(files)
		require.NoError(t, err)
		return m
	}
	intp := func(n int) *int { return &n }
	i64p := func(n int64) *int64 { return &n }
	boolp := func(b bool) *bool { return &b }
	strp := func(s string) *str { v := str(s); return &v }
	podSpecOf := func(m *manifests) *podSpec { return &m.theJob().Spec.Template.Spec }
	envIndex := func(c *container, name string) int {
		return slices.IndexFunc(c.Env, func(e envVar) bool { return e.Name == name })
	}

	tests := []brokenManifest{
		{"wrong Job apiVersion", "kinds", func(m *manifests) {
			for i := range m.docs {
				if m.docs[i].Kind == "Job" {
					m.docs[i].APIVersion = "batch/v1beta1"
				}
			}
		}, `want "batch/v1" for a Job`},
		{"unknown kind", "kinds", func(m *manifests) {
			m.docs = append(m.docs, document{source: "x.yaml#1", header: header{APIVersion: "apps/v1", Kind: "Deployment", Metadata: objectMeta{Name: "x"}}})
		}, `kind "Deployment" is not one`},
		{"no name", "kinds", func(m *manifests) { m.docs[0].Metadata.Name = "" }, "has no metadata.name"},
		{"defined twice", "kinds", func(m *manifests) { m.docs = append(m.docs, m.docs[0]) }, "both define"},
		{"two Jobs", "kinds", func(m *manifests) { m.jobs = append(m.jobs, m.jobs[0]) }, "want exactly one Job, found 2"},

		{"not Indexed", "indexed", func(m *manifests) { m.theJob().Spec.CompletionMode = "NonIndexed" }, "want Indexed"},
		{"parallelism differs", "indexed", func(m *manifests) { m.theJob().Spec.Parallelism = intp(1) }, "completions 3 != parallelism 1"},
		{"zero completions", "indexed", func(m *manifests) {
			m.theJob().Spec.Completions, m.theJob().Spec.Parallelism = intp(0), intp(0)
		}, "completions is 0"},
		{"no completions", "indexed", func(m *manifests) { m.theJob().Spec.Completions = nil }, "must both be set"},
		{"retries per index", "indexed", func(m *manifests) { m.theJob().Spec.BackoffLimitPerIndex = intp(2) }, "backoffLimitPerIndex is 2"},
		{"max failed indexes too low", "indexed", func(m *manifests) { m.theJob().Spec.MaxFailedIndexes = intp(1) }, "maxFailedIndexes must equal completions"},
		{"backoff limit large", "indexed", func(m *manifests) { m.theJob().Spec.BackoffLimit = intp(10) }, "backoffLimit is 10"},
		{"no backoff limit at all", "indexed", func(m *manifests) {
			m.theJob().Spec.BackoffLimit, m.theJob().Spec.BackoffLimitPerIndex, m.theJob().Spec.MaxFailedIndexes = nil, nil, nil
		}, "neither backoffLimit nor backoffLimitPerIndex"},

		{"no index variable", "run id", func(m *manifests) {
			c := m.theContainer()
			c.Env = slices.Delete(c.Env, envIndex(c, "POD_INDEX"), envIndex(c, "POD_INDEX")+1)
		}, "no env variable takes the completion index"},
		{"index declared after use", "run id", func(m *manifests) {
			c := m.theContainer()
			i := envIndex(c, "POD_INDEX")
			idx := c.Env[i]
			c.Env = append(slices.Delete(c.Env, i, i+1), idx)
		}, "uses $(POD_INDEX), which is declared after it"},
		{"run id without the index", "run id", func(m *manifests) {
			c := m.theContainer()
			c.Env[envIndex(c, "LATENCY_RUN_ID")].Value = strp("$(RUN_NAME)")
		}, "want <run>-p$(POD_INDEX)"},
		{"no run id", "run id", func(m *manifests) {
			c := m.theContainer()
			c.Env = slices.Delete(c.Env, envIndex(c, "LATENCY_RUN_ID"), envIndex(c, "LATENCY_RUN_ID")+1)
		}, "LATENCY_RUN_ID is not set"},
		{"run id from elsewhere", "run id", func(m *manifests) {
			c := m.theContainer()
			c.Env[envIndex(c, "LATENCY_RUN_ID")].Value = nil
		}, "must be a value built from the completion index"},
		{"invalid run name", "run id", func(m *manifests) { m.configMaps["latency-config"].Data["RUN_NAME"] = "a/b" }, "invalid run id"},
		{"unknown variable", "run id", func(m *manifests) {
			c := m.theContainer()
			c.Env[envIndex(c, "LATENCY_RUN_ID")].Value = strp("$(RUN)-p$(POD_INDEX)")
		}, "uses $(RUN), which is not declared in env"},
		{"results outside the volume", "run id", func(m *manifests) {
			c := m.theContainer()
			c.Env[envIndex(c, "LATENCY_RESULTS_DIR")].Value = strp("/tmp/$(LATENCY_RUN_ID)")
		}, "is not on the results volume"},
		{"ConfigMap sets the run id", "run id", func(m *manifests) { m.configMaps["latency-config"].Data["LATENCY_RUN_ID"] = "x" }, "sets LATENCY_RUN_ID, which the Job sets per pod"},
		{"duplicate env", "run id", func(m *manifests) {
			c := m.theContainer()
			c.Env = append(c.Env, envVar{Name: "RUN_NAME", Value: strp("x")})
		}, "env RUN_NAME is declared twice"},

		{"ConfigMap missing", "references", func(m *manifests) { delete(m.configMaps, "latency-config") }, `ConfigMap "latency-config", which no manifest defines`},
		{"ConfigMap key missing", "references", func(m *manifests) { delete(m.configMaps["latency-config"].Data, "RUN_NAME") }, `key "RUN_NAME" of ConfigMap latency-config`},
		{"Secret missing", "references", func(m *manifests) { delete(m.secrets, "latency-clouds") }, `Secret "latency-clouds", which no manifest defines`},
		{"Secret key missing", "references", func(m *manifests) {
			podSpecOf(m).Volumes[0].Secret.Items[0].Key = "cloud.yaml"
		}, `key "cloud.yaml" of Secret latency-clouds`},
		{"PVC missing", "references", func(m *manifests) { delete(m.pvcs, "latency-results") }, `PersistentVolumeClaim "latency-results", which no manifest defines`},
		{"PVC not shared", "references", func(m *manifests) { m.pvcs["latency-results"].Spec.AccessModes = []string{"ReadWriteOnce"} }, "must be ReadWriteMany"},

		{"mount of no volume", "mounts", func(m *manifests) { m.theContainer().VolumeMounts[0].Name = "cloudz" }, "names no declared volume"},
		{"volume never mounted", "mounts", func(m *manifests) {
			ps := podSpecOf(m)
			ps.Volumes = append(ps.Volumes, volume{Name: "spare"})
		}, "volume spare is declared but never mounted"},
		{"secret mounted writable", "mounts", func(m *manifests) { m.theContainer().VolumeMounts[0].ReadOnly = false }, "mount credentials readOnly"},
		{"secret mounted elsewhere", "mounts", func(m *manifests) { m.theContainer().VolumeMounts[0].MountPath = "/clouds" }, "gophercloud looks for clouds.yaml"},
		{"results mounted elsewhere", "mounts", func(m *manifests) { m.theContainer().VolumeMounts[1].MountPath = "/data" }, "want /results"},
		{"two mounts on one path", "mounts", func(m *manifests) { m.theContainer().VolumeMounts[1].MountPath = cloudsMount }, "both use /etc/openstack"},

		{"root allowed", "security", func(m *manifests) { podSpecOf(m).SecurityContext.RunAsNonRoot = boolp(false) }, "runAsNonRoot must be true"},
		{"other uid", "security", func(m *manifests) { podSpecOf(m).SecurityContext.RunAsUser = i64p(1001) }, "want the image's uid 1000"},
		{"no fsGroup", "security", func(m *manifests) { podSpecOf(m).SecurityContext.FSGroup = nil }, "fsGroup is unset"},
		{"container as root", "security", func(m *manifests) { m.theContainer().SecurityContext.RunAsUser = i64p(0) }, "runs as uid 0"},
		{"container escalates", "security", func(m *manifests) { m.theContainer().SecurityContext.AllowPrivilegeEscalation = nil }, "allowPrivilegeEscalation: false"},
		{"container privileged", "security", func(m *manifests) { m.theContainer().SecurityContext.Privileged = boolp(true) }, "is privileged"},

		{"restarts", "lifetime", func(m *manifests) { podSpecOf(m).RestartPolicy = "OnFailure" }, "want Never"},
		{"short grace", "lifetime", func(m *manifests) { podSpecOf(m).TerminationGracePeriodSeconds = intp(30) }, "terminationGracePeriodSeconds is 30"},
		{"default grace", "lifetime", func(m *manifests) { podSpecOf(m).TerminationGracePeriodSeconds = nil }, "terminationGracePeriodSeconds is 30"},
		{"unbounded", "lifetime", func(m *manifests) { m.theJob().Spec.ActiveDeadlineSeconds = nil }, "activeDeadlineSeconds must bound"},
		{"deadline before the test timeout", "lifetime", func(m *manifests) { m.theJob().Spec.ActiveDeadlineSeconds = intp(2400) }, "or the Job kills pods before they clean up"},
		{"longer test timeout", "lifetime", func(m *manifests) { m.configMaps["latency-config"].Data["LATENCY_TEST_TIMEOUT"] = "90m" }, "the test timeout 1h30m0s"},
		{"bad test timeout", "lifetime", func(m *manifests) { m.configMaps["latency-config"].Data["LATENCY_TEST_TIMEOUT"] = "forever" }, `LATENCY_TEST_TIMEOUT "forever"`},
		{"no TTL", "lifetime", func(m *manifests) { m.theJob().Spec.TTLSecondsAfterFinished = nil }, "ttlSecondsAfterFinished must be set"},

		{"no image", "container", func(m *manifests) { m.theContainer().Image = " " }, "has no image"},
		{"entry point replaced", "container", func(m *manifests) { m.theContainer().Command = []string{"/bin/sh"} }, "overrides the image's entry point"},
		{"no memory limit", "container", func(m *manifests) { delete(m.theContainer().Resources.Limits, "memory") }, "sets no memory limits"},
		{"no cpu request", "container", func(m *manifests) { delete(m.theContainer().Resources.Requests, "cpu") }, "sets no cpu requests"},
		{"no OS_CLOUD", "container", func(m *manifests) { delete(m.configMaps["latency-config"].Data, "OS_CLOUD") }, "OS_CLOUD is set neither"},
		{"two containers", "container", func(m *manifests) {
			ps := podSpecOf(m)
			ps.Containers = append(ps.Containers, ps.Containers[0])
		}, "exactly one container"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := fresh(t)
			require.Empty(t, runK8sChecks(m, u)[tc.check], "the manifests pass %s before the edit", tc.check)
			tc.edit(m)
			got := runK8sChecks(m, u)[tc.check]
			require.NotEmpty(t, got, "check %s missed it", tc.check)
			assert.True(t, slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, tc.want) }),
				"check %s: want a problem containing %q, got %q", tc.check, tc.want, got)
		})
	}
	for _, c := range k8sChecks {
		name := c.name
		assert.True(t, slices.ContainsFunc(tests, func(tc brokenManifest) bool { return tc.check == name }),
			"no broken manifest exercises check %s", name)
	}
}

func TestParseManifestsErrors(t *testing.T) {
	job := `apiVersion: batch/v1
kind: Job
metadata:
  name: j
spec:
  completionMode: Indexed
`
	tests := []struct {
		name, text, want string
	}{
		{"not YAML", "a: [", "did not find expected"},
		{"misspelt field", strings.Replace(job, "completionMode", "completionmode", 1), "field completionmode not found"},
		{"misspelt nested field", job + "  template:\n    spec:\n      restartpolicy: Never\n", "field restartpolicy not found"},
		{"number in a ConfigMap", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  LATENCY_SAMPLES: 60\n", `"60" must be a string (quote it)`},
		{"boolean env value", job + "  template:\n    spec:\n      containers:\n        - name: c\n          env:\n            - name: X\n              value: true\n", `"true" must be a string`},
		{"list where a map belongs", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: [a]\n", "cannot unmarshal"},
		{"bad quantity", job + "  template:\n    spec:\n      containers:\n        - name: c\n          resources:\n            limits:\n              cpu: [1]\n", "not a resource quantity"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseManifests(map[string]string{"x.yaml": tc.text})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), "x.yaml")
		})
	}
	t.Run("empty documents are skipped", func(t *testing.T) {
		m, err := parseManifests(map[string]string{"x.yaml": "# comment\n---\n---\n" + job})
		require.NoError(t, err)
		assert.Len(t, m.docs, 1)
		assert.Len(t, m.jobs, 1)
	})
}
