package bake

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/hardway-dev/hardway/rootfs"
	"github.com/hardway-dev/hardway/spec"
)

// ArchiveList reads a list of image archives, one path a line (make
// images-list writes bin/images.list): its lines, blank ones skipped, for
// PinnedCopy's archives.
func ArchiveList(file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

// PinnedCopy writes into dir a copy of the spec file with everything a bake
// of every node needs beside it, for a pre-flight run on a build machine
// (make e2e, the whole-cluster test): binaries.dir is dir/artifacts, holding
// a link (or a copy) of every file of binDirs; spec.images lists archives,
// linked into dir/images; spec.binaries.sha256 pins what the nodes' roles
// take from binaries.dir, as `hardway pin` would (in binaries.mode packaged
// Kubernetes only: the base's packages bring the rest). It returns the copy's
// path. authorizedKeys are added to spec.ssh.authorizedKeys (a run's
// throwaway key, for the gateway row). The user's file is only read; the
// copy is re-encoded, comments and all, which only a run of verify reads.
func PinnedCopy(specFile, dir string, binDirs, archives []string, authorizedKeys ...string) (string, error) {
	data, err := os.ReadFile(specFile)
	if err != nil {
		return "", err
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return "", fmt.Errorf("%s: %w", specFile, err)
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return "", fmt.Errorf("%s: not a cluster spec (a YAML mapping)", specFile)
	}
	s := mapping(root.Content[0], "spec")
	bins := mapping(s, "binaries")
	set(bins, "dir", scalar("artifacts"))
	for _, d := range binDirs {
		es, err := os.ReadDir(d)
		if err != nil {
			return "", err
		}
		for _, e := range es {
			if err := linkInto(filepath.Join(d, e.Name()), filepath.Join(dir, "artifacts")); err != nil {
				return "", err
			}
		}
	}
	imgs := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, a := range archives {
		if err := linkInto(a, filepath.Join(dir, "images")); err != nil {
			return "", err
		}
		imgs.Content = append(imgs.Content, scalar("images/"+filepath.Base(a)))
	}
	set(s, "images", imgs)
	if len(authorizedKeys) > 0 {
		ssh := mapping(s, "ssh")
		keys := sequence(ssh, "authorizedKeys")
		for _, k := range authorizedKeys {
			keys.Content = append(keys.Content, scalar(k))
		}
	}
	copyFile := filepath.Join(dir, filepath.Base(specFile))
	write := func() error {
		out, err := yaml.Marshal(&root)
		if err != nil {
			return err
		}
		return os.WriteFile(copyFile, out, 0o644)
	}
	if err := write(); err != nil {
		return "", err
	}
	doc, err := spec.LoadFile(copyFile)
	if err != nil {
		return "", err
	}
	doc.Validate(spec.Options{})
	pins, missing, err := Pins(doc)
	if err != nil {
		return "", err
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("no pinned binary in %v for %v (make tools runtime)", binDirs, missing)
	}
	sums := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, k := range slices.Sorted(maps.Keys(pins)) {
		sums.Content = append(sums.Content, scalar(k), scalar(pins[k]))
	}
	set(bins, "sha256", sums)
	return copyFile, write()
}

// mapping returns m's mapping under key, adding an empty one when absent.
func mapping(m *yaml.Node, key string) *yaml.Node { return child(m, key, yaml.MappingNode, "!!map") }

// sequence returns m's sequence under key, adding an empty one when absent.
func sequence(m *yaml.Node, key string) *yaml.Node { return child(m, key, yaml.SequenceNode, "!!seq") }

// child returns m's node of kind under key, in block style (where entries
// are added), adding an empty one when absent.
func child(m *yaml.Node, key string, kind yaml.Kind, tag string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key && m.Content[i+1].Kind == kind {
			m.Content[i+1].Style = 0
			return m.Content[i+1]
		}
	}
	v := &yaml.Node{Kind: kind, Tag: tag}
	set(m, key, v)
	return v
}

// set sets key to v in mapping m.
func set(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, scalar(key), v)
}

func scalar(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

// linkInto hard-links file (its final target) into dir, or copies it when
// dir is on another file system.
func linkInto(file, dir string) error {
	src, err := filepath.EvalSymlinks(file)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	dst := filepath.Join(dir, filepath.Base(file))
	if _, err := os.Lstat(dst); err == nil || os.Link(src, dst) == nil {
		return nil
	}
	return rootfs.CopyFile(src, dst) // another file system: a copy
}
