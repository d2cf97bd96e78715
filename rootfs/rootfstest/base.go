// Package rootfstest finds the Debian bases hack/base.sh builds, for the
// tests that bake and boot real templates and images.
package rootfstest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The Debian bases hack/base.sh builds and caches, for the tests that bake
// and boot real templates and images: the option that selects each and the
// environment variable that overrides its path.
const (
	SmallBase = "--small" // $HARDWAY_BASE: systemd, iproute2, iptables, conntrack
	KVMBase   = "--kvm"   // $HARDWAY_KVM_BASE: with a kernel, systemd-boot and cloud-init
)

// Base returns the path of the cached base that option (SmallBase or
// KVMBase) selects, or its environment variable's; the test fails, naming
// the command that builds it, when there is none.
func Base(t testing.TB, option string) string {
	t.Helper()
	env := map[string]string{SmallBase: "HARDWAY_BASE", KVMBase: "HARDWAY_KVM_BASE"}[option]
	if b := os.Getenv(env); b != "" {
		return b
	}
	_, self, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(self), "..", "..", "hack", "base.sh")
	out, err := exec.Command(script, "path", option).Output()
	if err != nil {
		t.Fatalf("no Debian base: run `hack/base.sh %s` (make base-%s) or set %s", option, strings.TrimPrefix(option, "--"), env)
	}
	return strings.TrimSpace(string(out))
}
