package bakeconfig

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/hardway-dev/hardway/bake"
	"github.com/hardway-dev/hardway/spec"
)

// Output is one baked file.
type Output struct {
	Path   string // the artifact file
	SHA256 string // its checksum, also in <Path>.sha256
}

// Artifact is the result of a bake build: the files, and the generated data
// (node, roles, vmid, artifact, sha256) that post-processors read through
// State("generated_data").
type Artifact struct {
	ID        string // the builder's artifact id, BuilderId
	What      string // what the files are, for String: "Proxmox LXC templates"
	Outputs   []Output
	StateData map[string]interface{}
}

// NewArtifact is the artifact of builder id that baked results (in the
// order given) for nodes: the files with their checksums, and the
// generated data of GeneratedData.
func NewArtifact(id, what string, nodes []spec.Node, results []bake.Result) *Artifact {
	a := &Artifact{ID: id, What: what}
	for _, r := range results {
		a.Outputs = append(a.Outputs, Output{Path: r.Path, SHA256: r.SHA256})
	}
	a.StateData = map[string]interface{}{"generated_data": GeneratedData(nodes, results)}
	return a
}

// BuilderId identifies the builder that made the artifact.
func (a *Artifact) BuilderId() string { return a.ID }

// Files lists the baked files.
func (a *Artifact) Files() []string {
	out := make([]string, len(a.Outputs))
	for i, o := range a.Outputs {
		out[i] = o.Path
	}
	return out
}

// Id is the files' names, comma-separated: the names Proxmox's storage
// lists them under.
func (a *Artifact) Id() string {
	names := make([]string, len(a.Outputs))
	for i, o := range a.Outputs {
		names[i] = filepath.Base(o.Path)
	}
	return strings.Join(names, ",")
}

// String lists each file with its SHA-256.
func (a *Artifact) String() string {
	var b strings.Builder
	b.WriteString(a.What + " (sha256sum -c <file>.sha256):")
	for _, o := range a.Outputs {
		b.WriteString("\n" + o.SHA256 + "  " + o.Path)
	}
	return b.String()
}

// State returns the named state data, such as "generated_data".
func (a *Artifact) State(name string) interface{} { return a.StateData[name] }

// Destroy removes the files and their .sha256 files.
func (a *Artifact) Destroy() error {
	var errs []error
	for _, o := range a.Outputs {
		for _, f := range []string{o.Path, o.Path + ".sha256"} {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Keys of the generated data a bake builder exposes to post-processors, as
// build.<key> in HCL2 and {{ .<key> }} in templates.
const (
	KeyNode     = "node"     // the node's name; for a role, the names of its nodes, comma-separated
	KeyRoles    = "roles"    // the roles baked in, comma-separated
	KeyVMID     = "vmid"     // the node's Proxmox id; for a role, the ids of its nodes, comma-separated
	KeyArtifact = "artifact" // the artifact file; for several, the files, comma-separated
	KeySHA256   = "sha256"   // the artifact's SHA-256; for several, the checksums, comma-separated
)

// GeneratedVars lists the generated data keys, for Prepare.
func GeneratedVars() []string {
	return []string{KeyNode, KeyRoles, KeyVMID, KeyArtifact, KeySHA256}
}

// GeneratedData is the generated data of a build for nodes that baked
// results: the nodes' names and ids in spec order, the roles the results
// carry, their files and checksums in order. Every value is a string:
// Packer carries generated data to post-processors through its RPC codec,
// which turns lists into values HCL2 cannot read back.
func GeneratedData(nodes []spec.Node, results []bake.Result) map[string]interface{} {
	var names, ids, roles, files, sums []string
	for _, n := range nodes {
		names = append(names, n.Name)
		ids = append(ids, strconv.Itoa(n.VMID))
	}
	for _, r := range results {
		for _, role := range r.Job.Roles {
			if !slices.Contains(roles, role) {
				roles = append(roles, role)
			}
		}
		files = append(files, r.Path)
		sums = append(sums, r.SHA256)
	}
	return map[string]interface{}{
		KeyNode:     strings.Join(names, ","),
		KeyRoles:    strings.Join(roles, ","),
		KeyVMID:     strings.Join(ids, ","),
		KeyArtifact: strings.Join(files, ","),
		KeySHA256:   strings.Join(sums, ","),
	}
}
