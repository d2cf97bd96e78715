package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/hardway-dev/hardway/examples"
	"github.com/hardway-dev/hardway/generate"
	"github.com/hardway-dev/hardway/output"
	"github.com/hardway-dev/hardway/pki"
	"github.com/hardway-dev/hardway/spec"
)

func newInit() *cobra.Command {
	var out, example string
	var force bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write an example cluster spec to start from",
		Long: `init writes one of the bundled example specs (default: the seed guide's LXC
topology) to a file, for you to edit. It never overwrites a file unless --force.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := examples.FS.ReadFile(example + ".yaml")
			if err != nil {
				return fmt.Errorf("no example %q (have: seed-lxc, seed-kvm, mixed)", example)
			}
			// The schema line points at the repository's copy; outside it, use `hardway schema`.
			data = []byte(strings.Replace(string(data), "$schema=../schema/cluster.schema.json", "$schema=cluster.schema.json", 1))
			flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
			if force {
				flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
			}
			f, err := os.OpenFile(out, flags, 0o644)
			if err != nil {
				if os.IsExist(err) {
					return fmt.Errorf("%s exists; use --force to overwrite it or -o to choose another file", out)
				}
				return err
			}
			if _, err := f.Write(data); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (example %s); write the editor schema with: hardway schema > %s\n",
				out, example, filepath.Join(filepath.Dir(out), "cluster.schema.json"))
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "cluster.yaml", "file to write")
	cmd.Flags().StringVar(&example, "example", "seed-lxc", "example to write: seed-lxc, seed-kvm or mixed")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing file")
	return cmd
}

func newValidate() *cobra.Command {
	var file string
	var showDefaults, noArtifacts bool
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check a cluster spec; print every problem as file:line:col: field: message",
		Long: `validate parses the spec strictly (unknown fields, wrong types and missing
required fields are errors), applies defaults and checks its meaning: names,
addresses, CIDRs, roles, PKI settings, and in binaries.mode upstream that every
pinned binary exists with its pinned SHA-256. It exits 1 on any error;
warnings (such as an even number of etcd members) do not fail it.

--show-defaults prints the effective spec, with every default filled in.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			doc, err := loadSpec(cmd.ErrOrStderr(), file, spec.Options{Artifacts: !noArtifacts})
			if err != nil {
				return err
			}
			if showDefaults {
				enc := yaml.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent(2)
				defer enc.Close()
				return enc.Encode(doc.Cluster)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid (%d nodes)\n", file, len(doc.Cluster.Spec.Nodes))
			return nil
		},
	}
	specFlag(cmd, &file)
	cmd.Flags().BoolVar(&showDefaults, "show-defaults", false, "print the effective spec with defaults applied")
	cmd.Flags().BoolVar(&noArtifacts, "no-artifacts", false, "skip checking the pinned binaries and images on disk")
	return cmd
}

func newGenerate() *cobra.Command {
	var file, out string
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Write the cluster's PKI, kubeconfigs and node files to <out>/<cluster>/",
		Long: `generate writes <out>/<cluster>/: pki/ (kubeadm-compatible, kept as state across
runs), kubeconfigs/, node files and manifest.json. A rerun with an unchanged
spec changes no byte; a changed spec re-issues only the certificates whose
identity changed, with the same CAs. Keys and CAs are never replaced silently.
Writes are atomic and a lock serialises concurrent runs on one directory.
Binaries are not read: validate and bake check them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			doc, err := loadSpec(cmd.ErrOrStderr(), file, spec.Options{})
			if err != nil {
				return err
			}
			return runGenerate(cmd, doc, out, nil)
		},
	}
	specFlag(cmd, &file)
	cmd.Flags().StringVarP(&out, "output", "o", "out", "output directory")
	return cmd
}

func runGenerate(cmd *cobra.Command, doc *spec.Document, out string, renew []string) error {
	start := time.Now()
	res, err := generate.Run(cmd.Context(), doc, generate.Options{Out: out, Renew: renew, Log: slog.Default()})
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s: %d files changed in %s\n", res.Dir, len(res.Changed), time.Since(start).Round(time.Millisecond))
	for _, c := range res.Changed {
		slog.Debug("changed", "file", c)
	}
	return nil
}

func newCerts() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Inspect and renew the cluster's certificates",
	}
	var file, dir, format string
	check := &cobra.Command{
		Use:   "check",
		Short: "Report every certificate's expiry and whether it matches the spec",
		Long: `check lists every certificate of the plan with its expiry and state:
ok, expiring (within 30 days), expired, missing, mismatch (its identity no
longer matches the spec; generate re-issues it) or insecure (its key is
readable by others than its owner; generate sets it back to 0600). It changes nothing and exits 1
when any certificate is not ok.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			doc, err := loadSpec(cmd.ErrOrStderr(), file, spec.Options{})
			if err != nil {
				return err
			}
			d, err := output.Open(filepath.Join(dir, doc.Cluster.Metadata.Name))
			if err != nil {
				return err
			}
			st := pki.Check(doc.Cluster, d.Sub("pki", "pki"), time.Now())
			switch format {
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(st); err != nil {
					return err
				}
			case "text":
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "CERTIFICATE\tEXPIRES\tRESIDUAL TIME\tCERTIFICATE AUTHORITY\tSTATE")
				for _, s := range st {
					exp := "-"
					if !s.NotAfter.IsZero() {
						exp = s.NotAfter.Format("Jan 02, 2006 15:04 UTC")
					}
					state := s.State
					if s.Reason != "" {
						state += ": " + s.Reason
					}
					if s.External {
						state += " (externally managed)"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, exp, dash(s.Residual), dash(s.CA), state)
				}
				tw.Flush()
			default:
				return fmt.Errorf("unknown output format %q (text or json)", format)
			}
			for _, s := range st {
				if s.State != "ok" {
					return exitError{1}
				}
			}
			return nil
		},
	}
	specFlag(check, &file)
	check.Flags().StringVar(&dir, "dir", "out", "output directory holding <cluster>/pki")
	check.Flags().StringVarP(&format, "output", "o", "text", "report format: text or json")

	var rfile, rdir string
	renew := &cobra.Command{
		Use:   "renew NAME...|all",
		Short: "Re-issue leaf certificates (new keys, same CAs) and re-render what embeds them",
		Long: `renew re-issues the named leaf certificates (as listed by certs check), or
all of them, with new keys signed by the existing CAs, then re-renders every
file that embeds them. CAs are never renewed.`,
		Args: cobra.MinimumNArgs(1),
		ValidArgsFunction: func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
			doc, err := spec.LoadFile(rfile)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			spec.ApplyDefaults(doc.Cluster)
			names := []string{"all"}
			for _, c := range pki.Plan(doc.Cluster) {
				if !c.IsCA() {
					names = append(names, c.Name)
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			doc, err := loadSpec(cmd.ErrOrStderr(), rfile, spec.Options{})
			if err != nil {
				return err
			}
			names := args
			if len(args) == 1 && args[0] == "all" {
				names = nil
				for _, c := range pki.Plan(doc.Cluster) {
					if !c.IsCA() {
						names = append(names, c.Name)
					}
				}
			}
			return runGenerate(cmd, doc, rdir, names)
		},
	}
	specFlag(renew, &rfile)
	renew.Flags().StringVar(&rdir, "dir", "out", "output directory holding <cluster>/pki")
	cmd.AddCommand(check, renew)
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newSchema() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of the cluster spec (for yaml-language-server)",
		Long: `schema prints a JSON Schema of hardway.dev/v1alpha1 Cluster, generated from
hardway's Go types. Save it next to your spec and start the spec with
  # yaml-language-server: $schema=cluster.schema.json
so that editors validate and complete it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := spec.Schema()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(s)
			return err
		},
	}
}

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print hardway's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			v := version
			if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
				v = bi.Main.Version
			}
			fmt.Fprintf(cmd.OutOrStdout(), "hardway %s (spec %s)\n", v, spec.APIVersion)
		},
	}
}
