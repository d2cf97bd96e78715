package spec

import (
	"os"
	"reflect"
	"slices"
	"testing"
)

// TestWarningNames: spec.acknowledgeWarnings takes exactly the names of
// the warnings a spec can acknowledge.
func TestWarningNames(t *testing.T) {
	for _, f := range Fields(reflect.TypeOf(ClusterSpec{})) {
		if f.Key == "acknowledgeWarnings" {
			if !slices.Equal(f.Enum, warningNames) {
				t.Errorf("the enum of acknowledgeWarnings is %v, the warnings are %v", f.Enum, warningNames)
			}
			return
		}
	}
	t.Error("ClusterSpec has no acknowledgeWarnings")
}

// TestAcknowledgeWarnings (issue 16, point 7): the seed acknowledging its
// even etcd count still has the warning, marked acknowledged and left out
// of Unacknowledged; an acknowledgement without its warning is a warning.
func TestAcknowledgeWarnings(t *testing.T) {
	data, err := os.ReadFile("../examples/seed-lxc.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, "  acknowledgeWarnings: [even-etcd-members, short-validity]\n"...)
	doc, err := Parse("seed.yaml", "../examples", data)
	if err != nil {
		t.Fatal(err)
	}
	is := doc.Validate(Options{})
	var even, stale *Issue
	for i := range is {
		switch x := &is[i]; {
		case x.Name == WarnEvenEtcd:
			even = x
		case x.Path == "spec.acknowledgeWarnings[1]":
			stale = x
		}
	}
	if len(is.Errors()) > 0 || even == nil || !even.Acknowledged || even.String() != "seed.yaml:59:5: warning (acknowledged even-etcd-members): spec.nodes: 2 etcd members: an even count tolerates no more failures than 1; use an odd number" {
		t.Errorf("even etcd count: %v", is)
	}
	if slices.ContainsFunc(is.Unacknowledged(), func(i Issue) bool { return i.Name == WarnEvenEtcd }) {
		t.Error("Unacknowledged keeps the acknowledged warning")
	}
	if stale == nil || !stale.Warning || stale.Acknowledged || stale.Msg != "short-validity: the spec has no such warning (any more); remove the acknowledgement" {
		t.Errorf("the acknowledgement of a warning the spec does not have: %v", stale)
	}
}
