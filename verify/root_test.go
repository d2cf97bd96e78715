package verify

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// testRoot builds a node tree in a temp dir and copies it to a root.
func testRoot(t *testing.T, files map[string]string) *Root {
	t.Helper()
	src := t.TempDir()
	for p, text := range files {
		host := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(host, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r, err := NewRoot(src, filepath.Join(t.TempDir(), "root"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRootPaths(t *testing.T) {
	r := testRoot(t, map[string]string{"opt/app/app.conf": "x", "etc/etcd/ca.crt": "x"})
	tests := []struct {
		arg, want string
		n         int
	}{
		{"/etc/etcd/ca.crt", r.Dir + "/etc/etcd/ca.crt", 1},
		{"--cert-file=/etc/etcd/ca.crt", "--cert-file=" + r.Dir + "/etc/etcd/ca.crt", 1},
		{"--data-dir=/var/lib/etcd", "--data-dir=" + r.Dir + "/var/lib/etcd", 1}, // per-node state, not in the tree
		{"--config=/opt/app/app.conf", "--config=" + r.Dir + "/opt/app/app.conf", 1},
		{"--files=/etc/a,/usr/b", "--files=" + r.Dir + "/etc/a,/usr/b", 1},
		{"--plugins=/opt/cni/bin", "--plugins=/opt/cni/bin", 0}, // /opt/cni is not in the tree
		{"/usr/bin/touch", "/usr/bin/touch", 0},
		{"--listen=https://10.0.0.1:2379,https://127.0.0.1:2379", "--listen=https://10.0.0.1:2379,https://127.0.0.1:2379", 0},
		{"--name=etcd1", "--name=etcd1", 0},
		{"-v", "-v", 0},
		{"/", "/", 0},
		{"//etc/x", "//etc/x", 0},
		{"/etcetera", "/etcetera", 0},
	}
	for _, tt := range tests {
		got, found := r.Arg(tt.arg)
		if got != tt.want || len(found) != tt.n {
			t.Errorf("Arg(%q) = %q, %q; want %q, %d paths", tt.arg, got, found, tt.want, tt.n)
		}
	}
	argv, paths := r.Argv([]string{"/etc/etcd/bin", "--cert-file=/etc/etcd/ca.crt"})
	if argv[0] != "/etc/etcd/bin" || len(paths) != 1 {
		t.Errorf("Argv must leave argv[0] alone: %q %q", argv, paths)
	}
}

func TestRewriteText(t *testing.T) {
	r := testRoot(t, map[string]string{"var/lib/kubernetes/k.kubeconfig": "x"})
	in := `clientConnection:
  kubeconfig: /var/lib/kubernetes/k.kubeconfig
  other: "/var/lib/kubernetes/k.kubeconfig"
server: https://127.0.0.1:6443/var/lib
args: ["-conf", "/usr/share/x"]
path=/run/x.sock,/etc/y
`
	want := `clientConnection:
  kubeconfig: ` + r.Dir + `/var/lib/kubernetes/k.kubeconfig
  other: "` + r.Dir + `/var/lib/kubernetes/k.kubeconfig"
server: https://127.0.0.1:6443/var/lib
args: ["-conf", "/usr/share/x"]
path=` + r.Dir + `/run/x.sock,` + r.Dir + `/etc/y
`
	got, found := r.RewriteText(in)
	if got != want || len(found) != 4 {
		t.Errorf("RewriteText:\n%s\nwant\n%s\nfound %q", got, want, found)
	}
}

// TestRewriteFiles: only files named by arguments, and the files they name,
// are rewritten; PEM files and unrelated files (manifests applied to the
// cluster) never are.
func TestRewriteFiles(t *testing.T) {
	const manifest = "volumeMounts:\n  - mountPath: /etc/coredns\n"
	r := testRoot(t, map[string]string{
		"var/lib/kubernetes/sched.yaml":           "kubeconfig: /var/lib/kubernetes/sched.kubeconfig\n",
		"var/lib/kubernetes/sched.kubeconfig":     "client-key: /var/lib/kubernetes/sched.key\n",
		"var/lib/kubernetes/sched.key":            "-----BEGIN EC PRIVATE KEY-----\n/etc/x\n",
		"var/lib/kubernetes/manifests/dns.yaml":   manifest,
		"var/lib/kubernetes/unrelated.conf":       "path: /etc/x\n",
		"var/lib/kubernetes/manifests/empty.yaml": "",
	})
	changed, err := r.RewriteFiles([]string{"/var/lib/kubernetes/sched.yaml", "/var/lib/kubernetes/manifests", "/var/lib/etcd"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/var/lib/kubernetes/sched.kubeconfig", "/var/lib/kubernetes/sched.yaml"}
	if !slices.Equal(changed, want) {
		t.Errorf("changed %q, want %q", changed, want)
	}
	read := func(p string) string {
		data, err := os.ReadFile(r.Path(p))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	if got := read("/var/lib/kubernetes/sched.kubeconfig"); got != "client-key: "+r.Dir+"/var/lib/kubernetes/sched.key\n" {
		t.Errorf("kubeconfig named by sched.yaml not rewritten: %q", got)
	}
	if got := read("/var/lib/kubernetes/manifests/dns.yaml"); got != manifest {
		t.Errorf("manifest changed: %q", got)
	}
	if got := read("/var/lib/kubernetes/unrelated.conf"); got != "path: /etc/x\n" {
		t.Errorf("unrelated file changed: %q", got)
	}
	// A second call does not rewrite twice.
	if again, err := r.RewriteFiles([]string{"/var/lib/kubernetes/sched.yaml"}); err != nil || len(again) != 0 {
		t.Errorf("second RewriteFiles = %q, %v", again, err)
	}
	if info, err := os.Stat(r.Path("/var/lib/kubernetes/sched.key")); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("copied key mode: %v %v", info.Mode(), err)
	}
}

func TestLastAddr(t *testing.T) {
	for in, want := range map[string]string{"10.240.0.0/24": "10.240.0.255", "192.168.50.7/22": "192.168.51.255", "10.0.0.0/8": "10.255.255.255"} {
		if got := lastAddr(mustPrefix(in)).String(); got != want {
			t.Errorf("lastAddr(%s) = %s, want %s", in, got, want)
		}
	}
}
