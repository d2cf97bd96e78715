package spec

import (
	"reflect"
	"testing"
)

// TestSuggest (issue 16, point 6): a misspelt key is answered with the
// field meant, and a far-off one with nothing.
func TestSuggest(t *testing.T) {
	node := Fields(reflect.TypeOf(Node{}))
	network := Fields(reflect.TypeOf(Network{}))
	for _, c := range []struct {
		key  string
		fs   []Field
		want string
	}{
		{"podCIRD", network, "podCIDR"},   // two letters swapped
		{"nodecidr", network, "nodeCIDR"}, // case
		{"gatway", network, "gateway"},    // one letter left out
		{"memory", node, "memoryMiB"},     // the unit left out
		{"adress", node, "address"},
		{"vmId", node, "vmid"},
		{"colour", node, ""},
		{"x", node, ""},
	} {
		hint, f := suggest(c.key, c.fs)
		got := ""
		if f != nil {
			got = f.Key
		}
		if got != c.want || (c.want != "" && hint != ` (did you mean "`+c.want+`"?)`) {
			t.Errorf("suggest(%q) = %q %q, want %q", c.key, hint, got, c.want)
		}
	}
}
