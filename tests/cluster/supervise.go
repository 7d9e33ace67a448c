package main

// Running a pod's containers and reporting how they end.

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The kubelet reads at most this much of a termination message file.
const terminationMessageLimit = 4096

// A test's stand-in for the kernel's OOM killer ending a whole container: this many seconds
// (a decimal) after a container starts, the node kills it with SIGKILL and reports it
// OOMKilled, exit code 137, as a kubelet reports a container the kernel killed for memory.
// Only for what no real limit can produce here: the worker itself killed, not its task.
const annotationOOMKillAfter = "cluster.wove.test/oom-kill-after"

type exit struct {
	code     int
	oom      bool
	started  metav1.Time
	finished metav1.Time
	// For a container that could not start at all (StartError).
	startErr error
}

// supervise runs the containers until they end, restarting them as restartPolicy says.
func (r *podRun) supervise(ctx context.Context, specs []*containerSpec) bool {
	pod := r.pod
	restarts := make([]int32, len(specs))
	last := make([]*corev1.ContainerState, len(specs))
	var deadline <-chan time.Time
	if pod.Spec.ActiveDeadlineSeconds != nil {
		started := time.Now()
		if pod.Status.StartTime != nil {
			started = pod.Status.StartTime.Time
		}
		deadline = time.After(time.Until(started.Add(time.Duration(*pod.Spec.ActiveDeadlineSeconds) * time.Second)))
	}
	for {
		exits, deadlineHit := r.runOnce(ctx, specs, restarts, last, deadline)
		policy := pod.Spec.RestartPolicy
		failed := false
		for _, e := range exits {
			failed = failed || e.code != 0
		}
		again := !r.stopped() && !deadlineHit &&
			(policy == corev1.RestartPolicyAlways || (policy == corev1.RestartPolicyOnFailure && failed))
		statuses := make([]corev1.ContainerStatus, len(specs))
		for i, spec := range specs {
			statuses[i] = r.terminatedStatus(spec, exits[i], restarts[i], last[i])
		}
		if again {
			// CrashLoopBackOff, the kubelet's first step of it.
			for i := range statuses {
				state := statuses[i].State
				last[i] = &state
				restarts[i]++
				statuses[i].LastTerminationState = state
				statuses[i].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
					Message: fmt.Sprintf("back-off 10s restarting failed container=%s pod=%s_%s(%s)", specs[i].name, pod.Name, pod.Namespace, pod.UID)}}
			}
			r.setStatus(ctx, func(s *corev1.PodStatus) {
				s.ContainerStatuses = statuses
				setPodConditions(s, false, "ContainersNotReady")
			})
			if r.pause(10 * time.Second) {
				continue
			}
		}
		r.setStatus(ctx, func(s *corev1.PodStatus) {
			s.ContainerStatuses = statuses
			s.Phase = corev1.PodSucceeded
			if failed || deadlineHit {
				s.Phase = corev1.PodFailed
			}
			if deadlineHit {
				s.Reason = "DeadlineExceeded"
				s.Message = "Pod was active on the node longer than the specified deadline"
			}
			setPodConditions(s, false, "PodCompleted")
		})
		return true
	}
}

// runOnce starts every container, reports them running, and waits for all to end: by
// themselves, by the pod's deadline, or by the pod's deletion.
func (r *podRun) runOnce(ctx context.Context, specs []*containerSpec, restarts []int32, last []*corev1.ContainerState, deadline <-chan time.Time) ([]exit, bool) {
	exits := make([]exit, len(specs))
	processes := make([]process, len(specs))
	ended := make(chan int, len(specs))
	statuses := make([]corev1.ContainerStatus, len(specs))
	for i, spec := range specs {
		log := r.logFor(spec.name)
		path := filepath.Join(r.dir, fmt.Sprintf("%s-%d.log", spec.name, restarts[i]))
		writer, err := newLogWriter(path)
		exits[i].started = metav1.Now()
		if err == nil {
			_ = os.WriteFile(spec.terminationFile, nil, 0o666)
			_ = os.Chmod(spec.terminationFile, 0o666)
			processes[i], err = r.a.runtime.start(spec, writer)
		}
		if err != nil {
			exits[i] = exit{code: 128, startErr: err, started: exits[i].started, finished: metav1.Now()}
			if writer != nil {
				writer.close()
			}
			ended <- i
		} else {
			log.begin(path)
			forced := make(chan struct{})
			if after, err := time.ParseDuration(r.pod.Annotations[annotationOOMKillAfter] + "s"); err == nil {
				p := processes[i]
				time.AfterFunc(after, func() {
					close(forced)
					p.kill()
				})
			}
			go func(i int, p process, w *logWriter) {
				code, oom := p.wait()
				select {
				case <-forced:
					code, oom = 137, true
				default:
				}
				w.close()
				log.end()
				exits[i].code, exits[i].oom, exits[i].finished = code, oom, metav1.Now()
				// The node's own record of how the container ended, which outlives the pod
				// object (tests read it after a deletion removed the pod).
				_ = os.WriteFile(strings.TrimSuffix(path, ".log")+".exit", []byte(fmt.Sprintf("%d\n", code)), 0o644)
				ended <- i
			}(i, processes[i], writer)
		}
		statuses[i] = corev1.ContainerStatus{
			Name: spec.name, Image: spec.image, ImageID: spec.image, Ready: err == nil, Started: ptr(err == nil),
			RestartCount: restarts[i], ContainerID: r.a.runtime.describe() + "://" + spec.id,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: exits[i].started}},
		}
		if last[i] != nil {
			statuses[i].LastTerminationState = *last[i]
		}
	}
	r.setStatus(ctx, func(s *corev1.PodStatus) {
		s.Phase = corev1.PodRunning
		s.PodIP, s.PodIPs = "127.0.0.1", []corev1.PodIP{{IP: "127.0.0.1"}}
		s.ContainerStatuses = statuses
		setPodConditions(s, true, "")
	})

	remaining := len(specs)
	deadlineHit := false
	stopping := false
	var killAt <-chan time.Time
	stopAll := func(grace time.Duration) {
		stopping = true
		for _, p := range processes {
			if p != nil {
				p.terminate()
			}
		}
		killAt = time.After(grace)
	}
	for remaining > 0 {
		select {
		case <-ended:
			remaining--
		case <-deadline:
			deadline = nil
			deadlineHit = true
			if !stopping {
				stopAll(r.terminationGrace())
			}
		case <-r.stop:
			if !stopping {
				r.mu.Lock()
				grace := r.grace
				r.mu.Unlock()
				stopAll(grace)
			}
		case <-killAt:
			for _, p := range processes {
				if p != nil {
					p.kill()
				}
			}
		}
	}
	return exits, deadlineHit
}

func (r *podRun) terminationGrace() time.Duration {
	if g := r.pod.Spec.TerminationGracePeriodSeconds; g != nil {
		return time.Duration(*g) * time.Second
	}
	return 30 * time.Second
}

func (r *podRun) terminatedStatus(spec *containerSpec, e exit, restarts int32, last *corev1.ContainerState) corev1.ContainerStatus {
	terminated := &corev1.ContainerStateTerminated{
		ExitCode: int32(e.code), StartedAt: e.started, FinishedAt: e.finished,
		ContainerID: r.a.runtime.describe() + "://" + spec.id,
	}
	switch {
	case e.startErr != nil:
		terminated.Reason, terminated.Message = "StartError", e.startErr.Error()
	case e.oom:
		terminated.Reason = "OOMKilled"
	case e.code == 0:
		terminated.Reason = "Completed"
	default:
		terminated.Reason = "Error"
	}
	if terminated.Message == "" {
		terminated.Message = r.terminationMessage(spec, e)
	}
	status := corev1.ContainerStatus{
		Name: spec.name, Image: spec.image, ImageID: spec.image, RestartCount: restarts, Started: ptr(false),
		ContainerID: terminated.ContainerID,
		State:       corev1.ContainerState{Terminated: terminated},
	}
	if last != nil {
		status.LastTerminationState = *last
	}
	return status
}

// terminationMessage reads the file as a kubelet does: at most 4096 bytes, and with
// FallbackToLogsOnError the log's tail when the file is empty and the container failed.
func (r *podRun) terminationMessage(spec *containerSpec, e exit) string {
	data, _ := readAtMost(spec.terminationFile, terminationMessageLimit)
	if len(data) == 0 && e.code != 0 && spec.fallbackToLogs {
		log := r.logFor(spec.name)
		if path := log.latest(); path != "" {
			lines, _, _ := readLog(path, logQuery{tailLines: 80, limitBytes: 2048})
			return strings.Join(lines, "")
		}
	}
	return string(data)
}

func readAtMost(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, limit)
	n, _ := io.ReadFull(f, buf)
	return buf[:n], nil
}

func (r *podRun) logFor(container string) *containerLog {
	r.mu.Lock()
	defer r.mu.Unlock()
	log, ok := r.logs[container]
	if !ok {
		log = &containerLog{}
		r.logs[container] = log
	}
	return log
}

func (l *containerLog) begin(path string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.attempts = append(l.attempts, path)
	l.running = true
}

func (l *containerLog) end() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.running = false
}

func (l *containerLog) latest() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.attempts) == 0 {
		return ""
	}
	return l.attempts[len(l.attempts)-1]
}

func ptr[T any](v T) *T { return &v }
