package bake

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"sort"

	"github.com/hardway-dev/hardway/generators/gen"
	"github.com/hardway-dev/hardway/generators/worker"
	"github.com/hardway-dev/hardway/rootfs"
	"github.com/hardway-dev/hardway/spec"
)

// binDir is where bake installs the pinned binaries (gen.Context.Bin).
const binDir = gen.PinnedBinDir

// binary is one row of the role binaries table: a file of binaries.dir that
// a role needs, and where it goes on the node.
type binary struct {
	role     string
	name     string // file name in binaries.dir, key of binaries.sha256, name on the node
	dir      string // directory on the node
	optional bool   // an operator's tool: installed when pinned, else left out
}

// binaries is what each role runs from pinned files: every row in
// binaries.mode upstream; in packaged mode the rows the base's packages do
// not provide (fromBase). The units of the role generators start the
// required ones (x.Bin(name)); containerd starts its shim and runc, and the
// CNI plugins; the optional ones are tools for an operator on the node.
var binaries = func() []binary {
	b := []binary{
		{role: spec.RoleEtcd, name: "etcd", dir: binDir},
		{role: spec.RoleEtcd, name: "etcdctl", dir: binDir, optional: true},
		{role: spec.RoleEtcd, name: "etcdutl", dir: binDir, optional: true},
		{role: spec.RoleController, name: "kube-apiserver", dir: binDir},
		{role: spec.RoleController, name: "kube-controller-manager", dir: binDir},
		{role: spec.RoleController, name: "kube-scheduler", dir: binDir},
		{role: spec.RoleController, name: "kubectl", dir: binDir}, // the bootstrap unit applies the manifests with it
		{role: spec.RoleGateway, name: "kubectl", dir: binDir, optional: true},
		{role: spec.RoleGateway, name: "etcdctl", dir: binDir, optional: true},
		{role: spec.RoleWorker, name: "crictl", dir: binDir, optional: true},
	}
	for _, n := range worker.Binaries {
		b = append(b, binary{role: spec.RoleWorker, name: n, dir: binDir})
	}
	for _, n := range worker.CNIPlugins {
		b = append(b, binary{role: spec.RoleWorker, name: n, dir: worker.UpstreamCNIBinDir})
	}
	return b
}()

// fromBase reports whether, in binaries.mode mode, the base's packages
// provide row b rather than binaries.dir: in packaged mode the distribution's
// binaries (gen.Distributed) and the CNI plugins (containernetworking-plugins,
// in worker.PackagedCNIBinDir).
func (b binary) fromBase(mode string) bool {
	if mode != spec.ModePackaged {
		return false
	}
	_, dist := gen.Distributed[b.name]
	return dist || b.dir == worker.UpstreamCNIBinDir
}

// MissingPinError is a binary a role needs that binaries.sha256 does not pin.
type MissingPinError struct {
	Name, Role, Node, File string
}

func (e *MissingPinError) Error() string {
	return fmt.Sprintf("spec.binaries.sha256 has no pin for %s, which role %s of %s needs: add %s: \"<sha256sum of %s>\"",
		e.Name, e.Role, e.Node, e.Name, e.File)
}

// pinCache remembers the binaries already checked against their pins in a
// run, so that baking many nodes hashes each file once before the bakes
// (each bake hashes it again while copying it).
type pinCache map[string]rootfs.Entry

// pinned returns the checked entry of src at dest.
func (c pinCache) pinned(dest, src, want string) (rootfs.Entry, error) {
	key := dest + "\x00" + src + "\x00" + want
	if e, ok := c[key]; ok {
		return e, nil
	}
	e, err := rootfs.PinnedFile(dest, 0o755, src, want)
	if err == nil {
		c[key] = e
	}
	return e, err
}

// binariesLayer is the role layer of an artifact with roles: the pinned
// binaries those roles need, each checked against its pin before use, and
// on workers the spec's image archives. In binaries.mode packaged it holds
// Kubernetes only: the base's packages provide the rest (fromBase).
func binariesLayer(doc *spec.Document, subject string, roles []string, pins pinCache) (rootfs.Layer, error) {
	s := doc.Cluster.Spec
	l := rootfs.Layer{Name: "binaries"}
	seen := map[string]bool{}
	var errs []error
	for _, b := range binaries {
		if b.fromBase(s.Binaries.Mode) || !slices.Contains(roles, b.role) {
			continue
		}
		dest := path.Join(b.dir, b.name)
		if seen[dest] {
			continue
		}
		seen[dest] = true
		src := filepath.Join(doc.BinariesDir(), b.name)
		want, pinned := s.Binaries.SHA256[b.name]
		if !pinned {
			if !b.optional {
				errs = append(errs, &MissingPinError{Name: b.name, Role: b.role, Node: subject, File: src})
			}
			continue
		}
		e, err := pins.pinned(dest, src, want)
		if err != nil {
			errs = append(errs, fmt.Errorf("spec.binaries.sha256.%s: %w", b.name, err))
			continue
		}
		l.Entries = append(l.Entries, e)
	}
	if slices.Contains(roles, spec.RoleWorker) {
		for _, img := range s.Images {
			e, err := rootfs.StatFile(worker.ImagePath(img), 0o644, filepath.Join(doc.Dir, img))
			if err != nil {
				errs = append(errs, fmt.Errorf("spec.images: %w", err))
				continue
			}
			l.Entries = append(l.Entries, e)
		}
	}
	sort.Slice(l.Entries, func(i, j int) bool { return l.Entries[i].Path < l.Entries[j].Path })
	return l, errors.Join(errs...)
}

// Pins hashes, for `hardway pin`, every binary the roles of the spec's nodes
// take from binaries.dir (in packaged mode Kubernetes only) that is there:
// file name → SHA-256. missing lists the required ones that are not (their
// files).
func Pins(doc *spec.Document) (pins map[string]string, missing []string, err error) {
	s := doc.Cluster.Spec
	used := map[string]bool{}
	for _, n := range s.Nodes {
		for _, r := range n.Roles {
			used[r] = true
		}
	}
	pins = map[string]string{}
	for _, b := range binaries {
		if !used[b.role] || pins[b.name] != "" || b.fromBase(s.Binaries.Mode) {
			continue
		}
		src := filepath.Join(doc.BinariesDir(), b.name)
		sum, err := rootfs.FileSHA256(src)
		switch {
		case err == nil:
			pins[b.name] = sum
		case errors.Is(err, fs.ErrNotExist):
			if !b.optional && !slices.Contains(missing, src) {
				missing = append(missing, src)
			}
		default:
			return nil, nil, err
		}
	}
	sort.Strings(missing)
	return pins, missing, nil
}
