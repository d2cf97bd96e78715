package main

import (
	"debug/buildinfo"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hardway-dev/hardway/bake"
	"github.com/hardway-dev/hardway/output"
	"github.com/hardway-dev/hardway/spec"
)

func newPin() *cobra.Command {
	var file string
	var write bool
	cmd := &cobra.Command{
		Use:   "pin",
		Short: "Pin the upstream binaries in binaries.dir by their SHA-256",
		Long: `pin hashes every binary the roles of the spec's nodes take from
binaries.dir (binaries.mode upstream; relative to the spec file) that is
there, and prints the spec.binaries.sha256 mapping that pins them. With
--write it sets that mapping in the spec file itself, editing only those
lines (comments and layout stay), atomically.

bake refuses a binary that is not pinned or whose SHA-256 differs from its
pin, so pin once from binaries you trust (checked against the release's
own checksums), not from whatever is in the directory at bake time.
Required binaries that are missing are listed; bake fails for the nodes
that need them until they are there and pinned. Kubernetes binaries of
another release than spec.kubernetesVersion are refused (the release is
read from their Go build information, not by running them).`,
		Example: `  hardway pin -f cluster.yaml            # print the mapping
  hardway pin -f cluster.yaml --write    # set it in cluster.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			doc, err := loadSpec(cmd.ErrOrStderr(), file, spec.Options{})
			if err != nil {
				return err
			}
			pins, missing, err := bake.Pins(doc)
			if err != nil {
				return err
			}
			dir := doc.BinariesDir()
			for _, m := range missing {
				fmt.Fprintf(cmd.ErrOrStderr(), "not pinned: %s is missing\n", m)
			}
			if len(pins) == 0 {
				return fmt.Errorf("no binary of the spec's roles in %s", dir)
			}
			if err := sameRelease(dir, slices.Sorted(maps.Keys(pins)), doc.Cluster.Spec.KubernetesVersion); err != nil {
				return err
			}
			if !write {
				fmt.Fprintf(cmd.OutOrStdout(), "# spec.binaries.sha256 of %s, from %s\nsha256:\n", file, dir)
				for _, k := range slices.Sorted(maps.Keys(pins)) {
					fmt.Fprintf(cmd.OutOrStdout(), "  %s: %q\n", k, pins[k])
				}
				return nil
			}
			data, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			edited, err := spec.SetPins(file, data, pins)
			if err != nil {
				return err
			}
			st, err := os.Stat(file)
			if err != nil {
				return err
			}
			if _, err := output.WriteFileAtomic(file, edited, st.Mode().Perm()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pinned %d binaries of %s in %s\n", len(pins), dir, file)
			return nil
		},
	}
	specFlag(cmd, &file)
	cmd.Flags().BoolVar(&write, "write", false, "set the pins in the spec file instead of printing them")
	return cmd
}

// sameRelease refuses the binaries of dir (by name) that were built from
// another Kubernetes release than the spec's.
func sameRelease(dir string, names []string, want string) error {
	var wrong []string
	for _, name := range names {
		if v := kubernetesRelease(filepath.Join(dir, name)); v != "" && v != want {
			wrong = append(wrong, fmt.Sprintf("%s is Kubernetes %s", name, v))
		}
	}
	if len(wrong) > 0 {
		return fmt.Errorf("spec.kubernetesVersion is %s, but in %s %s: pin binaries of %s, or set the spec to their release",
			want, dir, strings.Join(wrong, ", "), want)
	}
	return nil
}

// kubernetesRelease is the Kubernetes release a binary was built from, as
// its Go build information says: the version stamp of release builds (and
// of make tools), -X k8s.io/component-base/version.gitVersion=..., else the
// version of the k8s.io/kubernetes module its main package is from; "" for
// any other file.
func kubernetesRelease(path string) string {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, s := range bi.Settings {
		if _, v, ok := strings.Cut(s.Value, "k8s.io/component-base/version.gitVersion="); s.Key == "-ldflags" && ok {
			if f := strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == '\'' || r == '"' }); len(f) > 0 {
				return f[0]
			}
		}
	}
	if !strings.HasPrefix(bi.Path, "k8s.io/kubernetes/") {
		return ""
	}
	if bi.Main.Path == "k8s.io/kubernetes" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == "k8s.io/kubernetes" {
			return d.Version
		}
	}
	return ""
}
