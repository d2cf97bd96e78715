package lxc

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// Template is one baked container template.
type Template struct {
	Path   string // the .tar.zst file
	SHA256 string // its checksum, also in <Path>.sha256
}

// Artifact is the result of a hardway-lxc build: the templates, and the
// generated data (node, roles, vmid, artifact, sha256) that post-processors
// read through State("generated_data").
type Artifact struct {
	Templates []Template
	StateData map[string]interface{}
}

// BuilderId identifies hardway-lxc artifacts.
func (a *Artifact) BuilderId() string { return BuilderID }

// Files lists the template files.
func (a *Artifact) Files() []string {
	out := make([]string, len(a.Templates))
	for i, t := range a.Templates {
		out[i] = t.Path
	}
	return out
}

// Id is the templates' file names, comma-separated: the names Proxmox's
// template storage lists them under.
func (a *Artifact) Id() string {
	names := make([]string, len(a.Templates))
	for i, t := range a.Templates {
		names[i] = filepath.Base(t.Path)
	}
	return strings.Join(names, ",")
}

// String lists each template with its SHA-256.
func (a *Artifact) String() string {
	var b strings.Builder
	b.WriteString("Proxmox LXC templates (sha256sum -c <file>.sha256):")
	for _, t := range a.Templates {
		b.WriteString("\n" + t.SHA256 + "  " + t.Path)
	}
	return b.String()
}

// State returns the named state data, such as "generated_data".
func (a *Artifact) State(name string) interface{} { return a.StateData[name] }

// Destroy removes the templates and their .sha256 files.
func (a *Artifact) Destroy() error {
	var errs []error
	for _, t := range a.Templates {
		for _, f := range []string{t.Path, t.Path + ".sha256"} {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
