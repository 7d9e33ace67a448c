// Command cluster runs Kubernetes' own control plane on loopback for wove-submit's tests: one
// binary, one component per process (as hyperkube was), so the components' global state never
// meets in one address space.
//
//	cluster etcd --data-dir DIR --listen 127.0.0.1:PORT
//	cluster kube-apiserver FLAGS...          Kubernetes' kube-apiserver, unchanged
//	cluster kube-controller-manager FLAGS... Kubernetes' kube-controller-manager, unchanged
//	cluster kube-scheduler FLAGS...          Kubernetes' kube-scheduler, unchanged
//	cluster node FLAGS...                    the node agent (node.go): a kubelet stand-in
//	cluster init --dir DIR --server URL      credentials and a kubeconfig (setup.go)
//	cluster free-ports N                     N free ports on 127.0.0.1
//	cluster ready --kubeconfig PATH          wait until a Job can run
//
// Nothing here re-implements a control-plane component; only the node agent is ours, because a
// real kubelet cannot run on these machines (see README.md).
package main

import (
	"fmt"
	"os"
	_ "time/tzdata"

	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: cluster etcd|kube-apiserver|kube-controller-manager|kube-scheduler|node|init|free-ports|ready [FLAGS...]")
		os.Exit(64)
	}
	name, args := os.Args[1], os.Args[2:]
	var command *cobra.Command
	switch name {
	case "etcd":
		os.Exit(runEtcd(args))
	case "node":
		os.Exit(runNode(args))
	case "init":
		os.Exit(runInit(args))
	case "free-ports":
		os.Exit(runFreePorts(args))
	case "ready":
		os.Exit(runReady(args))
	case "exec-in-cgroup":
		os.Exit(runExecInCgroup(args))
	case "kube-apiserver":
		command = apiserver.NewAPIServerCommand()
	case "kube-controller-manager":
		command = controllermanager.NewControllerManagerCommand()
	case "kube-scheduler":
		command = scheduler.NewSchedulerCommand()
	default:
		fmt.Fprintf(os.Stderr, "cluster: unknown component %q\n", name)
		os.Exit(64)
	}
	command.SetArgs(args)
	os.Exit(cli.Run(command))
}
