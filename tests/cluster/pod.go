package main

// One pod's life on the node, in the order a kubelet goes through it: images, then the
// containers' configuration (Secrets, ConfigMaps, volumes), then the containers, then their
// end — by themselves, by activeDeadlineSeconds, or by deletion (SIGTERM, the grace period,
// SIGKILL, the final status, then the pod is removed).

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// Backoffs are the kubelet's first steps, shortened: tests wait on them.
const (
	imageRetry  = 3 * time.Second
	configRetry = 2 * time.Second
)

type podRun struct {
	a    *agent
	pod  *corev1.Pod
	dir  string
	done chan struct{}

	stopOnce sync.Once
	stop     chan struct{}
	mu       sync.Mutex
	grace    time.Duration
	logs     map[string]*containerLog
}

// containerLog is what the log endpoint serves for one container: one file per attempt.
type containerLog struct {
	mu       sync.Mutex
	attempts []string
	running  bool
}

func newPodRun(a *agent, pod *corev1.Pod) *podRun {
	return &podRun{a: a, pod: pod.DeepCopy(), dir: a.podDir(pod), done: make(chan struct{}), stop: make(chan struct{}), logs: map[string]*containerLog{}}
}

// requestStop asks the run to end its containers with this grace period; the first ask wins,
// as the kubelet keeps the grace of the deletion that started the shutdown.
func (r *podRun) requestStop(grace time.Duration) {
	r.stopOnce.Do(func() {
		r.mu.Lock()
		r.grace = grace
		r.mu.Unlock()
		close(r.stop)
	})
}

func (r *podRun) stopped() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

// pause waits d or until the pod is stopped; false when stopped.
func (r *podRun) pause(d time.Duration) bool {
	select {
	case <-r.stop:
		return false
	case <-time.After(d):
		return true
	}
}

func (r *podRun) run(ctx context.Context) {
	defer close(r.done)
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		r.a.logf("pod %s: %v", r.key(), err)
		return
	}
	ran := r.runContainers(ctx)
	if !ran {
		// Deleted before any container started: what a kubelet reports for containers it
		// never ran when the pod goes away.
		r.setStatus(ctx, func(s *corev1.PodStatus) {
			s.Phase = corev1.PodFailed
			for i := range s.ContainerStatuses {
				s.ContainerStatuses[i].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
					ExitCode: 137, Reason: "ContainerStatusUnknown",
					Message: "The container could not be located when the pod was terminated",
				}}
			}
			setPodConditions(s, false, "PodCompleted")
		})
	}
	if r.stopped() {
		r.a.remove(ctx, r.pod)
	}
}

// runContainers takes the pod from Pending to its end; false if no container ever started.
func (r *podRun) runContainers(ctx context.Context) bool {
	pod := r.pod
	r.setStatus(ctx, func(s *corev1.PodStatus) {
		s.HostIP, s.HostIPs = "127.0.0.1", []corev1.HostIP{{IP: "127.0.0.1"}}
		if s.StartTime == nil {
			now := metav1.Now()
			s.StartTime = &now
		}
		s.ContainerStatuses = waitingStatuses(pod, "ContainerCreating", "")
		setPodConditions(s, false, "ContainersNotReady")
	})
	if len(pod.Spec.InitContainers) > 0 {
		r.waiting(ctx, "CreateContainerError", "the node agent does not run init containers")
		<-r.stop
		return false
	}

	for attempt := 0; ; attempt++ {
		missing := r.missingImage()
		if missing == "" {
			break
		}
		reason, message := "ErrImagePull", fmt.Sprintf("Failed to pull image %q: not on this node (the node agent has only the images it was started with) and it pulls nothing", missing)
		if attempt > 0 {
			reason, message = "ImagePullBackOff", fmt.Sprintf("Back-off pulling image %q: ErrImagePull: %s", missing, message)
		}
		r.waiting(ctx, reason, message)
		r.a.event(ctx, pod, corev1.EventTypeWarning, map[bool]string{true: "BackOff", false: "Failed"}[attempt > 0], message)
		if !r.pause(imageRetry) {
			return false
		}
	}

	var specs []*containerSpec
	for {
		var failure *configError
		specs, failure = r.a.resolveContainers(ctx, pod, r.dir)
		if failure == nil {
			break
		}
		r.waiting(ctx, failure.reason, failure.message)
		r.a.event(ctx, pod, corev1.EventTypeWarning, failure.event, failure.message)
		if !r.pause(configRetry) {
			return false
		}
	}
	return r.supervise(ctx, specs)
}

func (r *podRun) missingImage() string {
	for _, c := range r.pod.Spec.Containers {
		if !r.a.images[normalizeImage(c.Image)] && !r.a.runtime.hasImage(c.Image) {
			return c.Image
		}
	}
	return ""
}

// waiting reports every container waiting with this reason, the pod still Pending.
func (r *podRun) waiting(ctx context.Context, reason, message string) {
	r.setStatus(ctx, func(s *corev1.PodStatus) {
		s.ContainerStatuses = waitingStatuses(r.pod, reason, message)
		setPodConditions(s, false, "ContainersNotReady")
	})
}

func waitingStatuses(pod *corev1.Pod, reason, message string) []corev1.ContainerStatus {
	statuses := make([]corev1.ContainerStatus, 0, len(pod.Spec.Containers))
	for _, c := range pod.Spec.Containers {
		statuses = append(statuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}},
		})
	}
	return statuses
}

// setStatus applies change to the pod's current status and writes it through pods/status,
// keeping what others own there (PodScheduled from the scheduler, DisruptionTarget from the
// API server's eviction).
func (r *podRun) setStatus(ctx context.Context, change func(*corev1.PodStatus)) {
	pods := r.a.client.CoreV1().Pods(r.pod.Namespace)
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		current, err := pods.Get(ctx, r.pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if current.UID != r.pod.UID {
			return nil
		}
		change(&current.Status)
		_, err = pods.UpdateStatus(ctx, current, metav1.UpdateOptions{})
		return err
	})
	if err != nil && !errors.IsNotFound(err) && ctx.Err() == nil {
		r.a.logf("pod %s: status: %v", r.key(), err)
	}
}

// setPodConditions sets the conditions a kubelet owns; ready is whether every container runs.
func setPodConditions(s *corev1.PodStatus, ready bool, reason string) {
	now := metav1.Now()
	set := func(kind corev1.PodConditionType, status bool, reason string) {
		value := corev1.ConditionFalse
		if status {
			value, reason = corev1.ConditionTrue, ""
		}
		for i := range s.Conditions {
			if s.Conditions[i].Type == kind {
				if s.Conditions[i].Status != value {
					s.Conditions[i].LastTransitionTime = now
				}
				s.Conditions[i].Status, s.Conditions[i].Reason = value, reason
				return
			}
		}
		s.Conditions = append(s.Conditions, corev1.PodCondition{Type: kind, Status: value, Reason: reason, LastTransitionTime: now})
	}
	set(corev1.PodReadyToStartContainers, true, "")
	set(corev1.PodInitialized, true, "")
	set(corev1.PodReady, ready, reason)
	set(corev1.ContainersReady, ready, reason)
}

func (r *podRun) key() string { return r.pod.Namespace + "/" + r.pod.Name }

func (a *agent) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "node: "+format+"\n", args...)
}

// event records what a kubelet would tell `kubectl describe` (image pulls, missing Secrets).
func (a *agent) event(ctx context.Context, pod *corev1.Pod, kind, reason, message string) {
	now := metav1.Now()
	_, err := a.client.CoreV1().Events(pod.Namespace).Create(ctx, &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: pod.Name + ".", Namespace: pod.Namespace},
		InvolvedObject: corev1.ObjectReference{
			Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
			FieldPath: "spec.containers{" + pod.Spec.Containers[0].Name + "}",
		},
		Reason: reason, Message: message, Type: kind, Count: 1,
		FirstTimestamp: now, LastTimestamp: now,
		Source: corev1.EventSource{Component: "kubelet", Host: a.node},
	}, metav1.CreateOptions{})
	if err != nil && ctx.Err() == nil && !errors.IsNotFound(err) && !errors.IsForbidden(err) {
		a.logf("event for %s/%s: %v", pod.Namespace, pod.Name, err)
	}
}
