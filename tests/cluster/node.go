package main

// The node agent: what a kubelet does for the pods bound to one Node, against the real API
// server, with containers run as host processes (or in Podman with --podman). A real kubelet
// cannot run on these machines (cgroup v1, containerd 1.6, no CAP_SYS_RESOURCE); everything
// above the node — API server, scheduler, Job controller, garbage collector — is Kubernetes' own.

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

type agent struct {
	client  kubernetes.Interface
	node    string
	dir     string
	images  map[string]bool
	runtime containerRuntime
	// What every container starts with, as an image's ENV would give it.
	imageEnv []string
	// The API server's address, for the KUBERNETES_SERVICE_* variables a kubelet sets.
	apiHost, apiPort string

	mu   sync.Mutex
	pods map[types.UID]*podRun
	// The newest run of each namespace/name, for the log endpoint.
	byName map[string]*podRun
}

func runNode(args []string) int {
	flags := flag.NewFlagSet("node", flag.ContinueOnError)
	kubeconfig := flags.String("kubeconfig", "", "credentials for the API server")
	name := flags.String("name", "node-1", "the Node's name")
	dir := flags.String("dir", "", "where pods' directories, volumes and logs go")
	port := flags.Int("port", 10250, "the kubelet port (HTTPS, container logs)")
	certFile := flags.String("tls-cert-file", "", "serving certificate for the kubelet port")
	keyFile := flags.String("tls-private-key-file", "", "its key")
	cpu := flags.String("cpu", "4", "allocatable cpu")
	memory := flags.String("memory", "8Gi", "allocatable memory")
	maxPods := flags.String("pods", "110", "allocatable pods")
	usePodman := flags.Bool("podman", false, "run containers in Podman instead of as host processes")
	var images stringList
	flags.Var(&images, "image", "an image this node has (repeatable); pods with any other wait in ErrImagePull")
	var imageEnv stringList
	flags.Var(&imageEnv, "env", "NAME=VALUE every container starts with, as an image's ENV (repeatable)")
	if err := flags.Parse(args); err != nil {
		return 64
	}
	if *kubeconfig == "" || *dir == "" || *certFile == "" || *keyFile == "" {
		fmt.Fprintln(os.Stderr, "node: --kubeconfig, --dir, --tls-cert-file and --tls-private-key-file are required")
		return 64
	}
	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintf(os.Stderr, "node: %v\n", err)
		return 1
	}
	config.QPS, config.Burst = 200, 400
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		fmt.Fprintf(os.Stderr, "node: %v\n", err)
		return 1
	}
	a := &agent{
		client: client, node: *name, dir: *dir, images: map[string]bool{},
		pods: map[types.UID]*podRun{}, byName: map[string]*podRun{}, imageEnv: imageEnv,
	}
	if host := strings.TrimPrefix(strings.TrimPrefix(config.Host, "https://"), "http://"); host != "" {
		a.apiHost, a.apiPort, _ = strings.Cut(host, ":")
	}
	for _, image := range images {
		a.images[normalizeImage(image)] = true
	}
	if *usePodman {
		a.runtime = newPodman(*dir)
	} else {
		a.runtime = hostProcesses{}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-stop; cancel() }()

	if err := a.register(ctx, *port, *cpu, *memory, *maxPods); err != nil {
		fmt.Fprintf(os.Stderr, "node: registering %s: %v\n", *name, err)
		return 1
	}
	go func() {
		if err := a.serveLogs(*port, *certFile, *keyFile); err != nil {
			fmt.Fprintf(os.Stderr, "node: kubelet port: %v\n", err)
			cancel()
		}
	}()

	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "spec.nodeName=" + *name }))
	podInformer := factory.Core().V1().Pods().Informer()
	_, _ = podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { a.observe(ctx, obj.(*corev1.Pod)) },
		UpdateFunc: func(_, obj any) { a.observe(ctx, obj.(*corev1.Pod)) },
		DeleteFunc: func(obj any) {
			if pod, ok := obj.(*corev1.Pod); ok {
				a.forget(pod.UID)
			} else if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				if pod, ok := tomb.Obj.(*corev1.Pod); ok {
					a.forget(pod.UID)
				}
			}
		},
	})
	factory.Start(ctx.Done())
	fmt.Fprintf(os.Stderr, "node: %s ready (%s)\n", *name, a.runtime.describe())
	<-ctx.Done()
	a.shutdown()
	return 0
}

// register creates the Node (or takes over one left by an earlier agent) and marks it Ready.
func (a *agent) register(ctx context.Context, port int, cpu, memory, pods string) error {
	quantities := corev1.ResourceList{}
	for name, value := range map[corev1.ResourceName]string{
		corev1.ResourceCPU: cpu, corev1.ResourceMemory: memory, corev1.ResourcePods: pods,
		corev1.ResourceEphemeralStorage: "100Gi",
	} {
		q, err := resource.ParseQuantity(value)
		if err != nil {
			return fmt.Errorf("%s %q: %w", name, value, err)
		}
		quantities[name] = q
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:   a.node,
		Labels: map[string]string{"kubernetes.io/hostname": a.node, "kubernetes.io/os": "linux", "kubernetes.io/arch": goarch()},
	}}
	created, err := a.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if errors.IsAlreadyExists(err) {
		created, err = a.client.CoreV1().Nodes().Get(ctx, a.node, metav1.GetOptions{})
	}
	if err != nil {
		return err
	}
	// The API server's TaintNodesByCondition admission gives a new Node the not-ready taint;
	// the node lifecycle controller would lift it once the Node is Ready. That controller
	// watches kubelet heartbeats this agent does not fake, so the agent lifts it itself.
	if len(created.Spec.Taints) > 0 {
		created.Spec.Taints = nil
		if created, err = a.client.CoreV1().Nodes().Update(ctx, created, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	now := metav1.Now()
	created.Status = corev1.NodeStatus{
		Capacity:    quantities,
		Allocatable: quantities,
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "node agent is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", LastHeartbeatTime: now, LastTransitionTime: now},
		},
		// Only the loopback address: the API server dials it for pods/log.
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(port)}},
		NodeInfo: corev1.NodeSystemInfo{
			OperatingSystem: "linux", Architecture: goarch(), KubeletVersion: "v1.37.2",
			ContainerRuntimeVersion: a.runtime.describe(),
		},
	}
	_, err = a.client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
	return err
}

// observe starts a run for a pod seen for the first time and tells a known run about deletion.
func (a *agent) observe(ctx context.Context, pod *corev1.Pod) {
	a.mu.Lock()
	run, known := a.pods[pod.UID]
	if !known {
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			a.mu.Unlock()
			// Finished before this agent started (a restart): only a pending deletion is left.
			if pod.DeletionTimestamp != nil {
				a.remove(ctx, pod)
			}
			return
		}
		run = newPodRun(a, pod)
		a.pods[pod.UID] = run
		a.byName[pod.Namespace+"/"+pod.Name] = run
		a.mu.Unlock()
		go run.run(ctx)
	} else {
		a.mu.Unlock()
	}
	if pod.DeletionTimestamp != nil {
		grace := int64(30)
		if pod.DeletionGracePeriodSeconds != nil {
			grace = *pod.DeletionGracePeriodSeconds
		}
		run.requestStop(time.Duration(grace) * time.Second)
	}
}

func (a *agent) forget(uid types.UID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if run, ok := a.pods[uid]; ok {
		run.requestStop(0)
		delete(a.pods, uid)
	}
}

// remove finishes a graceful deletion as a kubelet does: once the pod is terminal, delete it
// with grace 0, on the condition that it is still the same pod.
func (a *agent) remove(ctx context.Context, pod *corev1.Pod) {
	zero := int64(0)
	uid := pod.UID
	err := a.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid},
	})
	if err != nil && !errors.IsNotFound(err) && !errors.IsConflict(err) {
		fmt.Fprintf(os.Stderr, "node: deleting pod %s/%s: %v\n", pod.Namespace, pod.Name, err)
	}
}

func (a *agent) run(namespace, name string) *podRun {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.byName[namespace+"/"+name]
}

// shutdown stops every container on the way out, so no process outlives the agent.
func (a *agent) shutdown() {
	a.mu.Lock()
	runs := make([]*podRun, 0, len(a.pods))
	for _, run := range a.pods {
		runs = append(runs, run)
	}
	a.mu.Unlock()
	for _, run := range runs {
		run.requestStop(2 * time.Second)
	}
	for _, run := range runs {
		select {
		case <-run.done:
		case <-time.After(10 * time.Second):
		}
	}
}

func (a *agent) podDir(pod *corev1.Pod) string {
	return filepath.Join(a.dir, "pods", pod.Namespace+"_"+pod.Name+"_"+string(pod.UID))
}
