package main

// From a pod's spec to what the runtime starts: the environment (values, $(VAR) references,
// Secrets, ConfigMaps, the downward API), the volumes written into the pod's directory, and the
// command line.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type containerSpec struct {
	name, image, id string
	argv            []string
	env             []string
	workingDir      string
	mounts          []mount
	// The termination message file on the host, and where the container expects it.
	terminationFile, terminationPath string
	fallbackToLogs                   bool
	user, group                      *int64
	readOnlyRoot                     bool
	memoryLimit                      int64
}

type mount struct {
	host, container string
	readOnly        bool
}

// configError is why a container cannot be created yet; the kubelet keeps retrying.
type configError struct {
	reason, event, message string
}

func goarch() string { return runtime.GOARCH }

// normalizeImage makes "busybox" and "docker.io/library/busybox:latest" the same image.
func normalizeImage(image string) string {
	name := image
	if !strings.Contains(name, "@") {
		last := name[strings.LastIndex(name, "/")+1:]
		if !strings.Contains(last, ":") {
			name += ":latest"
		}
	}
	first, _, found := strings.Cut(name, "/")
	if !found || !(strings.ContainsAny(first, ".:") || first == "localhost") {
		if !found {
			name = "library/" + name
		}
		name = "docker.io/" + name
	}
	return name
}

func (a *agent) resolveContainers(ctx context.Context, pod *corev1.Pod, dir string) ([]*containerSpec, *configError) {
	volumes, failure := a.materializeVolumes(ctx, pod, dir)
	if failure != nil {
		return nil, failure
	}
	specs := make([]*containerSpec, 0, len(pod.Spec.Containers))
	for _, c := range pod.Spec.Containers {
		spec, failure := a.resolveContainer(ctx, pod, &c, dir, volumes)
		if failure != nil {
			return nil, failure
		}
		specs = append(specs, spec)
	}
	return specs, nil
}

func (a *agent) resolveContainer(ctx context.Context, pod *corev1.Pod, c *corev1.Container, dir string, volumes map[string]string) (*containerSpec, *configError) {
	spec := &containerSpec{
		name: c.Name, image: c.Image, workingDir: c.WorkingDir,
		id:              fmt.Sprintf("%s-%s-%s", pod.UID, c.Name, randomSuffix()),
		terminationFile: filepath.Join(dir, c.Name+"-termination-log"),
		terminationPath: c.TerminationMessagePath,
		fallbackToLogs:  c.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError,
	}
	if sc := pod.Spec.SecurityContext; sc != nil {
		spec.user, spec.group = sc.RunAsUser, sc.RunAsGroup
	}
	if spec.terminationPath == "" {
		spec.terminationPath = "/dev/termination-log"
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			spec.user = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			spec.group = sc.RunAsGroup
		}
		spec.readOnlyRoot = sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
	}
	if limit, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
		spec.memoryLimit = limit.Value()
	}
	for _, m := range c.VolumeMounts {
		host, ok := volumes[m.Name]
		if !ok {
			return nil, &configError{"CreateContainerConfigError", "Failed", fmt.Sprintf("volume %q not found in the pod", m.Name)}
		}
		if m.SubPath != "" {
			host = filepath.Join(host, m.SubPath)
		}
		spec.mounts = append(spec.mounts, mount{host: host, container: m.MountPath, readOnly: m.ReadOnly})
	}
	// Longest mount first, so a path is rewritten by the mount that holds it.
	sort.Slice(spec.mounts, func(i, j int) bool { return len(spec.mounts[i].container) > len(spec.mounts[j].container) })

	env, order, failure := a.environment(ctx, pod, c)
	if failure != nil {
		return nil, failure
	}
	expand := func(s string) string { return expandReferences(s, env) }
	for _, arg := range append(append([]string{}, c.Command...), c.Args...) {
		spec.argv = append(spec.argv, expand(arg))
	}
	for _, name := range order {
		spec.env = append(spec.env, name+"="+env[name])
	}
	a.runtime.adapt(spec, dir)
	return spec, nil
}

// environment builds a container's variables in the kubelet's order: its own service
// variables, envFrom, then env (each able to refer to those before it as $(NAME)).
func (a *agent) environment(ctx context.Context, pod *corev1.Pod, c *corev1.Container) (map[string]string, []string, *configError) {
	env := map[string]string{}
	var order []string
	put := func(name, value string) {
		if _, seen := env[name]; !seen {
			order = append(order, name)
		}
		env[name] = value
	}
	for _, kv := range a.imageEnv {
		name, value, _ := strings.Cut(kv, "=")
		put(name, value)
	}
	put("HOSTNAME", pod.Name)
	if a.apiHost != "" {
		put("KUBERNETES_SERVICE_HOST", a.apiHost)
		put("KUBERNETES_SERVICE_PORT", a.apiPort)
	}
	for _, source := range c.EnvFrom {
		var data map[string]string
		switch {
		case source.SecretRef != nil:
			secret, failure := a.secret(ctx, pod.Namespace, source.SecretRef.Name, source.SecretRef.Optional)
			if failure != nil {
				return nil, nil, failure
			}
			data = secret
		case source.ConfigMapRef != nil:
			cm, failure := a.configMap(ctx, pod.Namespace, source.ConfigMapRef.Name, source.ConfigMapRef.Optional)
			if failure != nil {
				return nil, nil, failure
			}
			data = cm
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			put(source.Prefix+k, data[k])
		}
	}
	for _, v := range c.Env {
		if v.ValueFrom == nil {
			put(v.Name, expandReferences(v.Value, env))
			continue
		}
		from := v.ValueFrom
		switch {
		case from.SecretKeyRef != nil:
			ref := from.SecretKeyRef
			data, failure := a.secret(ctx, pod.Namespace, ref.Name, ref.Optional)
			if failure == nil {
				failure = keyOf(v.Name, data, ref.Key, ref.Optional, "Secret "+pod.Namespace+"/"+ref.Name, put)
			}
			if failure != nil {
				return nil, nil, failure
			}
		case from.ConfigMapKeyRef != nil:
			ref := from.ConfigMapKeyRef
			data, failure := a.configMap(ctx, pod.Namespace, ref.Name, ref.Optional)
			if failure == nil {
				failure = keyOf(v.Name, data, ref.Key, ref.Optional, "ConfigMap "+pod.Namespace+"/"+ref.Name, put)
			}
			if failure != nil {
				return nil, nil, failure
			}
		case from.FieldRef != nil:
			value, err := fieldValue(pod, from.FieldRef.FieldPath)
			if err != nil {
				return nil, nil, &configError{"CreateContainerConfigError", "Failed", err.Error()}
			}
			put(v.Name, value)
		case from.ResourceFieldRef != nil:
			put(v.Name, resourceValue(c, from.ResourceFieldRef))
		}
	}
	return env, order, nil
}

func isTrue(b *bool) bool { return b != nil && *b }

// keyOf sets variable name to data[key]; a missing key is skipped when optional, otherwise
// what a kubelet reports for it. `what` names the Secret or ConfigMap.
func keyOf(name string, data map[string]string, key string, optional *bool, what string, put func(string, string)) *configError {
	value, ok := data[key]
	switch {
	case ok:
		put(name, value)
	case !isTrue(optional):
		return &configError{"CreateContainerConfigError", "Failed", fmt.Sprintf("couldn't find key %s in %s", key, what)}
	}
	return nil
}

func (a *agent) secret(ctx context.Context, namespace, name string, optional *bool) (map[string]string, *configError) {
	secret, err := a.client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if errors.IsNotFound(err) {
		if isTrue(optional) {
			return map[string]string{}, nil
		}
		return nil, &configError{"CreateContainerConfigError", "Failed", fmt.Sprintf("secret %q not found", name)}
	}
	if err != nil {
		return nil, &configError{"CreateContainerConfigError", "Failed", err.Error()}
	}
	data := map[string]string{}
	for k, v := range secret.Data {
		data[k] = string(v)
	}
	for k, v := range secret.StringData {
		data[k] = v
	}
	return data, nil
}

func (a *agent) configMap(ctx context.Context, namespace, name string, optional *bool) (map[string]string, *configError) {
	cm, err := a.client.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
	if errors.IsNotFound(err) {
		if isTrue(optional) {
			return map[string]string{}, nil
		}
		return nil, &configError{"CreateContainerConfigError", "Failed", fmt.Sprintf("configmap %q not found", name)}
	}
	if err != nil {
		return nil, &configError{"CreateContainerConfigError", "Failed", err.Error()}
	}
	data := map[string]string{}
	for k, v := range cm.Data {
		data[k] = v
	}
	for k, v := range cm.BinaryData {
		data[k] = string(v)
	}
	return data, nil
}

// fieldValue is the downward API for the fields a pod may read of itself.
func fieldValue(pod *corev1.Pod, path string) (string, error) {
	if key, ok := bracketKey(path, "metadata.labels"); ok {
		return pod.Labels[key], nil
	}
	if key, ok := bracketKey(path, "metadata.annotations"); ok {
		return pod.Annotations[key], nil
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.podIP", "status.hostIPs", "status.podIPs":
		return "127.0.0.1", nil
	}
	return "", fmt.Errorf("unsupported fieldRef %q", path)
}

func bracketKey(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok {
		return "", false
	}
	key, ok := strings.CutSuffix(rest, "']")
	return key, ok
}

func resourceValue(c *corev1.Container, ref *corev1.ResourceFieldSelector) string {
	kind, name, _ := strings.Cut(ref.Resource, ".")
	list := c.Resources.Limits
	if kind == "requests" {
		list = c.Resources.Requests
	}
	q, ok := list[corev1.ResourceName(name)]
	if !ok {
		return ""
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		return q.String()
	}
	return fmt.Sprint((q.MilliValue() + divisor.MilliValue() - 1) / divisor.MilliValue())
}

// expandReferences replaces $(NAME) with a defined variable's value, $$ with $, and leaves any
// other reference as written, as the kubelet does.
func expandReferences(s string, env map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			out.WriteByte(s[i])
			continue
		}
		switch next := s[i+1]; {
		case next == '$':
			out.WriteByte('$')
			i++
		case next == '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				out.WriteByte('$')
				continue
			}
			name := s[i+2 : i+2+end]
			if value, ok := env[name]; ok {
				out.WriteString(value)
			} else {
				out.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			out.WriteByte('$')
		}
	}
	return out.String()
}

// materializeVolumes writes each volume of the pod into its directory and returns where.
func (a *agent) materializeVolumes(ctx context.Context, pod *corev1.Pod, dir string) (map[string]string, *configError) {
	paths := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		path := filepath.Join(dir, "volumes", v.Name)
		if v.HostPath != nil {
			paths[v.Name] = v.HostPath.Path
			continue
		}
		if err := os.MkdirAll(path, 0o777); err != nil {
			return nil, &configError{"CreateContainerError", "Failed", err.Error()}
		}
		_ = os.Chmod(path, 0o777)
		paths[v.Name] = path
		var failure *configError
		switch {
		case v.Secret != nil:
			failure = a.writeSecret(ctx, pod, v.Name, path, v.Secret.SecretName, v.Secret.Items, v.Secret.DefaultMode, v.Secret.Optional)
		case v.ConfigMap != nil:
			failure = a.writeConfigMap(ctx, pod, v.Name, path, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.DefaultMode, v.ConfigMap.Optional)
		case v.Projected != nil:
			for _, source := range v.Projected.Sources {
				switch {
				case source.Secret != nil:
					failure = a.writeSecret(ctx, pod, v.Name, path, source.Secret.Name, source.Secret.Items, v.Projected.DefaultMode, source.Secret.Optional)
				case source.ConfigMap != nil:
					failure = a.writeConfigMap(ctx, pod, v.Name, path, source.ConfigMap.Name, source.ConfigMap.Items, v.Projected.DefaultMode, source.ConfigMap.Optional)
				case source.ServiceAccountToken != nil:
					failure = a.writeToken(ctx, pod, v.Name, path, source.ServiceAccountToken)
				case source.DownwardAPI != nil:
					failure = writeDownward(pod, path, source.DownwardAPI.Items)
				}
				if failure != nil {
					break
				}
			}
		case v.DownwardAPI != nil:
			failure = writeDownward(pod, path, v.DownwardAPI.Items)
		}
		if failure != nil {
			return nil, failure
		}
		applyFSGroup(pod, path)
	}
	return paths, nil
}

// applyFSGroup gives a volume's files to the pod's fsGroup, as a kubelet does, so a container
// running as another user than root can read what its mode lets the group read.
func applyFSGroup(pod *corev1.Pod, dir string) {
	sc := pod.Spec.SecurityContext
	if sc == nil || sc.FSGroup == nil {
		return
	}
	group := int(*sc.FSGroup)
	_ = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err == nil {
			_ = os.Lchown(path, -1, group)
			if info.IsDir() {
				_ = os.Chmod(path, info.Mode().Perm()|os.ModeSetgid)
			}
		}
		return nil
	})
}

// mountFailure is how a kubelet reports a volume it cannot set up: the container waits in
// ContainerCreating, with a FailedMount event naming the volume and what is missing.
func mountFailure(volume string, failure *configError) *configError {
	return &configError{"ContainerCreating", "FailedMount", fmt.Sprintf("MountVolume.SetUp failed for volume %q : %s", volume, failure.message)}
}

func (a *agent) writeSecret(ctx context.Context, pod *corev1.Pod, volume, dir, name string, items []corev1.KeyToPath, mode *int32, optional *bool) *configError {
	data, failure := a.secret(ctx, pod.Namespace, name, optional)
	if failure != nil {
		return mountFailure(volume, failure)
	}
	return writeItems(volume, dir, data, items, mode, 0o644, "Secret "+pod.Namespace+"/"+name)
}

func (a *agent) writeConfigMap(ctx context.Context, pod *corev1.Pod, volume, dir, name string, items []corev1.KeyToPath, mode *int32, optional *bool) *configError {
	data, failure := a.configMap(ctx, pod.Namespace, name, optional)
	if failure != nil {
		return mountFailure(volume, failure)
	}
	return writeItems(volume, dir, data, items, mode, 0o644, "ConfigMap "+pod.Namespace+"/"+name)
}

func writeItems(volume, dir string, data map[string]string, items []corev1.KeyToPath, mode *int32, fallback os.FileMode, what string) *configError {
	fileMode := fallback
	if mode != nil {
		fileMode = os.FileMode(*mode)
	}
	if len(items) == 0 {
		for key := range data {
			items = append(items, corev1.KeyToPath{Key: key, Path: key})
		}
	}
	for _, item := range items {
		value, ok := data[item.Key]
		if !ok {
			return mountFailure(volume, &configError{message: fmt.Sprintf("couldn't find key %s in %s", item.Key, what)})
		}
		m := fileMode
		if item.Mode != nil {
			m = os.FileMode(*item.Mode)
		}
		if failure := writeFile(filepath.Join(dir, item.Path), []byte(value), m); failure != nil {
			return failure
		}
	}
	return nil
}

func writeFile(path string, data []byte, mode os.FileMode) *configError {
	if err := os.MkdirAll(filepath.Dir(path), 0o777); err != nil {
		return &configError{"CreateContainerError", "Failed", err.Error()}
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		return &configError{"CreateContainerError", "Failed", err.Error()}
	}
	// The host process may run as another user: the mode says who reads it, not the umask.
	_ = os.Chmod(path, mode)
	return nil
}

func (a *agent) writeToken(ctx context.Context, pod *corev1.Pod, volume, dir string, source *corev1.ServiceAccountTokenProjection) *configError {
	request := &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{
		ExpirationSeconds: source.ExpirationSeconds,
		BoundObjectRef:    &authv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if source.Audience != "" {
		request.Spec.Audiences = []string{source.Audience}
	}
	account := pod.Spec.ServiceAccountName
	if account == "" {
		account = "default"
	}
	token, err := a.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, account, request, metav1.CreateOptions{})
	if err != nil {
		return mountFailure(volume, &configError{message: err.Error()})
	}
	return writeFile(filepath.Join(dir, source.Path), []byte(token.Status.Token), 0o644)
}

func writeDownward(pod *corev1.Pod, dir string, items []corev1.DownwardAPIVolumeFile) *configError {
	for _, item := range items {
		if item.FieldRef == nil {
			continue
		}
		value, err := fieldValue(pod, item.FieldRef.FieldPath)
		if err != nil {
			return &configError{"CreateContainerConfigError", "Failed", err.Error()}
		}
		if failure := writeFile(filepath.Join(dir, item.Path), []byte(value), 0o644); failure != nil {
			return failure
		}
	}
	return nil
}
