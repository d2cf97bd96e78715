package worker_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	proxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	kubeletapis "k8s.io/kubelet/pkg/apis"
	"sigs.k8s.io/yaml"

	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/pki"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// expect holds, for one worker of an example spec, the values read by hand
// from the YAML file (never computed by hardway).
type expect struct {
	example, node  string
	ip             string
	podCIDR        string // the node's, pinned: the i-th /24 of network.podCIDR
	clusterPodCIDR string
	clusterDNS     string
	clusterDomain  string
	apiServer      string // VIP, else the first controller
	nameserver     string // network.dns
	search         string // domain
	swap           bool   // swapMiB > 0
	lxc            bool
}

var expects = []expect{
	{"seed-lxc.yaml", "worker1", "10.240.0.31", "10.200.0.0/24", "10.200.0.0/16", "10.32.0.10", "cluster.local",
		"https://10.240.0.10:6443", "10.240.0.2", "example.com", true, true},
	{"seed-lxc.yaml", "worker2", "10.240.0.32", "10.200.1.0/24", "10.200.0.0/16", "10.32.0.10", "cluster.local",
		"https://10.240.0.10:6443", "10.240.0.2", "example.com", true, true},
	// serviceCIDR 10.96.0.0/16, no clusterDNS: the 10th address.
	{"mixed.yaml", "w1", "192.168.50.21", "10.244.0.0/24", "10.244.0.0/16", "10.96.0.10", "k8s.internal",
		"https://192.168.50.10:6443", "192.168.50.1", "lab.internal", false, true},
	{"mixed.yaml", "w2", "192.168.50.22", "10.244.1.0/24", "10.244.0.0/16", "10.96.0.10", "k8s.internal",
		"https://192.168.50.10:6443", "192.168.50.1", "lab.internal", false, true},
	{"mixed.yaml", "w3", "192.168.50.23", "10.244.2.0/24", "10.244.0.0/16", "10.96.0.10", "k8s.internal",
		"https://192.168.50.10:6443", "192.168.50.1", "lab.internal", false, false},
	// No VIP: kub-master is the API endpoint; packaged binaries.
	{"seed-kvm.yaml", "kub-node1", "10.240.0.201", "10.200.0.0/24", "10.200.0.0/16", "10.32.0.10", "cluster.local",
		"https://10.240.0.200:6443", "10.240.0.2", "example.com", false, false},
	{"seed-kvm.yaml", "kub-node2", "10.240.0.202", "10.200.1.0/24", "10.200.0.0/16", "10.32.0.10", "cluster.local",
		"https://10.240.0.200:6443", "10.240.0.2", "example.com", false, false},
}

// Every worker of the examples is in the table: a new example worker needs
// hand-written expectations.
func TestExpectationsCoverEveryWorker(t *testing.T) {
	for _, w := range workers(t) {
		found := false
		for _, e := range expects {
			found = found || (e.example == w.example && e.node == w.node)
		}
		if !found {
			t.Errorf("%s: worker %s has no row in expects", w.example, w.node)
		}
	}
}

func decodeKubelet(t *testing.T, data []byte) kubeletv1beta1.KubeletConfiguration {
	t.Helper()
	var kc kubeletv1beta1.KubeletConfiguration
	if err := yaml.UnmarshalStrict(data, &kc); err != nil {
		t.Fatalf("kubelet-config.yaml does not decode strictly as KubeletConfiguration: %v\n%s", err, data)
	}
	if kc.APIVersion != "kubelet.config.k8s.io/v1beta1" || kc.Kind != "KubeletConfiguration" {
		t.Errorf("kubelet-config.yaml is %s %s", kc.APIVersion, kc.Kind)
	}
	return kc
}

func decodeProxy(t *testing.T, data []byte) proxyv1alpha1.KubeProxyConfiguration {
	t.Helper()
	var pc proxyv1alpha1.KubeProxyConfiguration
	if err := yaml.UnmarshalStrict(data, &pc); err != nil {
		t.Fatalf("kube-proxy-config.yaml does not decode strictly as KubeProxyConfiguration: %v\n%s", err, data)
	}
	if pc.APIVersion != "kubeproxy.config.k8s.io/v1alpha1" || pc.Kind != "KubeProxyConfiguration" {
		t.Errorf("kube-proxy-config.yaml is %s %s", pc.APIVersion, pc.Kind)
	}
	return pc
}

func TestKubeletConfiguration(t *testing.T) {
	for _, e := range expects {
		t.Run(e.example+"/"+e.node, func(t *testing.T) {
			tr := nodeTree(t, load(t, e.example), e.node)
			kc := decodeKubelet(t, file(t, tr, "/var/lib/kubelet/kubelet-config.yaml"))

			if a := kc.Authentication; a.Anonymous.Enabled == nil || *a.Anonymous.Enabled ||
				a.Webhook.Enabled == nil || !*a.Webhook.Enabled {
				t.Errorf("authentication: want anonymous off and webhook on, got %+v", a)
			}
			if kc.Authorization.Mode != "Webhook" {
				t.Errorf("authorization.mode = %q, want Webhook", kc.Authorization.Mode)
			}
			if fmt.Sprint(kc.ClusterDNS) != fmt.Sprint([]string{e.clusterDNS}) {
				t.Errorf("clusterDNS = %v, want [%s]", kc.ClusterDNS, e.clusterDNS)
			}
			checkEq(t, "clusterDomain", kc.ClusterDomain, e.clusterDomain)
			checkEq(t, "podCIDR", kc.PodCIDR, e.podCIDR)
			checkEq(t, "cgroupDriver", kc.CgroupDriver, "systemd")
			checkEq(t, "containerRuntimeEndpoint", kc.ContainerRuntimeEndpoint, "unix:///run/containerd/containerd.sock")
			if kc.FailSwapOn == nil || *kc.FailSwapOn != !e.swap {
				t.Errorf("failSwapOn = %v, want %v (swap: %v)", deref(kc.FailSwapOn), !e.swap, e.swap)
			}
			if e.swap && kc.MemorySwap.SwapBehavior != "NoSwap" {
				t.Errorf("memorySwap.swapBehavior = %q, want NoSwap on a node with swap", kc.MemorySwap.SwapBehavior)
			}
			if len(kc.RegisterWithTaints) != 0 {
				t.Errorf("a plain worker registers with taints %v", kc.RegisterWithTaints)
			}

			checkServing(t, load(t, e.example), tr, kc, e)
			checkResolv(t, tr, kc, e)
			checkKubeconfig(t, tr, "/var/lib/kubelet/kubeconfig", e.apiServer, "system:node:"+e.node)
		})
	}
}

// checkServing checks the kubelet's client CA, serving certificate and key.
func checkServing(t *testing.T, x *nodegen.Context, tr *tree.Tree, kc kubeletv1beta1.KubeletConfiguration, e expect) {
	t.Helper()
	caPEM := file(t, tr, kc.Authentication.X509.ClientCAFile)
	if !bytes.Equal(caPEM, x.PKI.Get(pki.CA).CertPEM) {
		t.Errorf("x509.clientCAFile %s is not the cluster CA", kc.Authentication.X509.ClientCAFile)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)

	certPEM := file(t, tr, kc.TLSCertFile)
	keyPEM := file(t, tr, kc.TLSPrivateKeyFile)
	if k, _ := tr.Get(kc.TLSPrivateKeyFile); !k.Secret || k.Mode.Perm() != 0o600 {
		t.Errorf("%s: secret=%v mode=%04o, want a 0600 secret", kc.TLSPrivateKeyFile, k.Secret, k.Mode.Perm())
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Errorf("tlsCertFile and tlsPrivateKeyFile do not match: %v", err)
	}
	cert := parseCert(t, certPEM)
	checkEq(t, "serving certificate CN", cert.Subject.CommonName, "system:node:"+e.node)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("serving certificate does not verify as a server certificate of the cluster CA: %v", err)
	}
	if err := cert.VerifyHostname(e.ip); err != nil {
		t.Errorf("serving certificate: %v", err)
	}
}

// checkResolv checks the kubelet's resolvConf: the spec's resolvers, no local stub.
func checkResolv(t *testing.T, tr *tree.Tree, kc kubeletv1beta1.KubeletConfiguration, e expect) {
	t.Helper()
	if kc.ResolverConfig == nil {
		t.Fatal("resolvConf is not set")
	}
	var ns, search []string
	for _, l := range strings.Split(string(file(t, tr, *kc.ResolverConfig)), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 0 || strings.HasPrefix(f[0], "#"):
		case f[0] == "nameserver" && len(f) == 2:
			ns = append(ns, f[1])
		case f[0] == "search":
			search = append(search, f[1:]...)
		default:
			t.Errorf("%s: unexpected line %q", *kc.ResolverConfig, l)
		}
	}
	if fmt.Sprint(ns) != fmt.Sprint([]string{e.nameserver}) || fmt.Sprint(search) != fmt.Sprint([]string{e.search}) {
		t.Errorf("%s: nameservers %v search %v, want [%s] [%s]", *kc.ResolverConfig, ns, search, e.nameserver, e.search)
	}
}

// checkKubeconfig loads the kubeconfig at p with client-go and checks its
// server and client identity.
func checkKubeconfig(t *testing.T, tr *tree.Tree, p, server, cn string) {
	t.Helper()
	if k, ok := tr.Get(p); ok && (!k.Secret || k.Mode.Perm() != 0o600) {
		t.Errorf("%s: secret=%v mode=%04o, want a 0600 secret", p, k.Secret, k.Mode.Perm())
	}
	cfg, err := clientcmd.Load(file(t, tr, p))
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	rest, err := clientcmd.NewDefaultClientConfig(*cfg, nil).ClientConfig()
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	checkEq(t, p+" server", rest.Host, server)
	checkEq(t, p+" user", parseCert(t, rest.CertData).Subject.CommonName, cn)
}

func parseCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func checkEq(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func deref(b *bool) any {
	if b == nil {
		return "unset"
	}
	return *b
}

func TestKubeProxyConfiguration(t *testing.T) {
	for _, e := range expects {
		t.Run(e.example+"/"+e.node, func(t *testing.T) {
			tr := nodeTree(t, load(t, e.example), e.node)
			pc := decodeProxy(t, file(t, tr, "/var/lib/kube-proxy/kube-proxy-config.yaml"))
			checkEq(t, "mode", string(pc.Mode), "iptables")
			checkEq(t, "clusterCIDR", pc.ClusterCIDR, e.clusterPodCIDR)
			checkEq(t, "hostnameOverride", pc.HostnameOverride, e.node)
			checkEq(t, "clientConnection.kubeconfig", pc.ClientConnection.Kubeconfig, "/var/lib/kube-proxy/kubeconfig")
			checkKubeconfig(t, tr, pc.ClientConnection.Kubeconfig, e.apiServer, "system:kube-proxy")
			// LXC: the host owns the conntrack table size; elsewhere kube-proxy's defaults.
			switch mpc := pc.Conntrack.MaxPerCore; {
			case e.lxc && (mpc == nil || *mpc != 0):
				t.Errorf("LXC worker: conntrack.maxPerCore = %v, want 0", mpc)
			case !e.lxc && mpc != nil:
				t.Errorf("VM worker: conntrack.maxPerCore = %d, want kube-proxy's default", *mpc)
			}
		})
	}
}

// A worker that is also a controller is tainted like a kubeadm control
// plane; every label the kubelet registers is one it is allowed to set.
func TestRolesLabelsAndTaints(t *testing.T) {
	x := variant(t, "seed-lxc.yaml", func(c *spec.Cluster) {
		for i := range c.Spec.Nodes {
			if c.Spec.Nodes[i].Name == "worker1" {
				c.Spec.Nodes[i].Roles = append(c.Spec.Nodes[i].Roles, spec.RoleController)
			}
		}
	})
	for _, tc := range []struct {
		node   string
		labels []string
		taints []string
	}{
		{"worker1", []string{"node.kubernetes.io/worker=", "node.kubernetes.io/controller="}, []string{"node-role.kubernetes.io/control-plane:NoSchedule"}},
		{"worker2", []string{"node.kubernetes.io/worker="}, nil},
	} {
		tr := nodeTree(t, x, tc.node)
		kc := decodeKubelet(t, file(t, tr, "/var/lib/kubelet/kubelet-config.yaml"))
		var taints []string
		for _, tn := range kc.RegisterWithTaints {
			taints = append(taints, tn.Key+":"+string(tn.Effect))
		}
		if fmt.Sprint(taints) != fmt.Sprint(tc.taints) {
			t.Errorf("%s: taints %v, want %v", tc.node, taints, tc.taints)
		}
		fl := kubeletFlags(t, tr)
		labels := strings.Split(fl["--node-labels"], ",")
		if fmt.Sprint(labels) != fmt.Sprint(tc.labels) {
			t.Errorf("%s: --node-labels %v, want %v", tc.node, labels, tc.labels)
		}
		for _, l := range labels {
			key, _, _ := strings.Cut(l, "=")
			if strings.Contains(key, "kubernetes.io/") && !kubeletapis.IsKubeletLabel(key) {
				t.Errorf("%s: the kubelet may not set label %s (it refuses to start)", tc.node, key)
			}
		}
	}
}

// kubeletFlags returns the --flag=value words of kubelet.service's ExecStart.
func kubeletFlags(t *testing.T, tr *tree.Tree) map[string]string {
	t.Helper()
	ex := execLines(t, file(t, tr, "/etc/systemd/system/kubelet.service"))["ExecStart"]
	if len(ex) != 1 {
		t.Fatalf("kubelet.service: %d ExecStart lines", len(ex))
	}
	out := map[string]string{}
	for _, w := range ex[0][1:] {
		k, v, _ := strings.Cut(w, "=")
		if _, dup := out[k]; dup {
			t.Errorf("kubelet.service: %s given twice", k)
		}
		out[k] = v
	}
	return out
}

// Workers hold exactly the private keys they use, as 0600 secrets: never a
// CA key, the service-account key or the encryption key.
func TestSecrets(t *testing.T) {
	for _, w := range workers(t) {
		tr := nodeTree(t, w.x, w.node)
		forbidden := map[string][]byte{
			"sa.key":         w.x.PKI.SAKeyPEM,
			"encryption key": []byte(base64.StdEncoding.EncodeToString(w.x.PKI.EncryptionKey)),
		}
		for _, row := range w.x.PKI.Plan {
			if row.IsCA() {
				forbidden[row.Name+".key"] = w.x.PKI.Get(row.Name).KeyPEM
			}
		}
		for _, e := range tr.Entries() {
			for what, secret := range forbidden {
				if len(secret) > 0 && bytes.Contains(e.Data, secret) {
					t.Errorf("%s %s: %s holds the %s", w.example, w.node, e.Path, what)
				}
			}
			if bytes.Contains(e.Data, []byte("PRIVATE KEY")) || bytes.Contains(e.Data, []byte("client-key-data")) {
				if !e.Secret || e.Mode.Perm() != 0o600 {
					t.Errorf("%s %s: %s holds a key but is not a 0600 secret", w.example, w.node, e.Path)
				}
			}
		}
	}
}
