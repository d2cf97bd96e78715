package emit

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// clusterYAML has two KVM workers (one booted by cloud-init, one by
// Ignition) and a KVM gateway with a second, public interface.
const clusterYAML = `apiVersion: hardway.dev/v1alpha1
kind: Cluster
metadata: {name: test}
spec:
  kubernetesVersion: v1.34.2
  domain: example.com
  network:
    nodeCIDR: 10.240.0.0/24
    gateway: 10.240.0.1
    dns: [10.240.0.1, 10.240.0.2]
    podCIDR: 10.200.0.0/16
  ssh:
    authorizedKeys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGhhcmR3YXktZXhhbXBsZS1rZXktcmVwbGFjZS1tZQ ops@example.com
  nodes:
    - {name: c1, roles: [controller, etcd], target: kvm, address: 10.240.0.21/24, vmid: 221}
    - {name: w1, roles: [worker], target: kvm, address: 10.240.0.31/24, vmid: 231}
    - {name: w2, roles: [worker], target: kvm, address: 10.240.0.32/24, vmid: 232, boot: ignition}
    - name: gw
      roles: [gateway]
      target: kvm
      address: 10.240.0.2/24
      vmid: 202
      interfaces: [{bridge: vmbr1, address: 203.0.113.5/24, gateway: 203.0.113.1}]
`

// testContext parses clusterYAML and returns the generator context and its nodes by name.
func testContext(t *testing.T) (*nodegen.Context, map[string]spec.Node) {
	t.Helper()
	doc, err := spec.Parse("cluster.yaml", ".", []byte(clusterYAML))
	if err != nil {
		t.Fatal(err)
	}
	c := doc.Cluster
	spec.ApplyDefaults(c)
	nodes := map[string]spec.Node{}
	for _, n := range c.Spec.Nodes {
		nodes[n.Name] = n
	}
	return &nodegen.Context{C: c, PodCIDRs: c.PodCIDRs()}, nodes
}

// binaryData is not UTF-8 and holds NUL and CR bytes.
var binaryData = []byte{0x7f, 'E', 'L', 'F', 0, 0xff, 0xfe, '\r', '\n', 0x80, 0}

// longDir makes a path longer than USTAR's 100-byte name field.
var longDir = "/opt/" + strings.Repeat("long-directory-name-", 6)

// sampleTree holds every kind of entry an emitter must carry: text, a
// secret, a binary, an empty file, an owned file, explicit directories (one
// empty, one owned 0700), a plain symlink, two units enabled by symlinks, a
// path too long for USTAR and YAML-hostile text.
func sampleTree() *tree.Tree {
	t := tree.New("w1")
	t.File("/etc/hosts", 0o644, []byte("127.0.0.1 localhost\n10.240.0.31 w1.example.com w1\n"))
	t.Secret("/etc/etcd/server.key", []byte("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIDummyKeyMaterial\n-----END EC PRIVATE KEY-----\n"))
	t.File("/etc/etcd/server.crt", 0o644, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	t.File("/usr/local/bin/tool", 0o755, binaryData)
	t.File("/etc/empty.conf", 0o600, nil)
	t.File("/etc/tricky.yaml", 0o644, []byte("key: value # not a comment\n  indented: 'x'\n\ttab\n- item\n---\n|\n\"quoted\"\ntrailing space \n\nno final newline"))
	t.DirOwned("/var/lib/etcd", 0o700, 1000, 1001)
	t.FileOwned("/var/lib/etcd/member.conf", 0o640, 1000, 1001, []byte("name=w1\n"), false)
	t.Dir("/var/lib/empty", 0o750)
	t.File(longDir+"/file.txt", 0o644, []byte("deep\n"))
	t.Symlink("/etc/alternatives/tool", "/usr/local/bin/tool")
	t.File(tree.UnitDir+"/a.service", 0o644, []byte("[Unit]\nDescription=A\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"))
	t.File(tree.UnitDir+"/b.service", 0o644, []byte("[Unit]\nDescription=B\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"))
	t.Enable("b.service", "multi-user.target")
	t.Enable("a.service", "multi-user.target")
	return t
}

// node is what a format holds at one path, written the same way whatever
// produced it: "d 0755 0:0", "f 0600 0:0 <sha-less data>", "l -> target".
type node string

// want is what t says must be on disk, relative to a root. Implicit parent
// directories are listed with 0755 root:root, as tree.Entries() describes them.
func want(t *tree.Tree, owners bool) map[string]node {
	out := map[string]node{}
	for _, e := range t.Entries() {
		out[e.Path] = describe(e.Mode, e.UID, e.GID, e.Data, e.Target, owners)
	}
	return out
}

// describe renders one entry for comparison.
func describe(mode fs.FileMode, uid, gid int, data []byte, target string, owners bool) node {
	own := ""
	if owners {
		own = fmt.Sprintf(" %d:%d", uid, gid)
	}
	switch {
	case mode&fs.ModeDir != 0:
		return node(fmt.Sprintf("d %04o%s", mode.Perm(), own))
	case mode&fs.ModeSymlink != 0:
		return node("l -> " + target)
	default:
		return node(fmt.Sprintf("f %04o%s %q", mode.Perm(), own, data))
	}
}

// snapshot reads the tree below root from disk.
func snapshot(t *testing.T, root string, owners bool) map[string]node {
	t.Helper()
	out := map[string]node{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		sys := st.Sys().(*syscall.Stat_t)
		var data []byte
		var target string
		switch {
		case st.Mode().IsRegular():
			data, err = os.ReadFile(p)
		case st.Mode()&fs.ModeSymlink != 0:
			target, err = os.Readlink(p)
		}
		out["/"+filepath.ToSlash(strings.TrimPrefix(p, root+"/"))] = describe(st.Mode(), int(sys.Uid), int(sys.Gid), data, target, owners)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// diff lists the paths where got and want differ.
func diff(got, want map[string]node) string {
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		if got[k] != want[k] {
			fmt.Fprintf(&b, "%s:\n  got  %s\n  want %s\n", k, got[k], want[k])
		}
	}
	return b.String()
}

// tool returns the path of an external program. Short tests skip; otherwise
// a missing tool fails the test.
func tool(t *testing.T, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: skipping the test with %s", name)
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is required (apt-get install the package providing it): %v", name, err)
	}
	return p
}

// run runs a command and returns its stdout, failing the test on error.
func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out
}

// isRoot reports whether owners can be set and checked.
func isRoot() bool { return os.Geteuid() == 0 }
