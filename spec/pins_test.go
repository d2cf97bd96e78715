package spec

import (
	"maps"
	"os"
	"strings"
	"testing"
)

// TestSetPins sets pins in specs with binaries.sha256 absent, empty, flow
// and block, and with no binaries at all: the result parses to exactly the
// pins, and every other line of the file is still there, in order.
func TestSetPins(t *testing.T) {
	pins := map[string]string{"etcd": strings.Repeat("a", 64), "kubectl": strings.Repeat("b", 64)}
	mixed, err := os.ReadFile("../examples/mixed.yaml") // no binaries section
	if err != nil {
		t.Fatal(err)
	}
	seed, err := os.ReadFile("../examples/seed-lxc.yaml") // binaries without sha256
	if err != nil {
		t.Fatal(err)
	}
	withFlow := strings.Replace(string(seed), "    dir: artifacts\n", "    dir: artifacts\n    sha256: {etcd: \"old\"}\n    # after\n", 1)
	withBlock := strings.Replace(string(seed), "    dir: artifacts\n", "    sha256:\n      etcd: \"old\"\n      kube-proxy: \"old\"\n    dir: artifacts\n", 1)
	for name, c := range map[string]struct {
		in      string
		dropped []string // lines of in the edit replaces
	}{
		"no binaries":  {in: string(mixed)},
		"no sha256":    {in: string(seed)},
		"flow sha256":  {in: withFlow, dropped: []string{"    sha256: {etcd: \"old\"}"}},
		"block sha256": {in: withBlock, dropped: []string{"    sha256:", "      etcd: \"old\"", "      kube-proxy: \"old\""}},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := SetPins(name, []byte(c.in), pins)
			if err != nil {
				t.Fatal(err)
			}
			doc, err := Parse(name, "", out)
			if err != nil {
				t.Fatal(err)
			}
			if got := doc.Cluster.Spec.Binaries.SHA256; !maps.Equal(got, pins) {
				t.Errorf("pins %v, want %v", got, pins)
			}
			// Every line of in, but the replaced ones, is in out, in order.
			rest := strings.Split(string(out), "\n")
			for _, l := range strings.Split(c.in, "\n") {
				if contains(c.dropped, l) {
					continue
				}
				i := index(rest, l)
				if i < 0 {
					t.Fatalf("line %q of the input is gone or out of order:\n%s", l, out)
				}
				rest = rest[i+1:]
			}
			if again, err := SetPins(name, out, pins); err != nil || string(again) != string(out) {
				t.Errorf("setting the same pins again changed the file: %v", err)
			}
		})
	}
	flowBinaries := strings.Replace(string(seed), "  binaries:\n", "  binaries: {mode: upstream}\n", 1)
	flowBinaries = strings.Replace(flowBinaries, "    mode: upstream\n    dir: artifacts\n", "", 1)
	if _, err := SetPins("flow", []byte(flowBinaries), pins); err == nil || !strings.Contains(err.Error(), "by hand") {
		t.Errorf("flow binaries: %v", err)
	}
}

func contains(ls []string, l string) bool { return index(ls, l) >= 0 }

func index(ls []string, l string) int {
	for i, x := range ls {
		if x == l {
			return i
		}
	}
	return -1
}
