package spec

import (
	"fmt"
	"regexp"
	"strings"
)

// KubernetesMinor is the Kubernetes minor release this hardway makes files
// for: its units' flags, the component configurations' API versions, the
// pause image and the checks against the pinned binaries are v1.34's.
// spec.kubernetesVersion must be a patch release of it.
const KubernetesMinor = "v1.34"

var kubernetesVersionRE = lazyRegexp(`^` + regexp.QuoteMeta(KubernetesMinor) + `\.[0-9]{1,4}$`)

// ruleKubernetesVersion accepts the patch releases of KubernetesMinor.
var ruleKubernetesVersion = rule{
	desc:    KubernetesMinor + ".Z, a patch release of the Kubernetes minor release this hardway makes files for",
	pattern: kubernetesVersionRE.String(),
	check: func(s string) string {
		if msg := ruleVersion.check(s); msg != "" {
			return msg
		}
		if !kubernetesVersionRE.MatchString(s) {
			return fmt.Sprintf("%s is not a %s release: this hardway makes files for Kubernetes %s.Z only (its units' flags and component configurations are %s's)",
				s, KubernetesMinor, KubernetesMinor, strings.TrimPrefix(KubernetesMinor, "v"))
		}
		return ""
	},
}
