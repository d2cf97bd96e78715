package spec

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// validate loads a file and returns every issue as printed by the CLI.
func validate(t *testing.T, path string) Issues {
	t.Helper()
	doc, err := LoadFile(path)
	if err != nil {
		var is Issues
		if !errors.As(err, &is) {
			t.Fatalf("%s: %v", path, err)
		}
		return is
	}
	return doc.Validate(Options{Artifacts: true})
}

// TestInvalidCorpus checks that every spec under testdata/invalid fails with
// exactly the error lines recorded in testdata/invalid.golden. Each golden
// line was reviewed by hand against its file; run with -update after adding a case.
func TestInvalidCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 100 {
		t.Fatalf("only %d invalid specs; the corpus must keep at least 100", len(files))
	}
	var got []string
	for _, f := range files {
		is := validate(t, f)
		if len(is.Errors()) == 0 {
			t.Errorf("%s: accepted, want an error", f)
		}
		// The corpus is about errors; most of its specs have workers and
		// no spec.images (TestRequiredImagesWarning covers that warning).
		for _, i := range exceptImages(is) {
			got = append(got, i.String())
		}
	}
	golden := "testdata/invalid.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(strings.Join(got, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	wantLines := strings.Split(strings.TrimSpace(string(want)), "\n")
	if strings.Join(got, "\n") != strings.Join(wantLines, "\n") {
		for i := 0; i < len(got) || i < len(wantLines); i++ {
			var g, w string
			if i < len(got) {
				g = got[i]
			}
			if i < len(wantLines) {
				w = wantLines[i]
			}
			if g != w {
				t.Errorf("line %d:\n got: %s\nwant: %s", i+1, g, w)
			}
		}
	}
}

func TestExamplesValid(t *testing.T) {
	files, _ := filepath.Glob("../examples/*.yaml")
	if len(files) < 3 {
		t.Fatalf("want at least 3 examples, have %v", files)
	}
	for _, f := range files {
		is := validate(t, f)
		if len(is.Errors()) > 0 {
			t.Errorf("%s: %v", f, is.Errors())
		}
	}
	// The seed keeps two etcd members; the validator must say why that is a bad idea.
	w := exceptImages(validate(t, "../examples/seed-lxc.yaml")).Warnings()
	if len(w) != 1 || !strings.Contains(w[0].Msg, "2 etcd members") {
		t.Errorf("seed-lxc warnings = %v, want one about 2 etcd members", w)
	}
}

func TestDefaults(t *testing.T) {
	doc, err := Parse("t.yaml", ".", []byte(`apiVersion: hardway.dev/v1alpha1
kind: Cluster
metadata: {name: d}
spec:
  kubernetesVersion: v1.34.2
  network: {nodeCIDR: 192.168.7.0/24}
  nodes:
    - {name: c, roles: [controller, etcd], target: kvm, address: 192.168.7.5/24, vmid: 100}
    - {name: w, roles: [worker], target: lxc, address: 192.168.7.6/24, vmid: 101}
`))
	if err != nil {
		t.Fatal(err)
	}
	if is := exceptImages(doc.Validate(Options{})); len(is) > 0 {
		t.Fatal(is)
	}
	s := doc.Cluster.Spec
	checks := map[string][2]string{
		"gateway":     {s.Network.Gateway, "192.168.7.1"},
		"dns":         {strings.Join(s.Network.DNS, ","), "192.168.7.1"},
		"podCIDR":     {s.Network.PodCIDR, "10.200.0.0/16"},
		"serviceCIDR": {s.Network.ServiceCIDR, "10.32.0.0/24"},
		"clusterDNS":  {s.Network.ClusterDNS, "10.32.0.10"},
		"algorithm":   {s.PKI.Algorithm, "ecdsa-p256"},
		"provider":    {s.Encryption.Provider, "aescbc"},
		"boot":        {s.Nodes[0].Boot, "cloud-init"},
		"lxc boot":    {s.Nodes[1].Boot, ""},
		"domain":      {s.ClusterDomain, "cluster.local"},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %q, want %q", name, c[0], c[1])
		}
	}
	if s.Nodes[1].Cores != 4 || s.Nodes[1].MemoryMiB != 4096 || s.Nodes[0].Cores != 2 {
		t.Errorf("node sizes: %+v", s.Nodes)
	}
	if got := doc.Cluster.APIServerURL(); got != "https://192.168.7.5:6443" {
		t.Errorf("APIServerURL = %s, want the first controller", got)
	}
}

func TestPodCIDRs(t *testing.T) {
	doc, err := LoadFile("../examples/mixed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc.Validate(Options{})
	got := doc.Cluster.PodCIDRs()
	want := map[string]string{"w1": "10.244.0.0/24", "w2": "10.244.1.0/24", "w3": "10.244.2.0/24"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for n, p := range want {
		if got[n] != netip.MustParsePrefix(p) {
			t.Errorf("%s: %s, want %s", n, got[n], p)
		}
	}
	if s, ok := subnet(netip.MustParsePrefix("10.200.0.0/16"), 24, 255); !ok || s.String() != "10.200.255.0/24" {
		t.Errorf("subnet 255 = %v %v", s, ok)
	}
	if _, ok := subnet(netip.MustParsePrefix("10.200.0.0/16"), 24, 256); ok {
		t.Error("subnet 256 of a /16 in /24s must not exist")
	}
}

// TestSchemaUpToDate keeps the checked-in schema (used by the examples'
// yaml-language-server line) equal to `hardway schema`.
func TestSchemaUpToDate(t *testing.T) {
	got, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	path := "../schema/cluster.schema.json"
	if *update {
		os.WriteFile(path, got, 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("%s is stale: run go run ./cmd/hardway schema > schema/cluster.schema.json", path)
	}
	var s struct {
		Properties map[string]json.RawMessage `json:"properties"`
		Required   []string                   `json:"required"`
	}
	if err := json.Unmarshal(got, &s); err != nil {
		t.Fatal(err)
	}
	sort.Strings(s.Required)
	if strings.Join(s.Required, ",") != "apiVersion,kind,metadata,spec" {
		t.Errorf("required = %v", s.Required)
	}
}

// FuzzParse: no input may panic the parser or the validator.
func FuzzParse(f *testing.F) {
	corpus, _ := filepath.Glob("testdata/invalid/*.yaml")
	for _, p := range append([]string{"../examples/seed-lxc.yaml", "../examples/mixed.yaml", "testdata/base.yaml"}, corpus...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("a: &a [*a, *a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := Parse("fuzz.yaml", "testdata", data)
		if err != nil {
			return
		}
		doc.Validate(Options{})
		if doc.Cluster != nil && len(doc.Cluster.Spec.Nodes) > 0 {
			_ = doc.Cluster.PodCIDRs()
		}
	})
}

// TestReferenceUpToDate keeps docs/spec.md equal to the generated reference.
func TestReferenceUpToDate(t *testing.T) {
	path := "../docs/spec.md"
	got := Reference()
	if *update {
		os.MkdirAll("../docs", 0o755)
		os.WriteFile(path, []byte(got), 0o644)
	}
	want, _ := os.ReadFile(path)
	if string(want) != got {
		t.Fatalf("%s is stale: run go test ./spec -run TestReferenceUpToDate -update", path)
	}
	for _, f := range []string{"`spec.nodes[].vmid`", "`spec.network.podCIDRMaskSize`", "`spec.binaries.sha256`"} {
		if !strings.Contains(got, f) {
			t.Errorf("reference lacks %s", f)
		}
	}
	// The Default column is the schema's defaults (issue 16 point 9): each
	// on its field's row, and none on a derived one (the gateway).
	defaults := schemaDefaults()
	rows := map[string]string{}
	for _, line := range strings.Split(got, "\n") {
		if cols := strings.Split(line, " | "); len(cols) > 4 && strings.HasPrefix(cols[0], "| `") {
			rows[strings.Trim(cols[0], "| `")] = cols[3]
		}
	}
	for p, d := range defaults {
		if want := fmt.Sprintf("`%v`", d); rows[p] != want {
			t.Errorf("reference: %s has default %q, want %q", p, rows[p], want)
		}
	}
	if len(defaults) < 17 || rows["spec.network.gateway"] != "" {
		t.Errorf("%d defaults; gateway's is %q, want none", len(defaults), rows["spec.network.gateway"])
	}
}

// TestNICs: testdata/two-nics.yaml is valid; its gateway's default route
// moves to the public interface, leaving eth0 the route to the pods through
// network.gateway; a node without a gateway on its second NIC keeps
// network.gateway as its default route; a node without interfaces has one NIC.
func TestNICs(t *testing.T) {
	doc, err := LoadFile("testdata/two-nics.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if is := doc.Validate(Options{}).Errors(); len(is) > 0 {
		t.Fatal(is)
	}
	c := doc.Cluster
	want := map[string][]NIC{
		"gw": {
			{Index: 0, Name: "eth0", Bridge: "vmbr3", Address: "10.240.0.1/24", Routes: []Route{{To: "10.200.0.0/16", Via: "10.240.0.2"}}},
			{Index: 1, Name: "eth1", Bridge: "vmbr0", Address: "203.0.113.5/24", Gateway: "203.0.113.1"},
		},
		"cp1": {
			{Index: 0, Name: "eth0", Bridge: "vmbr3", Address: "10.240.0.21/24", Gateway: "10.240.0.2"},
			{Index: 1, Name: "eth1", Bridge: "vmbr4", Address: "192.168.10.21/24"},
		},
		"w1": {{Index: 0, Name: "eth0", Bridge: "vmbr3", Address: "10.240.0.31/24", Gateway: "10.240.0.2"}},
	}
	for _, n := range c.Spec.Nodes {
		if got := c.NICs(n); !reflect.DeepEqual(got, want[n.Name]) {
			t.Errorf("%s: NICs\n got %+v\nwant %+v", n.Name, got, want[n.Name])
		}
	}
}
