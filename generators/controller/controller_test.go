package controller_test

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io/fs"
	"path"
	"slices"
	"strings"
	"testing"

	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	"k8s.io/client-go/tools/clientcmd"
	schedv1 "k8s.io/kube-scheduler/config/v1"
	"sigs.k8s.io/yaml"

	"github.com/hardway-dev/hardway/generators/manifests"
	"github.com/hardway-dev/hardway/tree"
)

const kd = "/var/lib/kubernetes"

// controllerFiles are the files every controller gets, with their modes,
// written from the task's contract rather than from the generator's tables.
var controllerFiles = map[string]fs.FileMode{
	kd + "/ca.crt":                                    0o644,
	kd + "/ca.key":                                    0o600,
	kd + "/apiserver.crt":                             0o644,
	kd + "/apiserver.key":                             0o600,
	kd + "/apiserver-kubelet-client.crt":              0o644,
	kd + "/apiserver-kubelet-client.key":              0o600,
	kd + "/apiserver-etcd-client.crt":                 0o644,
	kd + "/apiserver-etcd-client.key":                 0o600,
	kd + "/etcd-ca.crt":                               0o644,
	kd + "/front-proxy-ca.crt":                        0o644,
	kd + "/front-proxy-client.crt":                    0o644,
	kd + "/front-proxy-client.key":                    0o600,
	kd + "/sa.key":                                    0o600,
	kd + "/sa.pub":                                    0o644,
	kd + "/encryption-config.yaml":                    0o600,
	kd + "/kube-controller-manager.kubeconfig":        0o600,
	kd + "/kube-scheduler.kubeconfig":                 0o600,
	kd + "/kube-scheduler.yaml":                       0o644,
	tree.UnitDir + "/kube-apiserver.service":          0o644,
	tree.UnitDir + "/kube-controller-manager.service": 0o644,
	tree.UnitDir + "/kube-scheduler.service":          0o644,
}

// bootstrapFiles are the extra files of the first controller.
var bootstrapFiles = map[string]fs.FileMode{
	kd + "/manifests/00-apiserver-to-kubelet.yaml": 0o644,
	kd + "/manifests/01-cluster-admins.yaml":       0o644,
	kd + "/manifests/10-coredns.yaml":              0o644,
	kd + "/super-admin.kubeconfig":                 0o600,
	tree.UnitDir + "/hardway-bootstrap.service":    0o644,
}

var controllers = []struct {
	spec, node string
	ip         string
	first      bool
}{
	{"seed-lxc.yaml", "controller", "10.240.0.20", true},
	{"seed-lxc.yaml", "controller1", "10.240.0.21", false},
	{"seed-lxc.yaml", "controller2", "10.240.0.22", false},
	{"mixed.yaml", "cp1", "192.168.50.11", true},
	{"mixed.yaml", "cp2", "192.168.50.12", false},
	{"seed-kvm.yaml", "kub-master", "10.240.0.200", true},
}

func TestFilesAndModes(t *testing.T) {
	for _, c := range controllers {
		t.Run(c.node, func(t *testing.T) {
			tr := nodeTree(t, load(t, c.spec), c.node)
			want := map[string]fs.FileMode{}
			for p, m := range controllerFiles {
				want[p] = m
			}
			if c.first {
				for p, m := range bootstrapFiles {
					want[p] = m
				}
			}
			got := map[string]fs.FileMode{}
			for _, e := range tr.Entries() {
				if e.IsFile() && (strings.HasPrefix(e.Path, kd+"/") || path.Dir(e.Path) == tree.UnitDir) && e.Path != tree.UnitDir+"/etcd.service" {
					got[e.Path] = e.Mode.Perm()
				}
				if e.IsFile() && strings.HasSuffix(e.Path, ".key") && (!e.Secret || e.Mode.Perm() != 0o600) {
					t.Errorf("%s: secret=%v mode %04o, want a 0600 secret", e.Path, e.Secret, e.Mode.Perm())
				}
			}
			for p, m := range want {
				if g, ok := got[p]; !ok {
					t.Errorf("missing %s", p)
				} else if g != m {
					t.Errorf("%s: mode %04o, want %04o", p, g, m)
				}
			}
			for p := range got {
				if _, ok := want[p]; !ok {
					t.Errorf("unexpected file %s", p)
				}
			}
			var enabled []string
			for _, u := range tr.Units() {
				enabled = append(enabled, u.Name)
				if u.WantedBy != "multi-user.target" {
					t.Errorf("%s wanted by %s", u.Name, u.WantedBy)
				}
			}
			for _, u := range []string{"kube-apiserver.service", "kube-controller-manager.service", "kube-scheduler.service"} {
				if !slices.Contains(enabled, u) {
					t.Errorf("%s not enabled (enabled: %v)", u, enabled)
				}
			}
			if got := slices.Contains(enabled, "hardway-bootstrap.service"); got != c.first {
				t.Errorf("hardway-bootstrap.service enabled = %v, want %v", got, c.first)
			}
		})
	}
}

// TestCertificates checks that each placed certificate is the identity the
// flags expect (by CN, written here from kubeadm's table), that every key
// matches its certificate, and that no CA key other than the cluster CA's
// (cluster signing) reaches a controller.
func TestCertificates(t *testing.T) {
	cns := map[string]string{
		"ca":                       "kubernetes",
		"apiserver":                "kube-apiserver",
		"apiserver-kubelet-client": "kube-apiserver-kubelet-client",
		"apiserver-etcd-client":    "kube-apiserver-etcd-client",
		"front-proxy-client":       "front-proxy-client",
		"etcd-ca":                  "etcd-ca",
		"front-proxy-ca":           "front-proxy-ca",
	}
	for _, c := range controllers {
		t.Run(c.node, func(t *testing.T) {
			x := load(t, c.spec)
			tr := nodeTree(t, x, c.node)
			for base, cn := range cns {
				crt := parseCert(t, file(t, tr, kd+"/"+base+".crt"))
				if crt.Subject.CommonName != cn {
					t.Errorf("%s.crt: CN %q, want %q", base, crt.Subject.CommonName, cn)
				}
				if key, ok := tr.Get(kd + "/" + base + ".key"); ok {
					if _, err := tls.X509KeyPair(file(t, tr, kd+"/"+base+".crt"), key.Data); err != nil {
						t.Errorf("%s: key does not match certificate: %v", base, err)
					}
				}
			}
			// The serving certificate must verify, with the placed CA, for
			// the addresses clients use: this node, loopback, the in-cluster name.
			roots := x509.NewCertPool()
			roots.AddCert(parseCert(t, file(t, tr, kd+"/ca.crt")))
			srv := parseCert(t, file(t, tr, kd+"/apiserver.crt"))
			for _, host := range []string{c.ip, "127.0.0.1", "kubernetes.default.svc"} {
				if _, err := srv.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
					t.Errorf("apiserver.crt for %s: %v", host, err)
				}
			}
			for _, ca := range []string{"etcd/ca", "front-proxy-ca"} {
				key := x.PKI.Get(ca).KeyPEM
				if len(key) == 0 {
					t.Fatalf("no %s key to look for", ca)
				}
				// As PEM, or base64-embedded as in a kubeconfig.
				forms := []string{strings.TrimSpace(string(key)), base64.StdEncoding.EncodeToString(key)}
				for _, e := range tr.Entries() {
					for _, f := range forms {
						if strings.Contains(string(e.Data), f) {
							t.Errorf("%s holds the %s key", e.Path, ca)
						}
					}
				}
			}
			// sa.pub is the public half of sa.key.
			block, _ := pem.Decode(file(t, tr, kd+"/sa.pub"))
			if block == nil {
				t.Fatal("sa.pub: no PEM")
			}
			pub, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			sa := parseKey(t, file(t, tr, kd+"/sa.key"))
			if !sa.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
				t.Error("sa.pub is not the public key of sa.key")
			}
		})
	}
}

func parseCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("not a PEM certificate: %.40q", data)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// parseKey parses a PEM private key (PKCS#1, SEC1 or PKCS#8).
func parseKey(t *testing.T, data []byte) crypto.Signer {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("key: no PEM")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("key: %v", err)
	}
	return k.(crypto.Signer)
}

func TestKubeconfigs(t *testing.T) {
	cases := []struct {
		file, cn, org string
		firstOnly     bool
	}{
		{"kube-controller-manager.kubeconfig", "system:kube-controller-manager", "", false},
		{"kube-scheduler.kubeconfig", "system:kube-scheduler", "", false},
		{"super-admin.kubeconfig", "kubernetes-super-admin", "system:masters", true},
	}
	for _, c := range controllers {
		t.Run(c.node, func(t *testing.T) {
			x := load(t, c.spec)
			tr := nodeTree(t, x, c.node)
			for _, k := range cases {
				e, ok := tr.Get(kd + "/" + k.file)
				if ok != (c.first || !k.firstOnly) {
					t.Errorf("%s present = %v", k.file, ok)
				}
				if !ok {
					continue
				}
				cfg, err := clientcmd.Load(e.Data)
				if err != nil {
					t.Fatalf("%s: %v", k.file, err)
				}
				rest, err := clientcmd.NewDefaultClientConfig(*cfg, nil).ClientConfig()
				if err != nil {
					t.Fatalf("%s: %v", k.file, err)
				}
				// Every spec here uses the default port.
				if rest.Host != "https://127.0.0.1:6443" {
					t.Errorf("%s: server %s, want the local apiserver https://127.0.0.1:6443", k.file, rest.Host)
				}
				crt := parseCert(t, rest.TLSClientConfig.CertData)
				if crt.Subject.CommonName != k.cn {
					t.Errorf("%s: CN %q, want %q", k.file, crt.Subject.CommonName, k.cn)
				}
				if k.org != "" && !slices.Contains(crt.Subject.Organization, k.org) {
					t.Errorf("%s: O %v, want %s", k.file, crt.Subject.Organization, k.org)
				}
				if string(rest.TLSClientConfig.CAData) != string(file(t, tr, kd+"/ca.crt")) {
					t.Errorf("%s: CA is not the cluster CA", k.file)
				}
			}
		})
	}
}

func TestSchedulerConfiguration(t *testing.T) {
	tr := nodeTree(t, load(t, "seed-lxc.yaml"), "controller1")
	var cfg schedv1.KubeSchedulerConfiguration
	if err := yaml.UnmarshalStrict(file(t, tr, kd+"/kube-scheduler.yaml"), &cfg); err != nil {
		t.Fatalf("kube-scheduler.yaml: %v", err)
	}
	if cfg.APIVersion != "kubescheduler.config.k8s.io/v1" || cfg.Kind != "KubeSchedulerConfiguration" {
		t.Errorf("type %s/%s", cfg.APIVersion, cfg.Kind)
	}
	if cfg.ClientConnection.Kubeconfig != kd+"/kube-scheduler.kubeconfig" {
		t.Errorf("kubeconfig %q", cfg.ClientConnection.Kubeconfig)
	}
	if cfg.LeaderElection.LeaderElect == nil || !*cfg.LeaderElection.LeaderElect {
		t.Error("leader election is not on")
	}
}

func TestEncryptionConfiguration(t *testing.T) {
	for _, c := range []struct{ spec, node, provider string }{
		{"seed-lxc.yaml", "controller2", "aescbc"},
		{"mixed.yaml", "cp3", "secretbox"},
	} {
		t.Run(c.spec, func(t *testing.T) {
			x := load(t, c.spec)
			var cfg apiserverv1.EncryptionConfiguration
			if err := yaml.UnmarshalStrict(file(t, nodeTree(t, x, c.node), kd+"/encryption-config.yaml"), &cfg); err != nil {
				t.Fatalf("encryption-config.yaml: %v", err)
			}
			if cfg.APIVersion != "apiserver.config.k8s.io/v1" || cfg.Kind != "EncryptionConfiguration" {
				t.Errorf("type %s/%s", cfg.APIVersion, cfg.Kind)
			}
			if len(cfg.Resources) != 1 || !slices.Contains(cfg.Resources[0].Resources, "secrets") {
				t.Fatalf("resources %+v, want secrets", cfg.Resources)
			}
			p := cfg.Resources[0].Providers
			if len(p) != 2 || p[1].Identity == nil {
				t.Fatalf("providers %+v, want %s then identity", p, c.provider)
			}
			var keys []apiserverv1.Key
			switch c.provider {
			case "aescbc":
				if p[0].AESCBC == nil {
					t.Fatalf("first provider is not aescbc")
				}
				keys = p[0].AESCBC.Keys
			case "secretbox":
				if p[0].Secretbox == nil {
					t.Fatalf("first provider is not secretbox")
				}
				keys = p[0].Secretbox.Keys
			}
			if len(keys) != 1 {
				t.Fatalf("%d keys", len(keys))
			}
			secret, err := base64.StdEncoding.DecodeString(keys[0].Secret)
			if err != nil || len(secret) != 32 || string(secret) != string(x.PKI.EncryptionKey) {
				t.Errorf("key is not the 32-byte cluster encryption key (err %v, %d bytes)", err, len(secret))
			}
		})
	}
}

// TestAPIServerFlags checks the decisions of kube-apiserver's command line
// against values written by hand from the example specs.
func TestAPIServerFlags(t *testing.T) {
	common := map[string]string{
		"--authorization-mode":               "Node,RBAC",
		"--allow-privileged":                 "true",
		"--client-ca-file":                   kd + "/ca.crt",
		"--endpoint-reconciler-type":         "lease",
		"--etcd-cafile":                      kd + "/etcd-ca.crt",
		"--etcd-certfile":                    kd + "/apiserver-etcd-client.crt",
		"--etcd-keyfile":                     kd + "/apiserver-etcd-client.key",
		"--encryption-provider-config":       kd + "/encryption-config.yaml",
		"--kubelet-client-certificate":       kd + "/apiserver-kubelet-client.crt",
		"--kubelet-client-key":               kd + "/apiserver-kubelet-client.key",
		"--kubelet-certificate-authority":    kd + "/ca.crt",
		"--requestheader-client-ca-file":     kd + "/front-proxy-ca.crt",
		"--requestheader-allowed-names":      "front-proxy-client",
		"--proxy-client-cert-file":           kd + "/front-proxy-client.crt",
		"--proxy-client-key-file":            kd + "/front-proxy-client.key",
		"--service-account-key-file":         kd + "/sa.pub",
		"--service-account-signing-key-file": kd + "/sa.key",
		"--tls-cert-file":                    kd + "/apiserver.crt",
		"--tls-private-key-file":             kd + "/apiserver.key",
		"--secure-port":                      "6443",
		"--service-node-port-range":          "30000-32767",
	}
	cases := []struct {
		spec, node string
		want       map[string]string
	}{
		{"seed-lxc.yaml", "controller1", map[string]string{
			"--advertise-address":        "10.240.0.21",
			"--etcd-servers":             "https://10.240.0.11:2379,https://10.240.0.12:2379",
			"--service-cluster-ip-range": "10.32.0.0/24",
			"--service-account-issuer":   "https://kubernetes.default.svc.cluster.local",
			"--api-audiences":            "https://kubernetes.default.svc.cluster.local",
		}},
		{"mixed.yaml", "cp2", map[string]string{
			"--advertise-address":        "192.168.50.12",
			"--etcd-servers":             "https://192.168.50.11:2379,https://192.168.50.12:2379,https://192.168.50.13:2379",
			"--service-cluster-ip-range": "10.96.0.0/16",
			"--service-account-issuer":   "https://kubernetes.default.svc.k8s.internal",
			"--api-audiences":            "https://kubernetes.default.svc.k8s.internal",
		}},
	}
	for _, c := range cases {
		t.Run(c.node, func(t *testing.T) {
			tr := nodeTree(t, load(t, c.spec), c.node)
			bin, fl := execStart(t, tr, tree.UnitDir+"/kube-apiserver.service")
			if bin != "/usr/local/bin/kube-apiserver" {
				t.Errorf("binary %s", bin)
			}
			for k, v := range common {
				c.want[k] = v
			}
			for k, v := range c.want {
				if fl[k] != v {
					t.Errorf("%s=%q, want %q", k, fl[k], v)
				}
			}
			if !strings.Contains(fl["--enable-admission-plugins"], "NodeRestriction") {
				t.Errorf("--enable-admission-plugins=%q lacks NodeRestriction", fl["--enable-admission-plugins"])
			}
			for _, bad := range []string{"--insecure-port", "--insecure-bind-address", "--apiserver-count", "--token-auth-file", "--kubelet-https"} {
				if _, ok := fl[bad]; ok {
					t.Errorf("%s must not be set", bad)
				}
			}
		})
	}
}

func TestControllerManagerAndSchedulerFlags(t *testing.T) {
	tr := nodeTree(t, load(t, "mixed.yaml"), "cp3")
	_, kcm := execStart(t, tr, tree.UnitDir+"/kube-controller-manager.service")
	for k, v := range map[string]string{
		"--cluster-cidr":                     "10.244.0.0/16",
		"--cluster-name":                     "mixed",
		"--service-cluster-ip-range":         "10.96.0.0/16",
		"--allocate-node-cidrs":              "false",
		"--cluster-signing-cert-file":        kd + "/ca.crt",
		"--cluster-signing-key-file":         kd + "/ca.key",
		"--root-ca-file":                     kd + "/ca.crt",
		"--service-account-private-key-file": kd + "/sa.key",
		"--use-service-account-credentials":  "true",
		"--leader-elect":                     "true",
		"--bind-address":                     "127.0.0.1",
		"--kubeconfig":                       kd + "/kube-controller-manager.kubeconfig",
		"--authentication-kubeconfig":        kd + "/kube-controller-manager.kubeconfig",
		"--authorization-kubeconfig":         kd + "/kube-controller-manager.kubeconfig",
	} {
		if kcm[k] != v {
			t.Errorf("kube-controller-manager %s=%q, want %q", k, kcm[k], v)
		}
	}
	_, sched := execStart(t, tr, tree.UnitDir+"/kube-scheduler.service")
	for k, v := range map[string]string{
		"--config":                    kd + "/kube-scheduler.yaml",
		"--authentication-kubeconfig": kd + "/kube-scheduler.kubeconfig",
		"--authorization-kubeconfig":  kd + "/kube-scheduler.kubeconfig",
	} {
		if sched[k] != v {
			t.Errorf("kube-scheduler %s=%q, want %q", k, sched[k], v)
		}
	}
}

// TestReferencedPaths checks every unit of a node: the binary is where the
// spec's binaries.mode puts it (packaged: etcd from Debian's etcd-server
// under /usr/bin, Kubernetes pinned under /usr/local/bin), and every file a
// flag names exists in the tree.
func TestReferencedPaths(t *testing.T) {
	for _, c := range []struct{ spec, node, binDir, etcdDir string }{
		{"seed-lxc.yaml", "controller", "/usr/local/bin/", "/usr/local/bin/"},
		{"seed-lxc.yaml", "etcd2", "/usr/local/bin/", "/usr/local/bin/"},
		{"mixed.yaml", "cp1", "/usr/local/bin/", "/usr/local/bin/"},
		{"seed-kvm.yaml", "kub-master", "/usr/local/bin/", "/usr/bin/"},
	} {
		t.Run(c.node, func(t *testing.T) {
			tr := nodeTree(t, load(t, c.spec), c.node)
			paths := map[string]bool{} // with the implicit parent directories
			for _, e := range tr.Entries() {
				paths[e.Path] = true
			}
			for _, u := range unitFiles(tr) {
				for key, cmds := range commands(t, file(t, tr, u)) {
					for _, argv := range cmds {
						dir := c.binDir
						if path.Base(argv[0]) == "etcd" {
							dir = c.etcdDir
						}
						checkPaths(t, paths, u, key, argv, dir)
					}
				}
			}
		})
	}
}

func checkPaths(t *testing.T, paths map[string]bool, unit, key string, argv []string, binDir string) {
	t.Helper()
	name := path.Base(argv[0])
	if name != "touch" && name != "rm" && argv[0] != binDir+name {
		t.Errorf("%s %s: binary %s, want it in %s", path.Base(unit), key, argv[0], binDir)
	}
	for _, a := range argv[1:] {
		_, v, _ := strings.Cut(a, "=")
		if !strings.HasPrefix(a, "--") {
			v = a
		}
		for _, p := range strings.Split(v, ",") {
			if !strings.HasPrefix(p, kd+"/") && !strings.HasPrefix(p, "/etc/etcd/") {
				continue
			}
			if p == kd+"/.bootstrapped" { // created by the unit itself
				continue
			}
			if !paths[p] {
				t.Errorf("%s %s: %s names %s, which is not in the tree", path.Base(unit), key, a, p)
			}
		}
	}
}

// TestBootstrap checks the one-shot unit of the first controller and that
// it applies exactly the cluster's manifests/ files.
func TestBootstrap(t *testing.T) {
	x := load(t, "seed-lxc.yaml")
	tr := nodeTree(t, x, "controller")
	unit := file(t, tr, tree.UnitDir+"/hardway-bootstrap.service")
	for _, line := range []string{
		"Type=oneshot",
		"After=kube-apiserver.service",
		"ConditionPathExists=!/var/lib/kubernetes/.bootstrapped",
	} {
		if !strings.Contains(string(unit), "\n"+line+"\n") {
			t.Errorf("no line %q", line)
		}
	}
	cmds := commands(t, unit)
	want := map[string][]string{
		"ExecStartPre": {"/usr/local/bin/kubectl --kubeconfig=/var/lib/kubernetes/super-admin.kubeconfig --request-timeout=10s get --raw=/readyz"},
		"ExecStart": {
			"/usr/local/bin/kubectl --kubeconfig=/var/lib/kubernetes/super-admin.kubeconfig --request-timeout=60s apply --filename=/var/lib/kubernetes/manifests",
			"/usr/bin/touch /var/lib/kubernetes/.bootstrapped",
			"/usr/bin/rm -f /var/lib/kubernetes/super-admin.kubeconfig",
		},
	}
	for k, lines := range want {
		var got []string
		for _, argv := range cmds[k] {
			got = append(got, strings.Join(argv, " "))
		}
		if !slices.Equal(got, lines) {
			t.Errorf("%s:\n got %q\nwant %q", k, got, lines)
		}
	}
	files, err := manifests.Files(x)
	if err != nil {
		t.Fatal(err)
	}
	var onNode []string
	for _, e := range tr.Entries() {
		if e.IsFile() && strings.HasPrefix(e.Path, kd+"/manifests/") {
			onNode = append(onNode, e.Path)
		}
	}
	if len(onNode) != len(files) {
		t.Errorf("node has manifests %v, cluster has %d files", onNode, len(files))
	}
	for _, f := range files {
		if string(file(t, tr, kd+"/"+f.Path)) != string(f.Data) {
			t.Errorf("%s differs from the cluster's %s", kd+"/"+f.Path, f.Path)
		}
	}
}
