package bake

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/rootfs"
	"github.com/hardway-dev/hardway/spec"
)

// TestBaseLacksRoleNeeds (issue 16 point 6, issue 13): a base without what
// a node's roles need is refused before anything is written, naming the
// node, the role, what is missing and what provides it; an optional need
// (chrony) is a warning.
func TestBaseLacksRoleNeeds(t *testing.T) {
	doc := packagedExample(t, "seed-lxc.yaml")
	x, _ := generated(t, doc)
	const units = "./usr/lib/systemd/system/"
	cases := []struct {
		node    string
		without []string
		want    []string
	}{
		{"lb1", []string{units + "haproxy.service", units + "keepalived.service"}, []string{
			"node lb1 (role lb) needs haproxy.service, which the base lacks", "package haproxy, in the full base (hack/base.sh",
			"node lb1 (role lb) needs keepalived.service", "package keepalived"}},
		{"lb1", []string{units + "systemd-networkd.service"}, []string{
			"node lb1 (every role) needs systemd-networkd.service", "network file", "package systemd, in every hack/base.sh base"}},
		// binaries.mode packaged: the distribution's etcd, containerd,
		// runc and CNI plugins (Kubernetes is pinned, in the layers).
		{"etcd1", []string{"./usr/bin/etcd"}, []string{"node etcd1 (role etcd) needs /usr/bin/etcd", "etcd.service runs it",
			"Debian's package etcd-server", "hack/base.sh --kvm"}},
		{"worker1", []string{units + "containerd.service"}, []string{
			"node worker1 (role worker) needs containerd.service", "package containerd"}},
		{"worker1", []string{"./usr/bin/runc", "./usr/lib/cni/bridge"}, []string{
			"node worker1 (role worker) needs /usr/bin/runc", "Debian's package runc",
			"node worker1 (role worker) needs /usr/lib/cni/bridge", "Debian's package containernetworking-plugins"}},
		// pct's Debian setup reads it (templates only).
		{"lb1", []string{"./etc/debian_version"}, []string{"no /etc/debian_version: pct reads a Debian container's release from it"}},
		// In no Exec line: kube-proxy and the CNI plugins run it.
		{"worker1", []string{"./usr/sbin/iptables"}, []string{
			"node worker1 (role worker) needs /usr/sbin/iptables", "kube-proxy writes the Services' rules with it", "package iptables"}},
	}
	for _, c := range cases {
		t.Run(c.node+" without "+strings.Join(c.without, ","), func(t *testing.T) {
			out := t.TempDir()
			_, err := bakeOne(t, context.Background(), x, doc, syntheticBase(t, c.without...), out, c.node)
			t.Log(err)
			var be *BaseError
			for _, w := range c.want {
				if !errors.As(err, &be) || !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want a BaseError saying %q", err, w)
				}
			}
			if es := entries(t, out); len(es) > 0 {
				t.Errorf("left %v", es)
			}
		})
	}
}

// packagedExample loads the example spec file in binaries.mode packaged
// (the base brings the distribution's binaries; syntheticBase has
// stand-ins), with stand-ins pinned for Kubernetes (fakeBins), and without
// its image archives, which are not built here.
func packagedExample(t *testing.T, file string) *spec.Document {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("../examples", file))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(data), "mode: upstream", "mode: packaged", 1)
	s = regexp.MustCompile(`(?m)^  images: .*\n`).ReplaceAllString(s, "")
	src := filepath.Join(t.TempDir(), file)
	if err := os.WriteFile(src, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return pinnedSpec(t, src, packagedBins()...)
}

// pinnedSpec loads a pinned copy of the spec file src (PinnedCopy) whose
// binaries are stand-ins (fakeBins) for bins.
func pinnedSpec(t *testing.T, src string, bins ...string) *spec.Document {
	t.Helper()
	fakes := fakeBins(t, bins...) // in one directory
	copied, err := PinnedCopy(src, t.TempDir(), []string{filepath.Dir(fakes[bins[0]])}, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(copied)
	if err != nil {
		t.Fatal(err)
	}
	return loadSpecIn(t, filepath.Dir(copied), data)
}

// TestOptionalNeedWarns: a KVM node enables chrony.service, which it can do
// without: a base without it is a warning naming it, not an error.
func TestOptionalNeedWarns(t *testing.T) {
	doc := packagedExample(t, "seed-kvm.yaml")
	x, _ := generated(t, doc)
	jobs, err := KVMJobs(x, "kub-node1", "")
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cfg := Config{Doc: doc, Base: syntheticBase(t), Log: slog.New(slog.NewTextHandler(&logs, nil))}
	layers, err := roleLayers(doc, jobs)
	if err != nil {
		t.Fatal(err)
	}
	info := scanBase(t, cfg, jobs)
	if err := checkNeeds(cfg.Log, cfg.Base, doc.Cluster.Spec.Binaries.Mode, jobs, layers, info); err != nil {
		t.Errorf("a base without chrony refused: %v", err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "node kub-node1 (every role) enables chrony.service, which the base lacks (package chrony") {
		t.Errorf("no warning about chrony:\n%s", logs.String())
	}
}

// TestRoleImageNeeds: a role image has no tree, yet its role's needs are
// checked: the worker role image needs iptables from the base, which no
// Exec line names (kube-proxy and the CNI plugins run it).
func TestRoleImageNeeds(t *testing.T) {
	doc := testSpec(t, spec.ModePackaged, nil, nil)
	x, _ := generated(t, doc)
	jobs, err := KVMJobs(x, "", spec.RoleWorker)
	if err != nil {
		t.Fatal(err)
	}
	if jobs[0].Tree != nil {
		t.Fatalf("job %s has a tree: not a role image", jobs[0].Subject)
	}
	layers, err := roleLayers(doc, jobs)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		without []string
		want    string
	}{
		{nil, ""},
		{[]string{"./usr/sbin/iptables"}, "(role worker) needs /usr/sbin/iptables, which the base lacks"},
	} {
		cfg := Config{Doc: doc, Base: syntheticBase(t, c.without...)}
		info := scanBase(t, cfg, jobs)
		err := checkNeeds(slog.New(slog.DiscardHandler), cfg.Base, doc.Cluster.Spec.Binaries.Mode, jobs, layers, info)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("a base with iptables refused: %v", err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("a base without %v: err = %v, want %q", c.without, err, c.want)
		}
	}
}

// scanBase learns cfg's base as a bake of jobs does.
func scanBase(t *testing.T, cfg Config, jobs []Job) *rootfs.BaseInfo {
	t.Helper()
	f, err := os.Open(cfg.Base)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, err := rootfs.Scan(context.Background(), f, watchNames(jobs, cfg.Doc.Cluster.Spec.Binaries.Mode)...)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// TestExecPrograms: the programs a unit runs are read as systemd reads
// them. A quoted executable, a prefix and a continuation line name their
// program; a setting outside [Service] and a commented line name none.
func TestExecPrograms(t *testing.T) {
	unit := []byte(`[Unit]
ExecStart=/usr/bin/not-a-service-setting

[Service]
# ExecStart=/usr/bin/commented
ExecStartPre=-"/opt/quoted dir/pre" --flag
ExecStart=/usr/local/bin/main \
  --address=0.0.0.0
ExecStop=+/bin/stop
`)
	got := execPrograms(unit)
	want := []string{"/opt/quoted dir/pre", "/usr/local/bin/main", "/bin/stop"}
	if !slices.Equal(got, want) {
		t.Errorf("execPrograms = %q, want %q", got, want)
	}
}
