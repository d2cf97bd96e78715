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
	FullBase  = ""        // $HARDWAY_FULL_BASE: what every role needs (haproxy, keepalived, sshd, ...)
)

// Base returns the path of the cached base that option (SmallBase, KVMBase
// or FullBase) selects, or its environment variable's; the test fails, naming
// the command that builds it, when there is none.
func Base(t testing.TB, option string) string {
	t.Helper()
	env := map[string]string{SmallBase: "HARDWAY_BASE", KVMBase: "HARDWAY_KVM_BASE", FullBase: "HARDWAY_FULL_BASE"}[option]
	if b := os.Getenv(env); b != "" {
		return b
	}
	_, self, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(self), "..", "..", "hack", "base.sh")
	args, target := []string{"path"}, "base"
	if option != FullBase {
		args, target = append(args, option), "base-"+strings.TrimPrefix(option, "--")
	}
	out, err := exec.Command(script, args...).Output()
	if err != nil {
		t.Fatalf("no Debian base: run `hack/base.sh %s` (make %s) or set %s", option, target, env)
	}
	return strings.TrimSpace(string(out))
}
