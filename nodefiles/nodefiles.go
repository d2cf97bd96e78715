// Package nodefiles names the files a cluster's output directory holds for
// each node and the ones bake writes beside them, so that generate (which
// writes them), the Proxmox host files, bake, verify and the Packer data
// source (which name or read them) spell each path once.
package nodefiles

import (
	"fmt"
	"path"
	"strings"

	"github.com/hardway-dev/hardway/spec"
)

// An Artifact is one file or directory of a node, at nodes/<node>/<Name>
// below the cluster's output directory, recorded in its manifest as Kind.
type Artifact struct {
	Name string
	Kind string
}

// The artifacts of a node: OverlayTar on every node, Rootfs when asked for,
// ProxmoxConf on every node, CloudInit and SeedISO on a kvm node booted by
// cloud-init, Ignition on one booted by Ignition (unless bake writes it:
// IgnitionConfig).
var (
	Rootfs      = Artifact{"rootfs", "rootfs"}             // the tree as files at their final paths
	OverlayTar  = Artifact{"overlay.tar", "overlay-tar"}   // the tree as a reproducible tar
	ProxmoxConf = Artifact{"proxmox.conf", "proxmox-conf"} // the pct or qm configuration lines
	CloudInit   = Artifact{"cloud-init", "cloud-init"}     // the NoCloud files, NoCloudFiles
	SeedISO     = Artifact{"seed.iso", "seed-iso"}         // the NoCloud files as a seed ISO
	Ignition    = Artifact{"ignition.json", "ignition"}    // the Ignition config
)

// All is every artifact a node may have.
var All = []Artifact{Rootfs, OverlayTar, ProxmoxConf, CloudInit, SeedISO, Ignition}

// The NoCloud files of CloudInit (and of SeedISO).
const (
	UserData      = "user-data"
	MetaData      = "meta-data"
	NetworkConfig = "network-config"
)

// NoCloudFiles are the files of CloudInit, in the order they are written.
var NoCloudFiles = []string{UserData, MetaData, NetworkConfig}

// NodesDir is the directory of every node's artifacts.
const NodesDir = "nodes"

// BakeDir is the directory below the cluster's output directory where
// hardway bake writes its artifacts unless told otherwise.
const BakeDir = "bake"

// Dir is node's directory, relative to the cluster's output directory.
func Dir(node string) string { return path.Join(NodesDir, node) }

// Path is a's path for node, relative to the cluster's output directory.
func (a Artifact) Path(node string) string { return path.Join(Dir(node), a.Name) }

// SysextFileName is the name of node's systemd-sysext image in the output
// of hardway bake --format sysext (and below spec.ignition.url):
// hardway-<node>_<kubernetes version>_x86-64.raw. On the node it is
// nodegen.SysextPath.
func SysextFileName(c *spec.Cluster, node string) string {
	return fmt.Sprintf("hardway-%s_%s_x86-64.raw", node, version(c))
}

// IgnitionFileName is the name of the Ignition config that hardway bake
// --format sysext writes for node with its image:
// hardway-<node>_<kubernetes version>.ign.
func IgnitionFileName(c *spec.Cluster, node string) string {
	return fmt.Sprintf("hardway-%s_%s.ign", node, version(c))
}

// version is the Kubernetes version without its "v".
func version(c *spec.Cluster) string { return strings.TrimPrefix(c.Spec.KubernetesVersion, "v") }

// IgnitionConfig is the path, relative to the cluster's output directory,
// of the Ignition config that boots n (a node booted by Ignition): the one
// hardway bake --format sysext writes in BakeDir with the image it names
// by SHA-256 when n has one (spec.Node.Sysext), else n's Ignition artifact.
func IgnitionConfig(c *spec.Cluster, n spec.Node) string {
	if n.Sysext() {
		return path.Join(BakeDir, IgnitionFileName(c, n.Name))
	}
	return Ignition.Path(n.Name)
}
