package clusterdir

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hardway-dev/hardway/emit"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/nodefiles"
	"github.com/hardway-dev/hardway/output"
	"github.com/hardway-dev/hardway/pki"
	"github.com/hardway-dev/hardway/spec"
)

// digests returns inputsDigests of cluster c with bundle b and no epoch.
func digests(c *spec.Cluster, b *pki.Bundle) map[string]string {
	return inputsDigests(nodegen.New(c, b), emit.Epoch{}, false)
}

// bundle issues the PKI of c in a directory of its own.
func bundle(t *testing.T, c *spec.Cluster) *pki.Bundle {
	t.Helper()
	d, err := output.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := pki.Ensure(c, d.Sub("pki", "pki"), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestInputsDigests: the digests that let a rerun skip a part of the
// outputs are the same for the same inputs, and differ when any of the
// part's inputs differs: a field of one node, a cluster-wide field, the
// PKI, the epoch. A digest that missed one would leave stale outputs
// behind. A worker's part changes with its own inputs and the cluster's,
// not with another worker's: that is what lets a rerun skip the others.
func TestInputsDigests(t *testing.T) {
	c := load(t, seed, "").Cluster
	b := bundle(t, c)
	base := digests(c, b)
	if again := digests(load(t, seed, "").Cluster, b); !maps.Equal(base, again) {
		t.Fatalf("the same inputs gave %v and %v", base, again)
	}
	for _, n := range c.Spec.Nodes {
		if base[nodefiles.Dir(n.Name)] == "" {
			t.Errorf("no digest for %s", n.Name)
		}
	}
	if base["nodes/worker1"] == base["nodes/worker2"] || base["nodes/worker1"] == base[""] {
		t.Errorf("worker1's digest is another part's: %v", base)
	}

	domain := load(t, seed, "").Cluster
	domain.Spec.Domain = "other.example"
	other := *b
	other.EncryptionKey = []byte("another key")
	renewed := *b
	renewed.Pairs = maps.Clone(b.Pairs)
	w1 := *b.Get("kubelet-worker1")
	w1.CertPEM = append([]byte("renewed "), w1.CertPEM...)
	renewed.Pairs["kubelet-worker1"] = &w1
	// The parts made from the whole cluster: "" and every node not viewed.
	whole := []string{""}
	for _, n := range c.Spec.Nodes {
		if !nodegen.Viewed(n) {
			whole = append(whole, nodefiles.Dir(n.Name))
		}
	}
	if len(whole) == 1 || len(whole) == len(c.Spec.Nodes)+1 {
		t.Fatalf("the seed's parts made from the whole cluster: %q", whole)
	}
	for _, tc := range []struct {
		what    string
		got     map[string]string
		changed []string // the parts whose digest must change; every other must not
	}{
		{"worker1's memory", digests(load(t, seed, variant(t, false)).Cluster, b), append(whole, "nodes/worker1")},
		{"worker1's certificate", digests(c, &renewed), append(whole, "nodes/worker1")},
		{"the domain", digests(domain, b), nil},
		{"the encryption key", digests(c, &other), nil},
		{"the epoch", inputsDigests(nodegen.New(c, b), emit.Epoch{Unix: 1, Set: true}, false), nil},
		{"writing the rootfs/ trees", inputsDigests(nodegen.New(c, b), emit.Epoch{}, true), nil},
	} {
		for part, was := range base {
			must := tc.changed == nil || part == "" || slices.Contains(tc.changed, part)
			if now := tc.got[part]; (now != was) != must || now == "" {
				t.Errorf("%s changed: part %q %q -> %q, want changed %v", tc.what, part, was, now, must)
			}
		}
	}
}

// TestViewsGiveTheSameBytes: a worker generated from its view of the
// cluster (nodegen.View) has the bytes it has when generated from the
// whole cluster, for every node of every example, and of the seed with
// apiServer.extraSANs naming workers (hostsAPI leaves a node's names out of
// the API endpoint's hosts line, so a view must hold the workers named
// there). The views are what inputsDigests hashes: a worker's output that
// read anything outside its view would fail here.
func TestViewsGiveTheSameBytes(t *testing.T) {
	examples, err := filepath.Glob("../examples/*.yaml")
	if err != nil || len(examples) == 0 {
		t.Fatalf("examples: %v %v", examples, err)
	}
	data, err := os.ReadFile(seed)
	if err != nil {
		t.Fatal(err)
	}
	named := strings.Replace(string(data), "extraSANs: [kubernetes.example.com]", "extraSANs: [kubernetes.example.com, worker1, worker2.example.com]", 1) +
		"    - {name: worker3, roles: [worker], target: lxc, address: 10.240.0.33/24, vmid: 233}\n"
	if !strings.Contains(named, "worker2.example.com") {
		t.Fatal("the seed's extraSANs line moved")
	}
	type doc struct{ name, text string }
	docs := []doc{{"seed with worker1 and worker2 in extraSANs", named}}
	for _, e := range examples {
		docs = append(docs, doc{e, ""})
	}
	for _, dc := range docs {
		t.Run(filepath.Base(dc.name), func(t *testing.T) {
			file := dc.name
			if dc.text != "" {
				file = seed
			}
			c := load(t, file, dc.text).Cluster
			x := nodegen.New(c, bundle(t, c))
			viewed := 0
			for _, n := range c.Spec.Nodes {
				v := x.View(n)
				if v == x {
					continue
				}
				viewed++
				if len(v.C.Spec.Nodes) != len(x.Shared())+1 {
					t.Errorf("%s: the view holds %d nodes, not the %d shared ones and itself", n.Name, len(v.C.Spec.Nodes), len(x.Shared()))
				}
				whole, view := t.TempDir(), t.TempDir()
				for dir, x := range map[string]*nodegen.Context{whole: x, view: v} {
					d, err := output.Open(dir)
					if err != nil {
						t.Fatal(err)
					}
					if err := node(x, d, n, time.Unix(1, 0), false); err != nil {
						t.Fatal(err)
					}
				}
				a, b := snapshot(t, whole), snapshot(t, view)
				if len(a) == 0 {
					t.Fatalf("%s: no outputs", n.Name)
				}
				for p, e := range a {
					if f, ok := b[p]; !ok || f.mode != e.mode || string(f.data) != string(e.data) {
						t.Errorf("%s: %s differs from its view's", n.Name, p)
					}
				}
				for p := range b {
					if _, ok := a[p]; !ok {
						t.Errorf("%s: its view made %s", n.Name, p)
					}
				}
			}
			if viewed == 0 {
				t.Error("no node was generated from a view")
			}
		})
	}
}
