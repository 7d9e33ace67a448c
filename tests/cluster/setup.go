package main

// What scripts/cluster needs around the components: credentials for a cluster on loopback,
// free ports, and a bounded wait until the cluster can take a Job.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// runInit writes a CA, serving certificates for the API server and the node agent (both on
// 127.0.0.1), the service-account key pair, a token for the tests and a kubeconfig using it.
func runInit(args []string) int {
	flags := flag.NewFlagSet("init", flag.ContinueOnError)
	dir := flags.String("dir", "", "where to write")
	server := flags.String("server", "", "the API server's URL")
	if err := flags.Parse(args); err != nil || *dir == "" || *server == "" {
		fmt.Fprintln(os.Stderr, "usage: cluster init --dir DIR --server https://127.0.0.1:PORT")
		return 64
	}
	if err := writeCredentials(*dir, *server); err != nil {
		fmt.Fprintf(os.Stderr, "init: %v\n", err)
		return 1
	}
	return 0
}

func writeCredentials(dir, server string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTemplate := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wove-test-cluster-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	if err := writePEM(filepath.Join(dir, "ca.crt"), "CERTIFICATE", caDER); err != nil {
		return err
	}
	for i, name := range []string{"apiserver", "kubelet"} {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		template := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")},
			DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "node-1"},
		}
		der, err := x509.CreateCertificate(rand.Reader, template, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return err
		}
		if err := writePEM(filepath.Join(dir, name+".crt"), "CERTIFICATE", der); err != nil {
			return err
		}
		if err := writePEM(filepath.Join(dir, name+".key"), "EC PRIVATE KEY", keyDER); err != nil {
			return err
		}
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, "sa.key"), "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(saKey)); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, "sa.pub"), "PUBLIC KEY", pub); err != nil {
		return err
	}
	// Two users, both cluster administrators: the components and the node agent, and whoever
	// uses the cluster (the tests, someone trying a Job). The audit log tells them apart.
	var lines strings.Builder
	for _, user := range []string{"wove-cluster", "wove-test"} {
		var secret [24]byte
		if _, err := rand.Read(secret[:]); err != nil {
			return err
		}
		token := hex.EncodeToString(secret[:])
		fmt.Fprintf(&lines, "%s,%s,%s,system:masters\n", token, user, user)
		name := "kubeconfig"
		if user == "wove-cluster" {
			name = "admin.kubeconfig"
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(kubeconfigFor(server, filepath.Join(dir, "ca.crt"), user, token)), 0o600); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(lines.String()), 0o600); err != nil {
		return err
	}
	// What the tests and the benchmark read back: every request of the cluster's user, with the
	// objects it sent (Secrets only by name: they hold payloads).
	policy := `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  users: ["wove-test"]
  resources: [{group: "", resources: ["secrets"]}]
- level: Request
  users: ["wove-test"]
- level: None
`
	return os.WriteFile(filepath.Join(dir, "audit-policy.yaml"), []byte(policy), 0o600)
}

func kubeconfigFor(server, ca, user, token string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: wove-test
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: wove-test
  context:
    cluster: wove-test
    user: %s
    namespace: default
current-context: wove-test
`, server, ca, user, token, user)
}

func writePEM(path, kind string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600)
}

// runFreePorts prints n distinct free TCP ports on 127.0.0.1, one per line.
func runFreePorts(args []string) int {
	n := 1
	if len(args) > 0 {
		fmt.Sscan(args[0], &n)
	}
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintf(os.Stderr, "free-ports: %v\n", err)
			return 1
		}
		listeners = append(listeners, l)
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	return 0
}

// runReady waits, bounded, until the API server is ready, the default ServiceAccount exists
// (pods in the namespace can be created) and the node is Ready.
func runReady(args []string) int {
	flags := flag.NewFlagSet("ready", flag.ContinueOnError)
	kubeconfig := flags.String("kubeconfig", "", "credentials")
	timeout := flags.Duration("timeout", 120*time.Second, "how long to wait")
	node := flags.String("node", "node-1", "the node that must be Ready (empty: only the API server)")
	if err := flags.Parse(args); err != nil || *kubeconfig == "" {
		return 64
	}
	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ready: %v\n", err)
		return 1
	}
	config.Timeout = 5 * time.Second
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ready: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	last := "nothing answered"
	for {
		if reason := notReady(ctx, client, *node); reason == "" {
			return 0
		} else {
			last = reason
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(os.Stderr, "ready: not ready after %s: %s\n", *timeout, last)
			return 1
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func notReady(ctx context.Context, client kubernetes.Interface, node string) string {
	body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil {
		return fmt.Sprintf("/readyz: %v %s", err, body)
	}
	if _, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
		return fmt.Sprintf("the default ServiceAccount: %v", err)
	}
	if node == "" {
		return ""
	}
	n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return fmt.Sprintf("node %s: %v", node, err)
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue && len(n.Spec.Taints) == 0 {
			return ""
		}
	}
	return fmt.Sprintf("node %s is not Ready and untainted yet", node)
}
