package main

// The two ways the node agent runs a container: as a host process (the default: fast, and the
// worker binary the tests just built), or in Podman from an image (--podman: the shipped image,
// its user, read-only root and mounts, the worker as PID 1).

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

type containerRuntime interface {
	describe() string
	hasImage(image string) bool
	// adapt fits a resolved container to the runtime (host processes see mounts at their
	// host paths).
	adapt(spec *containerSpec, dir string)
	start(spec *containerSpec, log *logWriter) (process, error)
}

type process interface {
	// wait returns the exit code (128+n for a signal) and whether the OOM killer ended it.
	wait() (int, bool)
	terminate()
	kill()
}

func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// -- host processes ---------------------------------------------------------------------------

type hostProcesses struct{}

func (hostProcesses) describe() string     { return "host" }
func (hostProcesses) hasImage(string) bool { return false }

// adapt rewrites paths under a mount to where the volume is on the host, and tells the worker
// where its termination message file is: a host process has no /dev/termination-log of its
// own (WOVE_WORKER_TERMINATION_LOG is the worker's setting for that path).
func (hostProcesses) adapt(spec *containerSpec, dir string) {
	rewrite := func(s string) string {
		prefix, value, hasFlag := "", s, false
		if i := strings.IndexByte(s, '='); i >= 0 && !strings.HasPrefix(s, "/") {
			prefix, value, hasFlag = s[:i+1], s[i+1:], true
		}
		for _, m := range spec.mounts {
			if value == m.container || strings.HasPrefix(value, strings.TrimSuffix(m.container, "/")+"/") {
				return prefix + m.host + strings.TrimPrefix(value, m.container)
			}
		}
		if hasFlag {
			return s
		}
		return value
	}
	for i := range spec.argv {
		spec.argv[i] = rewrite(spec.argv[i])
	}
	for i, kv := range spec.env {
		spec.env[i] = rewrite(kv)
	}
	if !hasEnv(spec.env, "WOVE_WORKER_TERMINATION_LOG") {
		spec.env = append(spec.env, "WOVE_WORKER_TERMINATION_LOG="+spec.terminationFile)
	}
	// An image gives PATH; a host process gets the agent's, unless the node's --env sets one.
	if !hasEnv(spec.env, "PATH") {
		spec.env = append(spec.env, "PATH="+os.Getenv("PATH"))
	}
	if !hasEnv(spec.env, "HOME") {
		spec.env = append(spec.env, "HOME="+filepath.Join(dir, "home"))
	}
	_ = os.MkdirAll(filepath.Join(dir, "home"), 0o777)
	if spec.workingDir == "" {
		spec.workingDir = dir
	} else {
		spec.workingDir = rewrite(spec.workingDir)
	}
}

func hasEnv(env []string, name string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, name+"=") {
			return true
		}
	}
	return false
}

type hostProcess struct {
	cmd     *exec.Cmd
	readers *sync.WaitGroup
	// The container's memory cgroup, when it has a memory limit.
	cgroup string
}

// memoryCgroups is where the node agent makes a container's memory cgroup (cgroup v1's memory
// controller, as on these machines); empty when it cannot.
const memoryCgroups = "/sys/fs/cgroup/memory/wove-node"

// memoryCgroup makes a memory cgroup of limit bytes for a container, as a container runtime
// does for a container with a memory limit; its path, or "" when the machine has no such
// controller (the limit is then not enforced: said in the node's log).
func memoryCgroup(id string, limit int64) string {
	dir := filepath.Join(memoryCgroups, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "node: no memory cgroup for %s (%v): its limit is not enforced\n", id, err)
		return ""
	}
	for _, file := range []string{"memory.limit_in_bytes", "memory.memsw.limit_in_bytes"} {
		_ = os.WriteFile(filepath.Join(dir, file), []byte(fmt.Sprint(limit)), 0o644)
	}
	return dir
}

// runExecInCgroup is the first step of a limited container's process: it joins the cgroup,
// then becomes the command (same pid). So the command is in its cgroup from its first
// instruction, as in a container, and never sees the node's.
//
//	cluster exec-in-cgroup DIR PATH ARGV0 ARGS...
func runExecInCgroup(args []string) int {
	if len(args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: cluster exec-in-cgroup DIR PATH ARGV0 [ARGS...]")
		return 64
	}
	dir, path, argv := args[0], args[1], args[2:]
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(fmt.Sprint(os.Getpid())), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "node: cannot join memory cgroup %s: %v\n", dir, err)
		return 126
	}
	err := syscall.Exec(path, argv, os.Environ())
	fmt.Fprintf(os.Stderr, "node: exec %s: %v\n", path, err)
	return 127
}

// oomKills is how many processes the kernel's OOM killer ended in the cgroup.
func oomKills(dir string) int {
	data, err := os.ReadFile(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "oom_kill "); ok {
			var n int
			fmt.Sscan(rest, &n)
			return n
		}
	}
	return 0
}

// removeCgroup ends whatever is left in the cgroup and removes it.
func removeCgroup(dir string) {
	for range 50 {
		data, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		pids := strings.Fields(string(data))
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			var n int
			if _, err := fmt.Sscan(pid, &n); err == nil {
				_ = syscall.Kill(n, syscall.SIGKILL)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = os.Remove(dir)
}

func (hostProcesses) start(spec *containerSpec, log *logWriter) (process, error) {
	if len(spec.argv) == 0 {
		return nil, fmt.Errorf("no command: a host process has no image entrypoint to fall back on")
	}
	path, err := exec.LookPath(spec.argv[0])
	if err != nil {
		return nil, fmt.Errorf("failed to create containerd task: exec: %q: executable file not found in $PATH", spec.argv[0])
	}
	cmd := exec.Command(path, spec.argv[1:]...)
	cmd.Args[0] = spec.argv[0]
	var cgroup string
	if spec.memoryLimit > 0 {
		if cgroup = memoryCgroup(spec.id, spec.memoryLimit); cgroup != "" {
			self, err := os.Executable()
			if err != nil {
				return nil, err
			}
			cmd = exec.Command(self, append([]string{"exec-in-cgroup", cgroup, path}, spec.argv...)...)
		}
	}
	cmd.Env = spec.env
	cmd.Dir = spec.workingDir
	// Its own session and group: the container's teardown kills the whole group, as a
	// container's end kills everything in its PID namespace.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	readers, err := startLogged(cmd, log)
	if err != nil {
		return nil, err
	}
	return &hostProcess{cmd: cmd, readers: readers, cgroup: cgroup}, nil
}

// startLogged starts cmd with its stdout and stderr copied into log, as a runtime keeps a
// container's output; the returned group ends when both streams have closed.
func startLogged(cmd *exec.Cmd, log *logWriter) (*sync.WaitGroup, error) {
	stdout, stdoutW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	stderr, stderrW, err := os.Pipe()
	if err != nil {
		stdout.Close()
		stdoutW.Close()
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = stdoutW, stderrW
	err = cmd.Start()
	// The child has its own copies; ours would keep the streams from ever ending.
	stdoutW.Close()
	stderrW.Close()
	if err != nil {
		stdout.Close()
		stderr.Close()
		return nil, err
	}
	readers := &sync.WaitGroup{}
	for name, stream := range map[string]*os.File{"stdout": stdout, "stderr": stderr} {
		readers.Add(1)
		go func() { defer readers.Done(); log.copy(name, stream); stream.Close() }()
	}
	return readers, nil
}

func (p *hostProcess) wait() (int, bool) {
	state, err := p.cmd.Process.Wait()
	// Whatever the main process left behind goes with it.
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	done := make(chan struct{})
	go func() { p.readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	// As containerd reports it on cgroup v1: any OOM kill in the container's cgroup.
	oom := false
	if p.cgroup != "" {
		oom = oomKills(p.cgroup) > 0
		removeCgroup(p.cgroup)
	}
	if err != nil {
		return 128, oom
	}
	return exitCode(state.Sys().(syscall.WaitStatus)), oom
}

func exitCode(status syscall.WaitStatus) int {
	if status.Signaled() {
		return 128 + int(status.Signal())
	}
	return status.ExitStatus()
}

// terminate signals the main process only, as a runtime signals a container's PID 1.
func (p *hostProcess) terminate() { _ = p.cmd.Process.Signal(syscall.SIGTERM) }
func (p *hostProcess) kill()      { _ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) }

// -- podman -----------------------------------------------------------------------------------

type podman struct {
	base []string
	env  []string
}

func newPodman(dir string) *podman {
	conf := filepath.Join(dir, "containers.conf")
	// No rlimit changes: the sandbox refuses them.
	_ = os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = []\n"), 0o644)
	return &podman{
		base: []string{"--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager", "cgroupfs"},
		env:  append(os.Environ(), "CONTAINERS_CONF="+conf),
	}
}

func (p *podman) describe() string { return "podman" }

func (p *podman) command(args ...string) *exec.Cmd {
	cmd := exec.Command("podman", append(append([]string{}, p.base...), args...)...)
	cmd.Env = p.env
	return cmd
}

func (p *podman) hasImage(image string) bool {
	return p.command("image", "exists", image).Run() == nil
}

// adapt: in a container, mounts are where the pod says; nothing to rewrite.
func (p *podman) adapt(*containerSpec, string) {}

type podmanProcess struct {
	p       *podman
	name    string
	cmd     *exec.Cmd
	readers *sync.WaitGroup
}

func (p *podman) start(spec *containerSpec, log *logWriter) (process, error) {
	name := "k8s_" + spec.id
	args := []string{"run", "--name", name, "--network", "host", "--log-driver", "none"}
	if spec.user != nil {
		user := fmt.Sprint(*spec.user)
		if spec.group != nil {
			user += fmt.Sprintf(":%d", *spec.group)
		}
		args = append(args, "--user", user)
	}
	if spec.readOnlyRoot {
		args = append(args, "--read-only")
	}
	if spec.memoryLimit > 0 {
		args = append(args, "--memory", fmt.Sprint(spec.memoryLimit), "--memory-swap", fmt.Sprint(spec.memoryLimit))
	}
	for _, m := range spec.mounts {
		option := "rw"
		if m.readOnly {
			option = "ro"
		}
		args = append(args, "--volume", m.host+":"+m.container+":"+option)
	}
	args = append(args, "--volume", spec.terminationFile+":"+spec.terminationPath+":rw")
	if spec.workingDir != "" {
		args = append(args, "--workdir", spec.workingDir)
	}
	// Values through podman's own environment (`--env NAME`), never on a command line.
	env := append([]string{}, p.env...)
	for _, kv := range spec.env {
		name, _, _ := strings.Cut(kv, "=")
		args = append(args, "--env", name)
		env = append(env, kv)
	}
	var rest []string
	if len(spec.argv) > 0 {
		entry, _ := json.Marshal(spec.argv[:1])
		args = append(args, "--entrypoint", string(entry))
		rest = spec.argv[1:]
	}
	args = append(args, spec.image)
	args = append(args, rest...)
	cmd := p.command(args...)
	cmd.Env = env
	readers, err := startLogged(cmd, log)
	if err != nil {
		return nil, err
	}
	return &podmanProcess{p: p, name: name, cmd: cmd, readers: readers}, nil
}

func (c *podmanProcess) wait() (int, bool) {
	_ = c.cmd.Wait()
	c.readers.Wait()
	code, oom := 128, false
	out, err := c.p.command("inspect", "--format", "{{.State.ExitCode}} {{.State.OOMKilled}}", c.name).Output()
	if err == nil {
		var killed string
		if _, err := fmt.Sscan(string(out), &code, &killed); err == nil {
			oom = killed == "true"
		}
	} else if c.cmd.ProcessState != nil {
		code = exitCode(c.cmd.ProcessState.Sys().(syscall.WaitStatus))
	}
	_ = c.p.command("rm", "--force", c.name).Run()
	return code, oom
}

func (c *podmanProcess) terminate() { _ = c.p.command("kill", "--signal", "TERM", c.name).Run() }
func (c *podmanProcess) kill()      { _ = c.p.command("kill", "--signal", "KILL", c.name).Run() }
