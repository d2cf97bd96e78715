package spec

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFieldRules keeps fieldRules complete: every string of the spec (field,
// list item, map key or value) has an enum or a rule, and every rule a string.
func TestFieldRules(t *testing.T) {
	used := map[string]bool{}
	var walk func(typ reflect.Type, key string, enum bool)
	walk = func(typ reflect.Type, key string, enum bool) {
		switch typ.Kind() {
		case reflect.String:
			_, ok := fieldRules[key]
			switch {
			case enum && ok:
				t.Errorf("%s has an enum and a rule in fieldRules; one says it", key)
			case !enum && !ok:
				t.Errorf("%s: a string field without an enum needs a rule in fieldRules", key)
			}
			used[key] = true
		case reflect.Struct:
			for _, f := range Fields(typ) {
				walk(f.Type, join(key, f.Key), len(f.Enum) > 0)
			}
		case reflect.Slice:
			walk(typ.Elem(), key+"[]", enum)
		case reflect.Map:
			walk(typ.Key(), key+".(key)", false)
			walk(typ.Elem(), key+".*", false)
		case reflect.Int:
			if f, ok := intField(key); !ok || !f.Range {
				t.Errorf("%s: an integer field needs a range tag", key)
			}
		}
	}
	walk(reflect.TypeOf(Cluster{}), "", false)
	for k := range fieldRules {
		if !used[k] {
			t.Errorf("fieldRules has %s, which is no string of the spec", k)
		}
	}
}

// intField finds the Field of an integer at a fieldRules-style key.
func intField(key string) (Field, bool) {
	typ := reflect.TypeOf(Cluster{})
	var f Field
	for _, part := range strings.Split(key, ".") {
		part = strings.TrimSuffix(part, "[]")
		if typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		var ok bool
		if f, ok = fieldByKey(Fields(typ), part); !ok {
			return Field{}, false
		}
		typ = f.Type
	}
	return f, true
}

// TestRules: each rule against values it must take and values it must refuse
// (newlines, shell metacharacters, .. components).
func TestRules(t *testing.T) {
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFCG/fLUJYAU3QQzPB228lOyUJv7uI91Zipd7p6XZlvz"
	for _, c := range []struct {
		name string
		r    rule
		good []string
		bad  []string
	}{
		{"label", ruleDNSLabel, []string{"a", "w-1", strings.Repeat("a", 63)}, []string{"", "A", "-a", "a-", "a.b", "a\n", strings.Repeat("a", 64), "$(id)"}},
		{"dns name", ruleDNSName, []string{"example.com", "lan", "a.b.c"}, []string{"", ".", "a..b", "a.", "Example.com", "a.com\n", "a;b", strings.Repeat("a.", 127) + "a"}},
		{"version", ruleVersion, []string{"v1.34.2", "v1.0.0"}, []string{"1.34.2", "v1.34", "v1.34.2\n", "v1.34.2-rc.1", "v1.34.2;id"}},
		{"cidr", ruleCIDR, []string{"10.0.0.0/8", "fd00::/64"}, []string{"10.0.0.1/8", "10.0.0.0", "10.0.0.0/8\n", ""}},
		{"ip", ruleIP, []string{"10.0.0.1", "fd00::1"}, []string{"", "10.0.0.1\n", "10.0.0.1/24", "localhost"}},
		{"vip", optional(ruleIP), []string{"", "10.0.0.1"}, []string{"x"}},
		{"address", ruleAddress, []string{"10.0.0.5/24"}, []string{"10.0.0.5", "10.0.0.5/24\n"}},
		{"san", ruleSAN, []string{"k8s.example.com", "*.example.com", "10.0.0.1"}, []string{"", "*", "a b", "$(id).example.com", "a\nb"}},
		{"duration", ruleDuration, []string{"1h", "8760h", "1h30m"}, []string{"", "0", "-1h", "1y", "1h\n"}},
		{"dir", ruleDir, []string{"artifacts", "./artifacts", "a/b/c", "."}, []string{"", "/usr/bin", "..", "a/../b", "../x", "a b", "a\nb", "-x", "a/-x", "~/x", `a\b`, strings.Repeat("a", 1025)}},
		{"image", ruleImage, []string{"images/pause.tar", "coredns.oci.tar"}, []string{"pause.tar.gz", "../x.tar", "/x.tar", ".hidden.tar", "a/.tar", "x.tar\nExecStartPre=reboot", "$(reboot).tar", "a;b.tar", "a'b.tar"}},
		{"file name", ruleFileName, []string{"etcd", "kube-apiserver", "cni-plugin_1.0+x"}, []string{"", ".", "..", "a/b", "-x", ".x", "a b", "a\n"}},
		{"sha256", ruleSHA256, []string{strings.Repeat("a", 64)}, []string{strings.Repeat("A", 64), strings.Repeat("a", 63), strings.Repeat("a", 64) + "\n"}},
		{"ssh key", ruleSSHKey, []string{key, key + " ops@lab.internal", key + " Jane Doe 2026-01-01"},
			[]string{"", key + "\ncommand=\"id\" " + key, `command="id" ` + key, "ssh-ed25519", "ssh-ed25519 AAAA", "ssh-rsa " + strings.TrimPrefix(key, "ssh-ed25519 "), "ssh-dss AAAAB3NzaC1kc3M=", key + " $(id)", key + " a`b`", key + "\tx", strings.Replace(key, "AAAAC3", "AAAAC$", 1)}},
		{"storage", ruleStorage, []string{"local", "local-lvm", "CephPool_1", "nfs.store"}, []string{"", "a", "1local", "local-", "local lvm", "local\nlxc.apparmor.profile: unconfined", "$(id)", "a/b"}},
		{"url", ruleURL, []string{"http://10.240.0.1:8080/", "https://files.lab.internal/hardway/mixed", "http://[fd00::1]:80/x"},
			[]string{"", "ftp://h/", "http://", "http://u:p@h/", "http://h/?x=1", "http://h/#x", "http://h/a b", "http://h/\nx", "file:///srv", "http://h:123456/"}},
		{"ignition variant", ruleIgnitionVariant, []string{"fcos", "flatcar"}, []string{"", "coreos", "Flatcar"}},
		{"disk image", ruleDiskImage, []string{"flatcar_production_proxmoxve_image.img", "fedora-coreos-42.x86_64.qcow2"}, []string{"", "../x.img", "a/b.img", ".x", "-x", "a\nb"}},
		{"bridge", ruleBridge, []string{"vmbr0", "vmbr0.100", "br_x-1"}, []string{"", ".", "..", "vmbr0\npost-up reboot", "../../etc", "a/b", "vmbr 0", strings.Repeat("b", 16)}},
	} {
		for _, s := range c.good {
			if m := c.r.check(s); m != "" {
				t.Errorf("%s: %q refused: %s", c.name, s, m)
			}
		}
		for _, s := range c.bad {
			if c.r.check(s) == "" {
				t.Errorf("%s: %q accepted", c.name, s)
			}
		}
	}
}

// TestIssueOneLine: whatever a spec holds, an issue prints as one line.
func TestIssueOneLine(t *testing.T) {
	i := Issue{File: "c.yaml", Line: 1, Col: 2, Path: "spec.x\ny", Msg: "bad \x1b[31m\u2028"}
	if got, want := i.String(), `c.yaml:1:2: spec.x\ny: bad \x1b[31m\u2028`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestLoadFileNotRegular: a FIFO, /dev/zero and a directory are refused at
// once (a FIFO used to block forever, /dev/zero to fill memory), and a file
// over the limit is an issue naming it.
func TestLoadFileNotRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "cluster.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, maxSpecBytes+1); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{
		{fifo, "is not a regular file (a FIFO)"},
		{"/dev/zero", "/dev/zero is not a regular file (a character device)"},
		{dir, "is not a regular file (a directory)"},
		{big, "big.yaml:1:1: (document): the file is larger than 4 MiB, the limit of a cluster spec"},
	} {
		done := make(chan error, 1)
		go func() { _, err := LoadFile(c.path); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v, want an error with %q", c.path, err, c.want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: LoadFile still running after 5s", c.path)
		}
	}
	// Parse, given the bytes, has the same limit.
	_, err := Parse("big.yaml", ".", make([]byte, maxSpecBytes+1))
	var is Issues
	if !errors.As(err, &is) || !strings.Contains(is.Error(), "larger than 4 MiB") {
		t.Errorf("Parse of a big input: %v", err)
	}
}

// TestMeaningfulValues: explicit values that mean something are not taken
// for "unset": swap 0, no VIP, empty lists of extras; null is unset.
func TestMeaningfulValues(t *testing.T) {
	doc, err := Parse("t.yaml", ".", []byte(`apiVersion: hardway.dev/v1alpha1
kind: Cluster
metadata: {name: d}
spec:
  kubernetesVersion: v1.34.2
  domain: ~
  network: {nodeCIDR: 192.168.7.0/24}
  apiServer: {vip: "", extraSANs: []}
  images: []
  ssh: {authorizedKeys: []}
  binaries: {sha256: {}}
  nodes:
    - {name: c, roles: [controller, etcd], target: kvm, address: 192.168.7.5/24, vmid: 100, cores: ~}
    - {name: w, roles: [worker], target: lxc, address: 192.168.7.6/24, vmid: 101, swapMiB: 0}
`))
	if err != nil {
		t.Fatal(err)
	}
	if is := exceptImages(doc.Validate(Options{})); len(is) > 0 {
		t.Fatal(is)
	}
	if s := doc.Cluster.Spec; s.Domain != "example.com" || s.Nodes[0].Cores != 2 {
		t.Errorf("null did not take the default: domain %q, cores %d", s.Domain, s.Nodes[0].Cores)
	}
}

// TestValidityWarning: a lifetime under 30 days is valid with a warning.
func TestValidityWarning(t *testing.T) {
	data, err := os.ReadFile("testdata/base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.Replace(string(data), "spec:\n", "spec:\n  pki: {caValidity: 8760h, certValidity: 168h}\n", 1))
	doc, err := Parse("base.yaml", "testdata", data)
	if err != nil {
		t.Fatal(err)
	}
	is := exceptImages(doc.Validate(Options{}))
	if len(is.Errors()) > 0 || len(is.Warnings()) != 1 || is[0].Path != "spec.pki.certValidity" {
		t.Errorf("got %v, want one warning about certValidity", is)
	}
}

// TestArtifactsNotRegular: a pinned binary or an image that is a FIFO is
// reported, not read (hashing a FIFO would block validate).
func TestArtifactsNotRegular(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"bin/etcd", "images/pause.tar"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(filepath.Join(dir, p), 0o600); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
	}
	data, err := os.ReadFile("testdata/base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.Replace(string(data), "spec:\n", "spec:\n  images: [images/pause.tar]\n  binaries: {dir: bin, sha256: {etcd: \""+strings.Repeat("a", 64)+"\"}}\n", 1))
	if err := os.WriteFile(filepath.Join(dir, "cluster.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan Issues, 1)
	go func() {
		doc, err := LoadFile(filepath.Join(dir, "cluster.yaml"))
		if err != nil {
			done <- Issues{{Msg: err.Error()}}
			return
		}
		done <- doc.Validate(Options{Artifacts: true})
	}()
	select {
	case is := <-done:
		if n := strings.Count(is.Error(), "not a regular file (a FIFO)"); n != 2 {
			t.Errorf("got %v, want the binary and the image refused as FIFOs", is)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("validate still running after 5s")
	}
}

// TestYAMLSyntaxPosition: a syntax error points at the line that breaks
// the document (yaml.v3 names the line before, or where the broken
// construct starts), at its first character.
func TestYAMLSyntaxPosition(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"a: 1\nb:\n  c: [1, 2\nd: 3\n", "t.yaml:3:3"},
		{"a: 1\nb: {x: 1\n", "t.yaml:2:1"},
		{"a: 1\n- b\n", "t.yaml:2:1"},
		{"a:\n  - 1\n  b: 2\n", "t.yaml:3:3"},
		{"a: 1\nb: 2\n c: 3\n", "t.yaml:3:2"},
		{"a: 1\n\tb: 2\n", "t.yaml:2:1"},
		{"a: b: c\n", "t.yaml:1:1"},
		// A flow mapping over two lines before the error is not it.
		{"n: {a: 1,\n  b: 2}\nm:\n  x: 1\n y: 2\n", "t.yaml:5:2"},
		// A second document is read to its end.
		{"a: 1\n---\nb: [\n", "t.yaml:3:1"},
	} {
		_, err := Parse("t.yaml", ".", []byte(c.in))
		var is Issues
		if !errors.As(err, &is) || len(is) != 1 || !strings.HasPrefix(is[0].String(), c.want+": (document): YAML syntax: ") {
			t.Errorf("%q: %v, want %s", c.in, err, c.want)
		}
	}
}
