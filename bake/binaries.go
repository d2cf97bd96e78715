package bake

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"sync"

	"github.com/hardway-dev/hardway/generators/controller"
	"github.com/hardway-dev/hardway/generators/etcd"
	"github.com/hardway-dev/hardway/generators/gateway"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/generators/worker"
	"github.com/hardway-dev/hardway/rootfs"
	"github.com/hardway-dev/hardway/spec"
)

// binary is one row of the role binaries table: a pinned file a role needs
// (nodegen.Binary, from the role's generator package) with the role.
type binary struct {
	role string
	nodegen.Binary
}

// roleBinaries are the tables of the roles that run pinned files, each the
// role's own (lb has none: haproxy and keepalived are the base's).
var roleBinaries = []struct {
	role string
	bins []nodegen.Binary
}{
	{spec.RoleEtcd, etcd.Binaries},
	{spec.RoleController, controller.Binaries},
	{spec.RoleGateway, gateway.Binaries},
	{spec.RoleWorker, worker.Binaries},
}

// binaries is what each role runs from pinned files: every row in
// binaries.mode upstream; in packaged mode the rows the base's packages do
// not provide (fromBase).
var binaries = func() []binary {
	var out []binary
	for _, r := range roleBinaries {
		for _, b := range r.bins {
			out = append(out, binary{role: r.role, Binary: b})
		}
	}
	return out
}()

// fromBase reports whether, in binaries.mode mode, the base's packages
// provide row b rather than binaries.dir: in packaged mode the distribution's
// binaries (nodegen.Distributed) and the CNI plugins (containernetworking-plugins,
// in worker.PackagedCNIBinDir).
func (b binary) fromBase(mode string) bool {
	if mode != spec.ModePackaged {
		return false
	}
	_, dist := nodegen.Distributed[b.Name]
	return dist || b.Dir == worker.UpstreamCNIBinDir
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
// (each bake copies it, hashing it again only when it cannot tell that the
// file is the one hashed: rootfs.PinnedFile).
type pinCache map[string]*pinCheck

// pinCheck is the check of one binary against its pin, made once.
type pinCheck struct {
	dest, src, want string
	once            sync.Once
	entry           rootfs.Entry
	err             error
}

// check returns the check of src at dest against want.
func (c pinCache) check(dest, src, want string) *pinCheck {
	key := dest + "\x00" + src + "\x00" + want
	if c[key] == nil {
		c[key] = &pinCheck{dest: dest, src: src, want: want}
	}
	return c[key]
}

// result hashes the file the first time, and gives the checked entry.
func (p *pinCheck) result() (rootfs.Entry, error) {
	p.once.Do(func() { p.entry, p.err = rootfs.PinnedFile(p.dest, 0o755, p.src, p.want) })
	return p.entry, p.err
}

// nodeBinaries are the rows of roles that binaries.dir provides in
// binaries.mode mode, one per file on the node, in table order. A file two
// of the roles name is required when either requires it: a controller that
// is also the gateway needs kubectl, which the gateway alone does not.
func nodeBinaries(mode string, roles []string) []binary {
	var out []binary
	at := map[string]int{} // path on the node → index in out
	for _, b := range binaries {
		if b.fromBase(mode) || !slices.Contains(roles, b.role) {
			continue
		}
		dest := path.Join(b.Dir, b.Name)
		if i, ok := at[dest]; ok {
			if out[i].Optional && !b.Optional {
				out[i] = b
			}
			continue
		}
		at[dest] = len(out)
		out = append(out, b)
	}
	return out
}

// binariesLayer is the role layer of an artifact with roles: the pinned
// binaries those roles need, each checked against its pin before use, and
// on workers the spec's image archives. In binaries.mode packaged it holds
// Kubernetes only: the base's packages provide the rest (fromBase).
func binariesLayer(doc *spec.Document, subject string, roles []string, pins pinCache) (rootfs.Layer, error) {
	s := doc.Cluster.Spec
	l := rootfs.Layer{Name: "binaries"}
	var errs []error
	var checks []*pinCheck
	for _, b := range nodeBinaries(s.Binaries.Mode, roles) {
		dest := path.Join(b.Dir, b.Name)
		src := filepath.Join(doc.BinariesDir(), b.Name)
		want, pinned := s.Binaries.SHA256[b.Name]
		if !pinned {
			if !b.Optional {
				errs = append(errs, &MissingPinError{Name: b.Name, Role: b.role, Node: subject, File: src})
			}
			continue
		}
		checks = append(checks, pins.check(dest, src, want))
	}
	// Hashed on every processor: the check is the start of every bake.
	var wg sync.WaitGroup
	for _, c := range checks {
		wg.Go(func() { c.result() })
	}
	wg.Wait()
	for _, c := range checks {
		e, err := c.result()
		if err != nil {
			errs = append(errs, fmt.Errorf("spec.binaries.sha256.%s: %w", path.Base(c.dest), err))
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
		if !used[b.role] || pins[b.Name] != "" || b.fromBase(s.Binaries.Mode) {
			continue
		}
		src := filepath.Join(doc.BinariesDir(), b.Name)
		sum, err := rootfs.FileSHA256(src)
		switch {
		case err == nil:
			pins[b.Name] = sum
		case errors.Is(err, fs.ErrNotExist):
			if !b.Optional && !slices.Contains(missing, src) {
				missing = append(missing, src)
			}
		default:
			return nil, nil, err
		}
	}
	sort.Strings(missing)
	return pins, missing, nil
}
