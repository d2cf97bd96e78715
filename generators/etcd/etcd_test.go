package etcd_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io/fs"
	"net"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/generators/etcd"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/output"
	"github.com/hardway-dev/hardway/pki"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// load parses and validates ../../examples/<name>; withPKI also issues its
// PKI into a temporary directory (the URL functions need none).
func load(t *testing.T, name string, withPKI bool) *nodegen.Context {
	t.Helper()
	doc, err := spec.LoadFile("../../examples/" + name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	if errs := doc.Validate(spec.Options{}).Errors(); len(errs) > 0 {
		t.Fatalf("validate %s: %v", name, errs)
	}
	if !withPKI {
		return nodegen.New(doc.Cluster, nil)
	}
	d, err := output.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := pki.Ensure(doc.Cluster, d.Sub("pki", "pki"), pki.Options{})
	if err != nil {
		t.Fatalf("pki for %s: %v", name, err)
	}
	return nodegen.New(doc.Cluster, b)
}

// The expectations are written by hand from the example specs.
func TestInitialCluster(t *testing.T) {
	for _, c := range []struct {
		spec, initial string
		clients       []string
	}{
		{"seed-lxc.yaml",
			"etcd1=https://10.240.0.11:2380,etcd2=https://10.240.0.12:2380",
			[]string{"https://10.240.0.11:2379", "https://10.240.0.12:2379"}},
		{"mixed.yaml",
			"cp1=https://192.168.50.11:2380,cp2=https://192.168.50.12:2380,cp3=https://192.168.50.13:2380",
			[]string{"https://192.168.50.11:2379", "https://192.168.50.12:2379", "https://192.168.50.13:2379"}},
		{"seed-kvm.yaml",
			"kub-master=https://10.240.0.200:2380",
			[]string{"https://10.240.0.200:2379"}},
	} {
		t.Run(c.spec, func(t *testing.T) {
			x := load(t, c.spec, false)
			if got := etcd.InitialCluster(x.C); got != c.initial {
				t.Errorf("InitialCluster = %q, want %q", got, c.initial)
			}
			if got := etcd.ClientURLs(x.C); !slices.Equal(got, c.clients) {
				t.Errorf("ClientURLs = %q, want %q", got, c.clients)
			}
		})
	}
}

func generate(t *testing.T, x *nodegen.Context, name string) *tree.Tree {
	t.Helper()
	n, ok := x.C.Node(name)
	if !ok {
		t.Fatalf("no node %s", name)
	}
	tr := tree.New(name)
	if err := etcd.Generate(x, n, tr); err != nil {
		t.Fatal(err)
	}
	if err := tr.Check(); err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestMemberFiles checks the files of etcd2 (seed-lxc): exactly the etcd CA
// certificate, the member's own server and peer pairs (keys 0600), the data
// directory 0700 and the enabled unit.
func TestMemberFiles(t *testing.T) {
	x := load(t, "seed-lxc.yaml", true)
	tr := generate(t, x, "etcd2")
	want := map[string]fs.FileMode{
		"/etc/etcd/ca.crt":                 0o644,
		"/etc/etcd/server.crt":             0o644,
		"/etc/etcd/server.key":             0o600,
		"/etc/etcd/peer.crt":               0o644,
		"/etc/etcd/peer.key":               0o600,
		"/var/lib/etcd":                    fs.ModeDir | 0o700,
		"/etc/systemd/system/etcd.service": 0o644,
		"/etc/systemd/system/multi-user.target.wants/etcd.service": fs.ModeSymlink | 0o777,
	}
	got := map[string]fs.FileMode{}
	for _, e := range tr.Entries() {
		if e.IsDir() && e.Path != "/var/lib/etcd" {
			continue // implicit parents
		}
		got[e.Path] = e.Mode
	}
	for p, m := range want {
		if got[p] != m {
			t.Errorf("%s: mode %v, want %v", p, got[p], m)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("unexpected %s", p)
		}
	}
	if u := tr.Units(); len(u) != 1 || u[0].Name != "etcd.service" || u[0].WantedBy != "multi-user.target" {
		t.Errorf("units %+v", u)
	}

	ca := parseCert(t, data(t, tr, "/etc/etcd/ca.crt"))
	if ca.Subject.CommonName != "etcd-ca" {
		t.Errorf("ca.crt is %q, want the etcd CA", ca.Subject.CommonName)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, base := range []string{"server", "peer"} {
		crt := data(t, tr, "/etc/etcd/"+base+".crt")
		if _, err := tls.X509KeyPair(crt, data(t, tr, "/etc/etcd/"+base+".key")); err != nil {
			t.Errorf("%s: key does not match: %v", base, err)
		}
		c := parseCert(t, crt)
		if c.Subject.CommonName != "etcd2" || !slices.ContainsFunc(c.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.ParseIP("10.240.0.12")) }) {
			t.Errorf("%s.crt: CN %q IPs %v, want etcd2 at 10.240.0.12", base, c.Subject.CommonName, c.IPAddresses)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s.crt does not chain to ca.crt: %v", base, err)
		}
	}
	caKey := strings.TrimSpace(string(x.PKI.Get("etcd/ca").KeyPEM))
	for _, e := range tr.Entries() {
		if strings.Contains(string(e.Data), caKey) {
			t.Errorf("%s holds the etcd CA key", e.Path)
		}
	}
}

// TestUnitFlags checks etcd1's command line against the spec, by hand.
func TestUnitFlags(t *testing.T) {
	tr := generate(t, load(t, "seed-lxc.yaml", true), "etcd1")
	unit := string(data(t, tr, "/etc/systemd/system/etcd.service"))
	argv := execStart(t, unit)
	if argv[0] != "/usr/local/bin/etcd" {
		t.Errorf("binary %s", argv[0])
	}
	want := map[string]string{
		"--name":                        "etcd1",
		"--data-dir":                    "/var/lib/etcd",
		"--listen-client-urls":          "https://10.240.0.11:2379,https://127.0.0.1:2379",
		"--advertise-client-urls":       "https://10.240.0.11:2379",
		"--listen-peer-urls":            "https://10.240.0.11:2380",
		"--initial-advertise-peer-urls": "https://10.240.0.11:2380",
		"--initial-cluster":             "etcd1=https://10.240.0.11:2380,etcd2=https://10.240.0.12:2380",
		"--initial-cluster-token":       "kublxc",
		"--initial-cluster-state":       "new",
		"--cert-file":                   "/etc/etcd/server.crt",
		"--key-file":                    "/etc/etcd/server.key",
		"--client-cert-auth":            "true",
		"--trusted-ca-file":             "/etc/etcd/ca.crt",
		"--peer-cert-file":              "/etc/etcd/peer.crt",
		"--peer-key-file":               "/etc/etcd/peer.key",
		"--peer-client-cert-auth":       "true",
		"--peer-trusted-ca-file":        "/etc/etcd/ca.crt",
	}
	got := map[string]string{}
	for _, a := range argv[1:] {
		k, v, _ := strings.Cut(a, "=")
		if _, dup := got[k]; dup {
			t.Errorf("%s given twice", k)
		}
		got[k] = v
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s=%q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected flag %s", k)
		}
	}
	if strings.Contains(unit, "http://") {
		t.Error("the unit has a plain-HTTP URL")
	}
	for _, line := range []string{"Type=notify", "Restart=on-failure", "LimitNOFILE=65536", "User=root"} {
		if !strings.Contains(unit, "\n"+line+"\n") {
			t.Errorf("no line %q", line)
		}
	}
}

// etcd34Flags are the flags of Debian 12's etcd-server 3.4.23 that the
// unit uses, each checked by hand in its `etcd --help`. A flag added
// in a later release (such as the --experimental-* flags 3.5 and 3.6 added
// or renamed) is not on the list, so this test stops it from reaching a unit
// that packaged mode runs under 3.4.
var etcd34Flags = []string{
	"--name", "--data-dir", "--listen-client-urls", "--advertise-client-urls", "--listen-peer-urls",
	"--initial-advertise-peer-urls", "--initial-cluster", "--initial-cluster-token", "--initial-cluster-state",
	"--cert-file", "--key-file", "--client-cert-auth", "--trusted-ca-file",
	"--peer-cert-file", "--peer-key-file", "--peer-client-cert-auth", "--peer-trusted-ca-file",
}

// TestPackagedUnit: in binaries.mode packaged (the seed's KVM cluster) the
// member runs Debian's etcd 3.4 from etcd-server, /usr/bin/etcd, with flags
// that release has.
func TestPackagedUnit(t *testing.T) {
	tr := generate(t, load(t, "seed-kvm.yaml", true), "kub-master")
	argv := execStart(t, string(data(t, tr, "/etc/systemd/system/etcd.service")))
	if argv[0] != "/usr/bin/etcd" {
		t.Errorf("binary %s, want Debian's /usr/bin/etcd", argv[0])
	}
	for _, a := range argv[1:] {
		if k, _, _ := strings.Cut(a, "="); !slices.Contains(etcd34Flags, k) {
			t.Errorf("flag %s: not a flag of etcd 3.4", k)
		}
	}
}

// TestGolden compares etcd1's unit with testdata/golden/etcd1/etcd.service;
// update with `go test -update`.
func TestGolden(t *testing.T) {
	tr := generate(t, load(t, "seed-lxc.yaml", true), "etcd1")
	got := data(t, tr, "/etc/systemd/system/etcd.service")
	g := "testdata/golden/etcd1/etcd.service"
	if *update {
		if err := os.MkdirAll("testdata/golden/etcd1", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(g, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(g)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("etcd.service differs from %s (run go test -update and review the diff):\n%s", g, got)
	}
}

func data(t *testing.T, tr *tree.Tree, p string) []byte {
	t.Helper()
	e, ok := tr.Get(p)
	if !ok {
		t.Fatalf("no %s", p)
	}
	return e.Data
}

func parseCert(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// execStart returns the words of the unit's single ExecStart, joining
// "\"-continued lines.
func execStart(t *testing.T, unit string) []string {
	t.Helper()
	joined := strings.ReplaceAll(unit, "\\\n", " ")
	var out []string
	for _, l := range strings.Split(joined, "\n") {
		if v, ok := strings.CutPrefix(l, "ExecStart="); ok {
			if out != nil {
				t.Fatal("two ExecStart lines")
			}
			out = strings.Fields(v)
		}
	}
	if out == nil {
		t.Fatal("no ExecStart")
	}
	return out
}
