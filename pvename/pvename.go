// Package pvename names hardway's baked artifacts the Proxmox way, for bake
// (which writes them) and create-nodes.sh (which imports them).
package pvename

import (
	"fmt"
	"strings"
)

// File extensions of the artifacts.
const (
	ExtTemplate = "tar.zst" // LXC template, in a storage's vztmpl content
	ExtRaw      = "raw"     // KVM disk image
	ExtQCOW2    = "qcow2"   // KVM disk image
)

// Name is the Proxmox name of an artifact:
// <os>-<version>-hardway-<node|role>_<kubernetes version>_amd64.<ext>, the
// Kubernetes version without its "v" being the package version, as in
// debian-12-hardway-etcd1_1.34.2_amd64.tar.zst. osID and osVersion are the
// base's os-release ID and VERSION_ID ("rolling" when it has none).
func Name(osID, osVersion, subject, kubernetesVersion, ext string) string {
	if osVersion == "" {
		osVersion = "rolling"
	}
	return fmt.Sprintf("%s-%s-hardway-%s_%s_amd64.%s", osID, osVersion, subject, strings.TrimPrefix(kubernetesVersion, "v"), ext)
}
