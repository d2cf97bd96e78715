package spec

import (
	"fmt"
	"slices"
)

// Warning names. A spec that keeps a choice a warning is about names the
// warning in spec.acknowledgeWarnings: only validate shows it then, once,
// marked acknowledged, and every other command stays quiet about it.
const (
	WarnEvenEtcd      = "even-etcd-members" // an even number of etcd members
	WarnShortValidity = "short-validity"    // a CA or certificate lifetime under 30 days
	WarnNoImages      = "no-image-archives" // workers without archives of RequiredImages (a site with a registry mirror)
)

// warningNames are the warnings a spec can acknowledge: the enum of
// spec.acknowledgeWarnings in types.go (TestWarningNames keeps them equal).
var warningNames = []string{WarnEvenEtcd, WarnShortValidity, WarnNoImages}

// warn reports a warning that a spec can acknowledge by its name.
func (v *validator) warn(name, path, format string, args ...any) {
	i := v.d.at(path, format, args...)
	i.Warning, i.Name = true, name
	v.is = append(v.is, i)
}

// acknowledge marks the warnings the spec acknowledges, and warns about an
// acknowledgement that no longer has a warning to silence.
func (v *validator) acknowledge() {
	acked := v.d.Cluster.Spec.AcknowledgeWarnings
	used := map[string]bool{}
	for i := range v.is {
		if x := &v.is[i]; x.Warning && x.Name != "" && slices.Contains(acked, x.Name) {
			x.Acknowledged, used[x.Name] = true, true
		}
	}
	for i, name := range acked {
		if !used[name] {
			v.warnf(fmt.Sprintf("spec.acknowledgeWarnings[%d]", i), "%s: the spec has no such warning (any more); remove the acknowledgement", name)
		}
	}
}
