package gateway

import (
	"crypto/x509"
	"encoding/pem"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/hardway-dev/hardway/generators/common/commontest"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/tree"
)

const seedLXC = "../../examples/seed-lxc.yaml"

func generate(t *testing.T, x *nodegen.Context, name string) *tree.Tree {
	t.Helper()
	tr := tree.New(name)
	if err := Generate(x, commontest.Node(t, x, name), tr); err != nil {
		t.Fatal(err)
	}
	if err := tr.Check(); err != nil {
		t.Fatal(err)
	}
	return tr
}

// sshd checks a main configuration that, like Debian's, includes the drop-in
// first and then sets options of its own. It runs in a private mount
// namespace where /run/sshd (sshd's privilege separation directory) exists.
func sshd(t *testing.T, dropIn []byte, flag string) (string, bool) {
	t.Helper()
	sshd := commontest.Tool(t, "sshd", "openssh-server")
	keygen := commontest.Tool(t, "ssh-keygen", "openssh-client")
	unshare := commontest.Tool(t, "unshare", "util-linux")
	dir := t.TempDir()
	if out, ok := commontest.Run(t, keygen, "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "host_key")); !ok {
		t.Fatal(out)
	}
	inc := commontest.WriteFile(t, dir, "sshd_config.d/hardway-bastion.conf", dropIn)
	main := commontest.WriteFile(t, dir, "sshd_config",
		[]byte("Include "+inc+"\nHostKey "+filepath.Join(dir, "host_key")+"\nPasswordAuthentication yes\n"))
	return commontest.Run(t, unshare, "-m", "sh", "-c",
		`mount -t tmpfs tmpfs /run && mkdir /run/sshd && "$1" "$2" -f "$3"`, "sh", sshd, flag, main)
}

// TestSSHDropIn: sshd -t accepts the bastion drop-in and -T shows it in
// effect: port 7022 only (seed-lxc's bastionPort), no passwords even though
// the main file says yes after the Include, keys only for root.
func TestSSHDropIn(t *testing.T) {
	x := commontest.Context(t, seedLXC)
	dropIn := commontest.File(t, generate(t, x, "gw"), SSHDropIn)
	if out, ok := sshd(t, dropIn, "-t"); !ok {
		t.Fatalf("sshd -t: %s", out)
	}
	out, ok := sshd(t, dropIn, "-T")
	if !ok {
		t.Fatalf("sshd -T: %s", out)
	}
	got := map[string][]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, " "); ok {
			got[k] = append(got[k], v)
		}
	}
	for k, want := range map[string]string{"port": "7022", "passwordauthentication": "no", "kbdinteractiveauthentication": "no",
		"permitrootlogin": "without-password", "allowtcpforwarding": "yes"} {
		if strings.Join(got[k], " ") != want {
			t.Errorf("sshd -T: %s = %q, want %q", k, got[k], want)
		}
	}
	if out, ok := sshd(t, []byte(strings.Replace(string(dropIn), "Port 7022", "Port seventy", 1)), "-t"); ok {
		t.Errorf("sshd -t accepted a corrupted drop-in: %s", out)
	}
}

// TestAdminKubeconfig loads /root/.kube/config with client-go: it targets the
// VIP (https://10.240.0.10:6443 in seed-lxc) as kubernetes-admin, whose
// certificate the embedded cluster CA verifies for client auth.
func TestAdminKubeconfig(t *testing.T) {
	x := commontest.Context(t, seedLXC)
	tr := generate(t, x, "gw")
	for p, mode := range map[string]fs.FileMode{"/root": fs.ModeDir | 0o700, "/root/.kube": fs.ModeDir | 0o700, Kubeconfig: 0o600} {
		if e, ok := tr.Get(p); !ok || e.Mode != mode {
			t.Errorf("%s: %v, want mode %v", p, e, mode)
		}
	}
	cfg, err := clientcmd.Load(commontest.File(t, tr, Kubeconfig))
	if err != nil {
		t.Fatal(err)
	}
	rest, err := clientcmd.NewDefaultClientConfig(*cfg, nil).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if rest.Host != "https://10.240.0.10:6443" {
		t.Errorf("server %s, want https://10.240.0.10:6443", rest.Host)
	}
	cert := verify(t, rest.CAData, rest.CertData, x509.ExtKeyUsageClientAuth)
	if cert.Subject.CommonName != "kubernetes-admin" {
		t.Errorf("client CN %q, want kubernetes-admin", cert.Subject.CommonName)
	}
}

// verify checks leaf against the CA for usage and returns it.
func verify(t *testing.T, caPEM, leafPEM []byte, usage x509.ExtKeyUsage) *x509.Certificate {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate")
	}
	b, _ := pem.Decode(leafPEM)
	if b == nil {
		t.Fatal("no leaf certificate")
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		t.Errorf("%s: %v", cert.Subject.CommonName, err)
	}
	return cert
}

// TestEtcdctl sources the profile script in bash and reads the environment
// back: both seed-lxc etcd members, by hand, and files that exist in the tree,
// the client certificate verified by openssl against the etcd CA.
func TestEtcdctl(t *testing.T) {
	bash := commontest.Tool(t, "bash", "bash")
	openssl := commontest.Tool(t, "openssl", "openssl")
	x := commontest.Context(t, seedLXC)
	tr := generate(t, x, "gw")
	p := commontest.WriteFile(t, t.TempDir(), "etcdctl.sh", commontest.File(t, tr, EtcdctlEnv))
	out, ok := commontest.Run(t, bash, "-c", `. "$1" && printf '%s\n' "$ETCDCTL_API" "$ETCDCTL_ENDPOINTS" "$ETCDCTL_CACERT" "$ETCDCTL_CERT" "$ETCDCTL_KEY"`, "bash", p)
	if !ok {
		t.Fatal(out)
	}
	env := strings.Split(strings.TrimSpace(out), "\n")
	if len(env) != 5 {
		t.Fatalf("environment %q", env)
	}
	if env[0] != "3" || env[1] != "https://10.240.0.11:2379,https://10.240.0.12:2379" {
		t.Errorf("ETCDCTL_API=%s ETCDCTL_ENDPOINTS=%s", env[0], env[1])
	}
	files := map[string][]byte{}
	for _, f := range env[2:] {
		files[f] = commontest.File(t, tr, f)
	}
	if e, _ := tr.Get(env[4]); e.Mode != 0o600 || !e.Secret {
		t.Errorf("%s: mode %v secret %v, want a 0600 secret", env[4], e.Mode, e.Secret)
	}
	dir := t.TempDir()
	ca := commontest.WriteFile(t, dir, "ca.crt", files[env[2]])
	crt := commontest.WriteFile(t, dir, "client.crt", files[env[3]])
	if out, ok := commontest.Run(t, openssl, "verify", "-CAfile", ca, "-purpose", "sslclient", crt); !ok {
		t.Errorf("openssl verify: %s", out)
	}
	// The key belongs to the certificate.
	key := commontest.WriteFile(t, dir, "client.key", files[env[4]])
	pubCert, _ := commontest.Run(t, openssl, "x509", "-noout", "-pubkey", "-in", crt)
	pubKey, _ := commontest.Run(t, openssl, "pkey", "-pubout", "-in", key)
	if pubCert == "" || pubCert != pubKey {
		t.Errorf("%s does not match %s", env[4], env[3])
	}
}
