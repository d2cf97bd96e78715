package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
	sigyaml "sigs.k8s.io/yaml"

	"github.com/hardway-dev/hardway/clusterdir"
	"github.com/hardway-dev/hardway/output"
	"github.com/hardway-dev/hardway/pki"
	"github.com/hardway-dev/hardway/spec"
)

func newValidate() *cobra.Command {
	var file string
	var showDefaults, noArtifacts bool
	var out *outputFlag
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check a cluster spec; print every problem as file:line:col: field: message",
		Long: `validate parses the spec strictly (unknown fields, wrong types and missing
required fields are errors), applies defaults and checks its meaning: names,
addresses, CIDRs, roles, PKI settings, and in binaries.mode upstream that every
pinned binary exists with its pinned SHA-256. It exits 1 on any error;
warnings (such as an even number of etcd members) do not fail it. A warning
the spec acknowledges (spec.acknowledgeWarnings names it) is shown here
only, marked acknowledged; the other commands do not print it.

With -o json it prints one document (file, valid, nodes, issues; see
docs/cli.md) on standard output instead of the messages on standard error.

--show-defaults prints the effective spec, with every default filled in, as
YAML (or JSON with -o json); it validates as it is.`,
		Example: `  hardway validate -f cluster.yaml
  hardway validate -f cluster.yaml -o json | jq '.issues[] | select(.severity == "error")'
  hardway validate -f cluster.yaml --show-defaults > effective.yaml
  generate-spec | hardway validate -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.resolve(); err != nil {
				return err
			}
			o := spec.Options{Artifacts: !noArtifacts}
			if out.json() && !showDefaults {
				return validateJSON(cmd.OutOrStdout(), file, o)
			}
			doc, err := checkSpec(cmd.ErrOrStderr(), file, o, true)
			if err != nil {
				return err
			}
			if showDefaults {
				return printEffective(cmd.OutOrStdout(), doc.Cluster, out.json())
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid (%d nodes)\n", doc.File, len(doc.Cluster.Spec.Nodes))
			return nil
		},
	}
	specFlag(cmd, &file)
	out = addOutput(cmd)
	cmd.Flags().BoolVar(&showDefaults, "show-defaults", false, "print the effective spec with defaults applied")
	cmd.Flags().BoolVar(&noArtifacts, "no-artifacts", false, "skip checking the pinned binaries and images on disk")
	return cmd
}

// validateJSON prints the result of validating file as a validateOutput.
func validateJSON(w io.Writer, file string, o spec.Options) error {
	doc, is, err := readSpec(file, o)
	if err != nil {
		return err
	}
	res := validateOutput{File: file, Valid: doc != nil && len(is.Errors()) == 0, Issues: issuesOutput(is)}
	if file == "-" {
		res.File = stdinName
	}
	if doc != nil {
		res.Nodes = len(doc.Cluster.Spec.Nodes)
	}
	if err := writeJSON(w, res); err != nil {
		return err
	}
	if !res.Valid {
		return exitError{exitFailed}
	}
	return nil
}

// printEffective prints the spec with its defaults, as YAML or JSON.
func printEffective(w io.Writer, c *spec.Cluster, asJSON bool) error {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	if !asJSON {
		_, err := buf.WriteTo(w)
		return err
	}
	data, err := sigyaml.YAMLToJSON(buf.Bytes())
	if err != nil {
		return err
	}
	buf.Reset()
	if err := json.Indent(&buf, data, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err = buf.WriteTo(w)
	return err
}

func newGenerate() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Write the cluster's PKI, kubeconfigs and node files to <dir>/<cluster>/",
		Long: `generate writes <dir>/<cluster>/: pki/ (kubeadm-compatible, kept as state across
runs), kubeconfigs/, node files and manifest.json. A rerun with an unchanged
spec changes no byte; a changed spec re-issues only the certificates whose
identity changed, with the same CAs, and regenerates only the nodes whose
inputs changed: a worker's are its own and the other roles' nodes, so adding
a worker leaves every other worker's files untouched. Keys and CAs are never replaced silently.
Writes are atomic and a lock serialises concurrent runs on one directory.
Binaries are not read: validate and bake check them.

It prints "<dir>/<cluster>: N files changed in T" (with -o json: dir and the
changed files) and, on a terminal, the next steps.`,
		Example: `  hardway generate -f cluster.yaml                 # writes out/<cluster>/
  hardway generate -f cluster.yaml --dir /srv/hw   # writes /srv/hw/<cluster>/
  hardway generate -f cluster.yaml -o json | jq -r '.changed[]'`,
	}
	trees := rootfsFlag(cmd)
	f := clusterCommand(cmd, "output root: generate writes <dir>/<cluster>/", func(cmd *cobra.Command, doc *spec.Document, f *clusterFlags) error {
		res, err := runGenerate(cmd, doc, f.dir, nil, f.out, trees())
		if err == nil && !f.out.json() && isTerminal(cmd.OutOrStdout()) {
			nextSteps(cmd.OutOrStdout(), doc, f.file, f.dir, res.Dir)
		}
		return err
	})
	f.out.legacyOutput(&f.dir, "--dir")
	return cmd
}

// runGenerate runs generate and prints what changed.
func runGenerate(cmd *cobra.Command, doc *spec.Document, dir string, renew []string, out *outputFlag, trees clusterdir.Trees) (*clusterdir.Result, error) {
	start := time.Now()
	o := generateOptions(dir)
	o.Renew = renew
	o.Rootfs = trees
	res, err := clusterdir.Run(cmd.Context(), doc, o)
	if err != nil {
		return nil, err
	}
	for _, c := range res.Changed {
		slog.Debug("changed", "file", c)
	}
	if out.json() {
		changed := res.Changed
		if changed == nil {
			changed = []string{}
		}
		return res, writeJSON(cmd.OutOrStdout(), generateOutput{Dir: res.Dir, Changed: changed})
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s: %d files changed in %s\n", res.Dir, len(res.Changed), time.Since(start).Round(time.Millisecond))
	return res, nil
}

func newCerts() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Inspect and renew the cluster's certificates",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	check := &cobra.Command{
		Use:   "check",
		Short: "Report every certificate's expiry and whether it matches the spec",
		Long: `check lists every certificate of the plan with its expiry and state:
ok, expiring (within 30 days), expired, missing, mismatch (its identity no
longer matches the spec; generate re-issues it) or insecure (its key is
readable by others than its owner; generate sets it back to 0600). It changes
nothing (a missing <dir>/<cluster> is reported, not created) and exits 3
when any certificate is not ok. A CA whose key is of another algorithm than
spec.pki.algorithm is ok with a note: generate re-issues the leaves with the
new algorithm but never replaces a CA.

With -o json it prints a list of {name, cn, ca, node, notAfter, residual,
state, reason, externallyManaged, algorithm} (see docs/cli.md).`,
		Example: `  hardway certs check -f cluster.yaml
  hardway certs check -f cluster.yaml --dir /srv/hw -o json | jq -r '.[] | select(.state != "ok") | .name'`,
	}
	clusterCommand(check, "output root holding <cluster>/pki", func(cmd *cobra.Command, doc *spec.Document, f *clusterFlags) error {
		store, err := pkiStore(cmd.ErrOrStderr(), filepath.Join(f.dir, doc.Cluster.Metadata.Name))
		if err != nil {
			return err
		}
		st := pki.Check(doc.Cluster, store, time.Now())
		noteCAAlgorithm(st, doc.Cluster.Spec.PKI.Algorithm)
		if f.out.json() {
			if err := writeJSON(cmd.OutOrStdout(), st); err != nil {
				return err
			}
		} else {
			printCerts(cmd.OutOrStdout(), st)
		}
		for _, s := range st {
			if s.State != "ok" {
				return exitError{exitFindings}
			}
		}
		return nil
	})

	var rfile, rdir string
	var rout *outputFlag
	renew := &cobra.Command{
		Use:   "renew NAME...|all",
		Short: "Re-issue leaf certificates (new keys, same CAs) and re-render what embeds them",
		Long: `renew re-issues the named leaf certificates (as listed by certs check), or
all of them, with new keys signed by the existing CAs, then re-renders every
file that embeds them. CAs are never renewed. It prints what generate prints.`,
		Example: `  hardway certs renew -f cluster.yaml kube-proxy kubelet-worker1
  hardway certs renew -f cluster.yaml --dir /srv/hw all`,
		Args: cobra.MinimumNArgs(1),
		ValidArgsFunction: func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
			c := completionSpec(rfile)
			if c == nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return append([]string{"all"}, leafNames(c)...), cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := rout.resolve(); err != nil {
				return err
			}
			doc, err := loadSpec(cmd.ErrOrStderr(), rfile, spec.Options{})
			if err != nil {
				return err
			}
			names := args
			if len(args) == 1 && args[0] == "all" {
				names = leafNames(doc.Cluster)
			}
			_, err = runGenerate(cmd, doc, rdir, names, rout, clusterdir.TreesAsBefore)
			return err
		},
	}
	specFlag(renew, &rfile)
	dirFlag(renew, &rdir, defaultDir, "output root holding <cluster>/pki")
	rout = addOutput(renew)
	cmd.AddCommand(check, renew)
	return cmd
}

// noteCAAlgorithm says, on a CA whose key is of another algorithm than
// spec.pki.algorithm, that it stays: generate re-issues the leaves with the
// new algorithm, signed by the old CAs, and never replaces a CA.
func noteCAAlgorithm(st []pki.Status, algorithm string) {
	family, _, _ := strings.Cut(algorithm, "-") // ecdsa, rsa
	for i, s := range st {
		if s.CA == "" && s.Algorithm != "" && !strings.EqualFold(s.Algorithm, family) {
			st[i].Reason = strings.TrimPrefix(st[i].Reason+"; ", "; ") + fmt.Sprintf(
				"an %s key while spec.pki.algorithm is %s: CAs are never replaced (delete %s.crt and %s.key to start a new CA with it)",
				s.Algorithm, algorithm, s.Name, s.Name)
		}
	}
}

// leafNames are the certificates renew can re-issue: every one but the CAs.
func leafNames(c *spec.Cluster) []string {
	var names []string
	for _, row := range pki.Plan(c) {
		if !row.IsCA() {
			names = append(names, row.Name)
		}
	}
	return names
}

// pkiStore opens <cluster dir>/pki for reading. A cluster directory that
// is not there is not created (certs check changes nothing): every
// certificate is then missing.
func pkiStore(stderr io.Writer, clusterDir string) (pki.Store, error) {
	if _, err := os.Stat(clusterDir); errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(stderr, "hardway: %s does not exist: run hardway generate (with the same --dir) first\n", clusterDir)
		return noFiles{}, nil
	}
	d, err := output.Open(clusterDir)
	if err != nil {
		return nil, err
	}
	return d.Sub("pki", "pki"), nil
}

// noFiles is a pki.Store of a directory that does not exist.
type noFiles struct{}

func (noFiles) ReadFile(name string) ([]byte, error) {
	return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
}

func (noFiles) WriteFile(name string, _ []byte, _ fs.FileMode) error {
	return &fs.PathError{Op: "write", Path: name, Err: fs.ErrPermission}
}

// printCerts prints the certificates' states as a table, like kubeadm
// certs check-expiration.
func printCerts(w io.Writer, st []pki.Status) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
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
	var out *outputFlag
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print hardway's version",
		Long: `version prints hardway's version and the spec version it reads (as
hardway --version does); -o json adds the Kubernetes release its files are
made for and the Go release it was built with.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.resolve(); err != nil {
				return err
			}
			if out.json() {
				return writeJSON(cmd.OutOrStdout(), versionOutput{Version: versionString(), APIVersion: spec.APIVersion, Kubernetes: spec.KubernetesMinor, Go: runtime.Version()})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "hardway %s\n", cmd.Root().Version)
			return nil
		},
	}
	out = addOutput(cmd)
	return cmd
}

// versionString is hardway's version: the linker's (make build), or the
// module's (go install), or dev.
func versionString() string {
	if bi, ok := debug.ReadBuildInfo(); ok && version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}
