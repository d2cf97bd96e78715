package emit

import (
	"encoding/base64"
	"fmt"
	"slices"

	"github.com/coreos/butane/config/common"
	fcos1_5 "github.com/coreos/butane/config/fcos/v1_5"
	flatcar1_1 "github.com/coreos/butane/config/flatcar/v1_1"
	"github.com/coreos/vcontext/report"

	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// butaneVariant is how one spec.Node.Ignition value is written.
type butaneVariant struct {
	variant, version string
	// osLinks are directories the OS ships as symlinks. Ignition refuses a
	// directory entry whose path is a symlink ("a non-directory already
	// exists"), so a tree directory there is left to the OS; the entries
	// below it are written through the link.
	osLinks []string
	// translate is Butane's translator of this variant and version. It is
	// named here rather than looked up in butane/config's registry, whose
	// init links and registers every variant Butane knows (OpenShift's
	// 15 versions among them), work every hardway command paid for.
	translate func([]byte, common.TranslateBytesOptions) ([]byte, report.Report, error)
}

// butaneVariants maps spec.Node.Ignition to its Butane variant and version;
// both translate to Ignition spec 3.4.0. On Fedora CoreOS the writable
// top-level directories are symlinks into /var (ostree layout).
var butaneVariants = map[string]butaneVariant{
	spec.IgnitionFCOS:    {"fcos", "1.5.0", []string{"/home", "/media", "/mnt", "/opt", "/root", "/srv", "/usr/local"}, fcos1_5.ToIgn3_4Bytes},
	spec.IgnitionFlatcar: {"flatcar", "1.1.0", nil, flatcar1_1.ToIgn3_4Bytes},
}

// Ignition returns the Ignition config of node n carrying tree t: a Butane
// config translated strictly (a Butane warning is an error) by Butane's
// translator of the variant.
//   - storage.files: every regular file, text inline and anything else as a
//     base64 data URL (Butane may gzip either), mode, numeric owner,
//     overwrite;
//   - storage.links: every symlink but the enablement links of t.Units(),
//     which become systemd.units entries with enabled: true (Ignition
//     enables through a preset, which follows the unit's [Install] section);
//   - storage.directories: the tree's own directories with mode and owner,
//     except those the OS ships as symlinks (butaneVariant.osLinks);
//     implicit parents are left to Ignition (root 0755 when missing, an
//     existing one untouched);
//   - passwd: the spec's SSH keys on user core;
//   - with sx, a node's systemd-sysext image (spec.Node.Sysext): a file at
//     nodegen.SysextPath fetched from sx.URL and checked against sx.SHA256,
//     which systemd-sysext.service merges at boot. A node with pinned
//     binaries needs it and any other refuses it: no config of a node
//     lacks the binaries its units run.
//
// A spec that nodegen.Check refuses gives nothing: Ignition writes the keys into
// authorized_keys, which cannot quote them.
func Ignition(x *nodegen.Context, n spec.Node, t *tree.Tree, sx *Sysext) ([]byte, error) {
	if err := x.Check(); err != nil {
		return nil, err
	}
	v, ok := butaneVariants[n.Ignition]
	if !ok {
		return nil, fmt.Errorf("unknown Ignition variant %q (want fcos or flatcar)", n.Ignition)
	}
	switch {
	case n.Sysext() && sx == nil:
		return nil, fmt.Errorf("node %s runs pinned binaries: its Ignition config names its systemd-sysext image, which hardway bake --format sysext bakes with it", n.Name)
	case !n.Sysext() && sx != nil:
		return nil, fmt.Errorf("node %s runs no pinned binaries: it has no systemd-sysext image", n.Name)
	}
	es, err := entries(t)
	if err != nil {
		return nil, err
	}
	doc := butaneConfig(x.C, t, es, v.osLinks)
	if sx != nil {
		mode := 0o644
		doc.Storage.Files = append(doc.Storage.Files, butaneNode{
			Path: nodegen.SysextPath, Mode: &mode, Overwrite: &overwrite,
			Contents: &butaneResource{Source: sx.URL, Verification: &butaneVerification{Hash: "sha256-" + sx.SHA256}},
		})
	}
	doc.Variant, doc.Version = v.variant, v.version
	src, err := marshalYAML("", doc)
	if err != nil {
		return nil, fmt.Errorf("butane: %w", err)
	}
	out, r, err := v.translate(src, common.TranslateBytesOptions{Pretty: true})
	if err != nil {
		return nil, fmt.Errorf("butane: %w: %s", err, r.String())
	}
	if len(r.Entries) > 0 {
		return nil, fmt.Errorf("butane (strict): %s", r.String())
	}
	return append(out, '\n'), nil
}

// Sysext is the systemd-sysext image of a node booted by Ignition.
type Sysext struct {
	URL    string // where the node fetches it at first boot
	SHA256 string // its SHA-256, lower-case hex
}

// overwrite is every file's and link's overwrite: true (a pointer, as Butane has it).
var overwrite = true

// butaneDoc is the subset of a Butane config we write; field order is output order.
type butaneDoc struct {
	Variant string         `yaml:"variant"`
	Version string         `yaml:"version"`
	Passwd  *butanePasswd  `yaml:"passwd,omitempty"`
	Storage butaneStorage  `yaml:"storage"`
	Systemd *butaneSystemd `yaml:"systemd,omitempty"`
}

type butanePasswd struct {
	Users []butaneUser `yaml:"users"`
}

type butaneUser struct {
	Name              string   `yaml:"name"`
	SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys"`
}

type butaneStorage struct {
	Directories []butaneNode `yaml:"directories,omitempty"`
	Files       []butaneNode `yaml:"files,omitempty"`
	Links       []butaneNode `yaml:"links,omitempty"`
}

// butaneNode is a directory, file or link; unused fields stay empty.
type butaneNode struct {
	Path      string          `yaml:"path"`
	Mode      *int            `yaml:"mode,omitempty"`
	User      butaneID        `yaml:"user"`
	Group     butaneID        `yaml:"group"`
	Overwrite *bool           `yaml:"overwrite,omitempty"`
	Contents  *butaneResource `yaml:"contents,omitempty"`
	Target    string          `yaml:"target,omitempty"`
}

type butaneID struct {
	ID int `yaml:"id"`
}

type butaneResource struct {
	Inline       *string             `yaml:"inline,omitempty"`
	Source       string              `yaml:"source,omitempty"`
	Verification *butaneVerification `yaml:"verification,omitempty"`
}

type butaneVerification struct {
	Hash string `yaml:"hash"`
}

type butaneSystemd struct {
	Units []butaneUnit `yaml:"units"`
}

type butaneUnit struct {
	Name    string `yaml:"name"`
	Enabled bool   `yaml:"enabled"`
}

// butaneConfig builds the Butane document of t (variant and version unset).
func butaneConfig(c *spec.Cluster, t *tree.Tree, es []*tree.Entry, osLinks []string) butaneDoc {
	var doc butaneDoc
	if keys := c.Spec.SSH.AuthorizedKeys; len(keys) > 0 {
		doc.Passwd = &butanePasswd{Users: []butaneUser{{Name: "core", SSHAuthorizedKeys: keys}}}
	}
	enabled := enablementLinks(t)
	for _, e := range es {
		mode := int(e.Mode.Perm())
		node := butaneNode{Path: e.Path, Mode: &mode, User: butaneID{e.UID}, Group: butaneID{e.GID}}
		switch {
		case e.IsDir() && explicit(t, e) && !slices.Contains(osLinks, e.Path):
			doc.Storage.Directories = append(doc.Storage.Directories, node)
		case e.IsSymlink() && !enabled[e.Path]:
			node.Mode, node.Overwrite, node.Target = nil, &overwrite, e.Target
			doc.Storage.Links = append(doc.Storage.Links, node)
		case e.IsFile():
			node.Overwrite, node.Contents = &overwrite, resource(e.Data)
			doc.Storage.Files = append(doc.Storage.Files, node)
		}
	}
	if units := t.Units(); len(units) > 0 {
		doc.Systemd = &butaneSystemd{}
		for _, u := range units {
			doc.Systemd.Units = append(doc.Systemd.Units, butaneUnit{Name: u.Name, Enabled: true})
		}
	}
	return doc
}

// enablementLinks returns the paths of the symlinks tree.Enable added for
// t.Units() (a link elsewhere, or to another target, stays a link).
func enablementLinks(t *tree.Tree) map[string]bool {
	out := map[string]bool{}
	for _, u := range t.Units() {
		p := tree.WantsLink(u.Name, u.WantedBy)
		if e, ok := t.Get(p); ok && e.IsSymlink() && e.Target == tree.UnitFile(u.Name) {
			out[p] = true
		}
	}
	return out
}

// resource is data inline when it is printable text, else a base64 data URL.
func resource(data []byte) *butaneResource {
	if isText(data) {
		s := string(data)
		return &butaneResource{Inline: &s}
	}
	return &butaneResource{Source: "data:;base64," + base64.StdEncoding.EncodeToString(data)}
}
