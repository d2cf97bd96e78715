package plugintest

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// baseMember is one entry of the test base.
type baseMember struct {
	name, data, link string
	typ              byte
	mode             int64
}

// baseMembers is a minimal Debian-like root file system: what bake checks
// for (systemd, a /sbin entry, an os-release ID, a Debian template's
// debian_version), merged-/usr links, an
// identity for the sysprep to remove (machine-id, an SSH host key), and
// what the nodes' trees need of a base (neededMembers).
var baseMembers = append([]baseMember{
	{name: "bin", typ: tar.TypeSymlink, link: "usr/bin"},
	{name: "dev/", typ: tar.TypeDir, mode: 0o755},
	{name: "etc/", typ: tar.TypeDir, mode: 0o755},
	{name: "etc/debian_version", typ: tar.TypeReg, mode: 0o644, data: "12.8\n"},
	{name: "etc/machine-id", typ: tar.TypeReg, mode: 0o444, data: "0123456789abcdef0123456789abcdef\n"},
	{name: "etc/os-release", typ: tar.TypeReg, mode: 0o644, data: "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n"},
	{name: "etc/ssh/", typ: tar.TypeDir, mode: 0o755},
	{name: "etc/ssh/ssh_host_ed25519_key", typ: tar.TypeReg, mode: 0o600, data: "not a key\n"},
	{name: "lib", typ: tar.TypeSymlink, link: "usr/lib"},
	{name: "root/", typ: tar.TypeDir, mode: 0o700},
	{name: "sbin", typ: tar.TypeSymlink, link: "usr/sbin"},
	{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
	{name: "usr/", typ: tar.TypeDir, mode: 0o755},
	{name: "usr/bin/", typ: tar.TypeDir, mode: 0o755},
	{name: "usr/lib/", typ: tar.TypeDir, mode: 0o755},
	{name: "usr/lib/systemd/", typ: tar.TypeDir, mode: 0o755},
	{name: "usr/lib/systemd/system/", typ: tar.TypeDir, mode: 0o755},
	{name: "usr/lib/systemd/systemd", typ: tar.TypeReg, mode: 0o755, data: "#!/bin/sh\n# a stand-in for systemd\n"},
	{name: "usr/sbin/", typ: tar.TypeDir, mode: 0o755},
	{name: "var/", typ: tar.TypeDir, mode: 0o755},
	{name: "var/lib/", typ: tar.TypeDir, mode: 0o755},
}, neededMembers()...)

// neededMembers are stand-ins for what bake requires of a base for the
// nodes' trees and roles, in either binaries mode: networkd, haproxy and
// keepalived (lb), iptables (worker), the programs hardway's units run, and in binaries.mode packaged
// what the distribution's packages provide: containerd (its unit, shim and
// ctr), runc, the CNI plugins and etcd.
func neededMembers() []baseMember {
	var out []baseMember
	for _, u := range []string{"systemd-networkd", "systemd-networkd-wait-online", "haproxy", "keepalived", "containerd"} {
		out = append(out, baseMember{name: "usr/lib/systemd/system/" + u + ".service", typ: tar.TypeReg, mode: 0o644, data: "[Unit]\n"})
	}
	for _, p := range []string{"sh", "echo", "touch", "rm", "etcd", "containerd", "containerd-shim-runc-v2", "ctr", "runc"} {
		out = append(out, baseMember{name: "usr/bin/" + p, typ: tar.TypeReg, mode: 0o755, data: "#!/bin/sh\n"})
	}
	out = append(out, baseMember{name: "usr/lib/cni/", typ: tar.TypeDir, mode: 0o755})
	for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
		out = append(out, baseMember{name: "usr/lib/cni/" + p, typ: tar.TypeReg, mode: 0o755, data: "#!/bin/sh\n"})
	}
	out = append(out, baseMember{name: "usr/sbin/iptables", typ: tar.TypeReg, mode: 0o755, data: "#!/bin/sh\n"})
	return out
}

// Base writes a small zstd-compressed base root file system tarball into a
// new temporary directory and returns its path.
func Base(t testing.TB) string {
	t.Helper()
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	mtime := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, m := range baseMembers {
		h := &tar.Header{Name: m.name, Typeflag: m.typ, Mode: m.mode, Linkname: m.link, ModTime: mtime, Size: int64(len(m.data))}
		if m.typ == tar.TypeSymlink {
			h.Mode = 0o777
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(m.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "debian-12-test-base.tar.zst")
	if err := os.WriteFile(file, zw.EncodeAll(raw.Bytes(), nil), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}
