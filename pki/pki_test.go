package pki

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hardway-dev/hardway/output"
	"github.com/hardway-dev/hardway/spec"
)

func load(t *testing.T, path string, edit func(*spec.Cluster)) *spec.Cluster {
	t.Helper()
	doc, err := spec.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(doc.Cluster)
	}
	if is := doc.Validate(spec.Options{}).Errors(); len(is) > 0 {
		t.Fatal(is)
	}
	return doc.Cluster
}

func ensure(t *testing.T, c *spec.Cluster, dir string, o Options) *Bundle {
	t.Helper()
	d, err := output.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Ensure(c, d.Sub("pki", "pki"), o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPlanSeed checks the plan against the seed spec, with every expected
// value written out by hand from examples/seed-lxc.yaml.
func TestPlanSeed(t *testing.T) {
	c := load(t, "../examples/seed-lxc.yaml", nil)
	plan := Plan(c)
	type want struct {
		ca, cn, o      string
		server, client bool
		sans           []string
	}
	wants := map[string]want{
		"ca":             {cn: "kubernetes"},
		"etcd/ca":        {cn: "etcd-ca"},
		"front-proxy-ca": {cn: "front-proxy-ca"},
		"apiserver": {ca: "ca", cn: "kube-apiserver", server: true, sans: []string{
			"10.32.0.1", "127.0.0.1", "10.240.0.20", "10.240.0.21", "10.240.0.22", "10.240.0.10",
			"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost",
			"controller", "controller.example.com", "controller1", "controller1.example.com", "controller2", "controller2.example.com",
			"kubernetes.example.com"}},
		"apiserver-kubelet-client": {ca: "ca", cn: "kube-apiserver-kubelet-client", client: true},
		"apiserver-etcd-client":    {ca: "etcd/ca", cn: "kube-apiserver-etcd-client", client: true},
		"etcd/healthcheck-client":  {ca: "etcd/ca", cn: "kube-etcd-healthcheck-client", client: true},
		"front-proxy-client":       {ca: "front-proxy-ca", cn: "front-proxy-client", client: true},
		"admin":                    {ca: "ca", cn: "kubernetes-admin", o: "kubeadm:cluster-admins", client: true},
		"super-admin":              {ca: "ca", cn: "kubernetes-super-admin", o: "system:masters", client: true},
		"kube-controller-manager":  {ca: "ca", cn: "system:kube-controller-manager", client: true},
		"kube-scheduler":           {ca: "ca", cn: "system:kube-scheduler", client: true},
		"kube-proxy":               {ca: "ca", cn: "system:kube-proxy", o: "system:node-proxier", client: true},
		"etcd/server-etcd1": {ca: "etcd/ca", cn: "etcd1", server: true, client: true,
			sans: []string{"10.240.0.11", "127.0.0.1", "::1", "etcd1", "etcd1.example.com", "localhost"}},
		"etcd/peer-etcd1": {ca: "etcd/ca", cn: "etcd1", server: true, client: true,
			sans: []string{"10.240.0.11", "127.0.0.1", "::1", "etcd1", "etcd1.example.com", "localhost"}},
		"etcd/server-etcd2": {ca: "etcd/ca", cn: "etcd2", server: true, client: true,
			sans: []string{"10.240.0.12", "127.0.0.1", "::1", "etcd2", "etcd2.example.com", "localhost"}},
		"etcd/peer-etcd2": {ca: "etcd/ca", cn: "etcd2", server: true, client: true,
			sans: []string{"10.240.0.12", "127.0.0.1", "::1", "etcd2", "etcd2.example.com", "localhost"}},
		"kubelet-worker1": {ca: "ca", cn: "system:node:worker1", o: "system:nodes", server: true, client: true,
			sans: []string{"10.240.0.31", "worker1", "worker1.example.com"}},
		"kubelet-worker2": {ca: "ca", cn: "system:node:worker2", o: "system:nodes", server: true, client: true,
			sans: []string{"10.240.0.32", "worker2", "worker2.example.com"}},
	}
	if len(plan) != len(wants) {
		var names []string
		for _, r := range plan {
			names = append(names, r.Name)
		}
		t.Fatalf("plan has %d rows %v, want %d", len(plan), names, len(wants))
	}
	for _, r := range plan {
		w, ok := wants[r.Name]
		if !ok {
			t.Errorf("unexpected row %s", r.Name)
			continue
		}
		var sans []string
		for _, ip := range r.IPs {
			sans = append(sans, ip.String())
		}
		sans = append(sans, r.DNS...)
		sort.Strings(sans)
		ws := append([]string(nil), w.sans...)
		sort.Strings(ws)
		if r.CA != w.ca || r.CN != w.cn || strings.Join(r.O, ",") != w.o || r.Server != w.server || r.Client != w.client || strings.Join(sans, " ") != strings.Join(ws, " ") {
			t.Errorf("%s:\n got ca=%s cn=%s o=%v server=%v client=%v sans=%v\nwant %+v", r.Name, r.CA, r.CN, r.O, r.Server, r.Client, sans, w)
		}
	}
}

// TestIssued verifies every issued certificate with crypto/x509 (chain and
// key usage) and with openssl, and checks files, modes and PEM types.
func TestIssued(t *testing.T) {
	for _, tc := range []struct {
		spec, keyPEM string
		bits         int
	}{
		{"../examples/seed-lxc.yaml", "EC PRIVATE KEY", 256},
		{"../examples/mixed.yaml", "RSA PRIVATE KEY", 2048},
	} {
		t.Run(filepath.Base(tc.spec), func(t *testing.T) {
			c := load(t, tc.spec, nil)
			dir := t.TempDir()
			b := ensure(t, c, dir, Options{})
			pkiDir := filepath.Join(dir, "pki")
			leafValidity, _ := time.ParseDuration(c.Spec.PKI.CertValidity)
			for _, row := range b.Plan {
				crt := filepath.Join(pkiDir, row.Name+".crt")
				key := filepath.Join(pkiDir, row.Name+".key")
				checkMode(t, crt, 0o644)
				checkMode(t, key, 0o600)
				kb, _ := os.ReadFile(key)
				if blk, _ := pem.Decode(kb); blk == nil || blk.Type != tc.keyPEM {
					t.Errorf("%s: key PEM type is not %s", key, tc.keyPEM)
				}
				cert := parseCert(t, crt)
				if row.IsCA() {
					if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
						t.Errorf("%s: not a signing CA", row.Name)
					}
					continue
				}
				var usage []x509.ExtKeyUsage
				purpose := "sslclient"
				if row.Server {
					usage, purpose = append(usage, x509.ExtKeyUsageServerAuth), "sslserver"
				}
				if row.Client {
					usage = append(usage, x509.ExtKeyUsageClientAuth)
				}
				roots := x509.NewCertPool()
				roots.AddCert(parseCert(t, filepath.Join(pkiDir, row.CA+".crt")))
				for _, u := range usage {
					if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
						t.Errorf("%s: verify for %v: %v", row.Name, u, err)
					}
				}
				// Signed by another CA must fail: the chain is specific.
				other := x509.NewCertPool()
				for _, ca := range []string{CA, EtcdCA, FrontProxyCA} {
					if ca != row.CA {
						other.AddCert(parseCert(t, filepath.Join(pkiDir, ca+".crt")))
					}
				}
				if _, err := cert.Verify(x509.VerifyOptions{Roots: other, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
					t.Errorf("%s verifies against a CA that did not sign it", row.Name)
				}
				out, err := exec.Command("openssl", "verify", "-CAfile", filepath.Join(pkiDir, row.CA+".crt"), "-purpose", purpose, crt).CombinedOutput()
				if err != nil || !strings.Contains(string(out), ": OK") {
					t.Errorf("openssl verify %s: %v\n%s", row.Name, err, out)
				}
				if d := cert.NotAfter.Sub(cert.NotBefore); d < leafValidity || d > leafValidity+10*time.Minute {
					t.Errorf("%s: validity %s, want %s", row.Name, d, leafValidity)
				}
				if cert.Subject.CommonName != row.CN {
					t.Errorf("%s: CN %s", row.Name, cert.Subject.CommonName)
				}
				if row.Name == "apiserver" && !slices.ContainsFunc(cert.IPAddresses, func(ip net.IP) bool {
					a, _ := netip.AddrFromSlice(ip)
					return a.Unmap() == c.FirstServiceIP()
				}) {
					t.Errorf("apiserver lacks the kubernetes service IP")
				}
			}
			checkMode(t, filepath.Join(pkiDir, "sa.key"), 0o600)
			checkMode(t, filepath.Join(pkiDir, EncryptionKeyFile), 0o600)
			pub, _ := os.ReadFile(filepath.Join(pkiDir, "sa.pub"))
			if blk, _ := pem.Decode(pub); blk == nil || blk.Type != "PUBLIC KEY" {
				t.Errorf("sa.pub is not a PKIX PUBLIC KEY")
			}
		})
	}
}

func checkMode(t *testing.T, p string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Error(err)
		return
	}
	if st.Mode().Perm() != want {
		t.Errorf("%s: mode %04o, want %04o", p, st.Mode().Perm(), want)
	}
}

func parseCert(t *testing.T, p string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(data)
	if blk == nil {
		t.Fatalf("%s: no PEM", p)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			out[rel] = string(b)
		}
		return nil
	})
	return out
}

func changed(a, b map[string]string) []string {
	var out []string
	for k, v := range b {
		if a[k] != v {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// TestStateKept: a rerun changes nothing; a new SAN re-issues only the
// apiserver certificate, with the same CA; renew replaces key and cert.
func TestStateKept(t *testing.T) {
	dir := t.TempDir()
	c := load(t, "../examples/seed-lxc.yaml", nil)
	ensure(t, c, dir, Options{})
	before := snapshot(t, dir)
	if b := ensure(t, c, dir, Options{}); len(b.Changes) > 0 {
		t.Errorf("rerun changed %v", b.Changes)
	}
	if ch := changed(before, snapshot(t, dir)); len(ch) > 0 {
		t.Errorf("rerun rewrote %v", ch)
	}

	c2 := load(t, "../examples/seed-lxc.yaml", func(c *spec.Cluster) {
		c.Spec.APIServer.ExtraSANs = append(c.Spec.APIServer.ExtraSANs, "api.example.org")
	})
	b := ensure(t, c2, dir, Options{})
	if ch := changed(before, snapshot(t, dir)); strings.Join(ch, " ") != "pki/apiserver.crt pki/apiserver.key" {
		t.Errorf("a new SAN changed %v, want only the apiserver pair", ch)
	}
	if len(b.Changes) != 1 || !strings.Contains(b.Changes[0].Reason, "+api.example.org") {
		t.Errorf("changes = %v", b.Changes)
	}

	before = snapshot(t, dir)
	b = ensure(t, c2, dir, Options{Renew: []string{"kube-proxy"}})
	if ch := changed(before, snapshot(t, dir)); strings.Join(ch, " ") != "pki/kube-proxy.crt pki/kube-proxy.key" {
		t.Errorf("renew kube-proxy changed %v", ch)
	}
	if _, err := Ensure(c2, mustOpen(t, dir).Sub("pki", "pki"), Options{Renew: []string{"ca"}}); err == nil {
		t.Error("renewing a CA must be refused")
	}
	if _, err := Ensure(c2, mustOpen(t, dir).Sub("pki", "pki"), Options{Renew: []string{"nope"}}); err == nil {
		t.Error("renewing an unknown name must fail")
	}
}

func mustOpen(t *testing.T, dir string) *output.Dir {
	d, err := output.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestExternalCA: without ca.key, existing leaves are used, and a leaf that
// must be issued is a clear error rather than a new CA.
func TestExternalCA(t *testing.T) {
	dir := t.TempDir()
	c := load(t, "../examples/seed-kvm.yaml", nil)
	ensure(t, c, dir, Options{})
	os.Remove(filepath.Join(dir, "pki", "ca.key"))
	ensure(t, c, dir, Options{})
	os.Remove(filepath.Join(dir, "pki", "admin.crt"))
	_, err := Ensure(c, mustOpen(t, dir).Sub("pki", "pki"), Options{})
	if err == nil || !strings.Contains(err.Error(), "managed externally") {
		t.Fatalf("err = %v, want the external CA explained", err)
	}
	st := Check(c, mustOpen(t, dir).Sub("pki", "pki"), time.Now())
	for _, s := range st {
		if s.Name == "ca" && !s.External {
			t.Error("check does not flag the CA as externally managed")
		}
		if s.Name == "admin" && s.State != "missing" {
			t.Errorf("admin state %s, want missing", s.State)
		}
	}
}

// TestCheckExpiry drives Check with a clock near and past expiry.
func TestCheckExpiry(t *testing.T) {
	dir := t.TempDir()
	c := load(t, "../examples/seed-kvm.yaml", nil)
	ensure(t, c, dir, Options{})
	st := mustOpen(t, dir).Sub("pki", "pki")
	for _, tc := range []struct {
		after time.Duration
		leaf  string
	}{{0, "ok"}, {8760*time.Hour - 10*24*time.Hour, "expiring"}, {8761 * time.Hour, "expired"}} {
		for _, s := range Check(c, st, time.Now().Add(tc.after)) {
			if s.Name == "admin" && s.State != tc.leaf {
				t.Errorf("after %s: admin is %s, want %s", tc.after, s.State, tc.leaf)
			}
			if s.Name == "ca" && s.State != "ok" {
				t.Errorf("after %s: ca is %s", tc.after, s.State)
			}
		}
	}
}

// TestCAKeyWithoutCert: a run killed between the CA key's and the CA
// certificate's rename leaves the key alone; the next run issues the CA
// certificate from that key (so anything it could have signed still
// verifies), and the state is complete again.
func TestCAKeyWithoutCert(t *testing.T) {
	dir := t.TempDir()
	c := load(t, "../examples/seed-lxc.yaml", nil)
	first := ensure(t, c, dir, Options{})
	for _, ca := range []string{CA, EtcdCA, FrontProxyCA} {
		os.Remove(filepath.Join(dir, "pki", ca+".crt"))
	}
	b := ensure(t, c, dir, Options{})
	for _, ca := range []string{CA, EtcdCA, FrontProxyCA} {
		p := b.Get(ca)
		if !publicKeyEqual(p.X509.PublicKey, first.Get(ca).X509.PublicKey) {
			t.Errorf("%s: a new key, want the certificate issued from the existing one", ca)
		}
		if p.X509.Subject.CommonName != first.Get(ca).X509.Subject.CommonName || !p.X509.IsCA {
			t.Errorf("%s: subject %s, CA %v", ca, p.X509.Subject, p.X509.IsCA)
		}
	}
	// The leaves issued by the first CA certificate are kept and verify.
	for _, row := range b.Plan {
		if row.IsCA() {
			continue
		}
		if string(b.Get(row.Name).CertPEM) != string(first.Get(row.Name).CertPEM) {
			t.Errorf("%s was re-issued", row.Name)
		}
		leaf := parseCert(t, filepath.Join(dir, "pki", row.Name+".crt"))
		if err := leaf.CheckSignatureFrom(parseCert(t, filepath.Join(dir, "pki", row.CA+".crt"))); err != nil {
			t.Errorf("%s does not verify against the new CA certificate: %v", row.Name, err)
		}
	}
	for _, s := range Check(c, mustOpen(t, dir).Sub("pki", "pki"), time.Now()) {
		if s.State != "ok" {
			t.Errorf("%s: %s %s", s.Name, s.State, s.Reason)
		}
	}
}

// TestCheckKeyMode: a private key that others can read is not ok.
func TestCheckKeyMode(t *testing.T) {
	dir := t.TempDir()
	c := load(t, "../examples/seed-lxc.yaml", nil)
	ensure(t, c, dir, Options{})
	for _, name := range []string{"ca.key", "admin.key"} {
		if err := os.Chmod(filepath.Join(dir, "pki", name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bad := map[string]bool{}
	for _, s := range Check(c, mustOpen(t, dir).Sub("pki", "pki"), time.Now()) {
		if s.State != "ok" {
			bad[s.Name] = true
			if !strings.Contains(s.Reason, "0644") {
				t.Errorf("%s: reason %q does not name the mode", s.Name, s.Reason)
			}
		}
	}
	if len(bad) != 2 || !bad["ca"] || !bad["admin"] {
		t.Errorf("not ok: %v, want ca and admin", bad)
	}
}
