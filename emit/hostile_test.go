package emit

import (
	"strings"
	"testing"
)

// TestHostileKeyRefused: an SSH key holding a line break, which validation
// refuses, set behind its back, is refused by both boot formats with the
// field named: cloud-init and Ignition would write the second line, here a
// forced command, into authorized_keys.
func TestHostileKeyRefused(t *testing.T) {
	x, nodes := testContext(t)
	key := x.C.Spec.SSH.AuthorizedKeys[0]
	x.C.Spec.SSH.AuthorizedKeys = []string{key + "\ncommand=\"touch /tmp/hardway-canary\" " + key}
	const field = "spec.ssh.authorizedKeys[0]: "
	if _, _, _, err := CloudInit(x, nodes["w1"], sampleTree()); err == nil || !strings.Contains(err.Error(), field) {
		t.Errorf("CloudInit: %v, want an error naming %s", err, field)
	}
	if _, err := Ignition(x, nodes["w2"], sampleTree(), testSysext); err == nil || !strings.Contains(err.Error(), field) {
		t.Errorf("Ignition: %v, want an error naming %s", err, field)
	}
}
