package main

import (
	"encoding/json"
	"io"
	"time"

	"github.com/hardway-dev/hardway/bake"
	"github.com/hardway-dev/hardway/clusterdir"
	"github.com/hardway-dev/hardway/output"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/verify"
)

// The documents that -o json prints, one type per command. Their json and
// doc tags are the reference of docs/cli.md (see jsonShape): a field added
// here is documented there.

type validateOutput struct {
	File   string        `json:"file" doc:"the spec as given to -f (\"<stdin>\" for -f -)"`
	Valid  bool          `json:"valid" doc:"no errors (warnings do not count)"`
	Nodes  int           `json:"nodes" doc:"number of nodes; 0 when the spec could not be parsed"`
	Issues []issueOutput `json:"issues" doc:"every error and warning, in file order"`
}

type issueOutput struct {
	File         string `json:"file"`
	Line         int    `json:"line"`
	Column       int    `json:"column"`
	Path         string `json:"path" doc:"the field, such as spec.nodes[3].address"`
	Severity     string `json:"severity" doc:"error or warning"`
	Message      string `json:"message"`
	Name         string `json:"name,omitempty" doc:"the warning's name, for spec.acknowledgeWarnings"`
	Acknowledged bool   `json:"acknowledged,omitempty" doc:"the spec acknowledges this warning"`
}

func issuesOutput(is spec.Issues) []issueOutput {
	out := []issueOutput{}
	for _, i := range is {
		sev := "error"
		if i.Warning {
			sev = "warning"
		}
		out = append(out, issueOutput{File: i.File, Line: i.Line, Column: i.Col, Path: i.Path, Severity: sev, Message: i.Msg, Name: i.Name, Acknowledged: i.Acknowledged})
	}
	return out
}

type generateOutput struct {
	Dir     string   `json:"dir" doc:"the cluster directory, <dir>/<cluster>"`
	Changed []string `json:"changed" doc:"files written or removed by this run, relative to dir (empty when nothing changed)"`
}

type bakeOutput struct {
	Artifacts []artifactOutput `json:"artifacts" doc:"the artifacts baked, also listed in bake-manifest.json next to them"`
}

type artifactOutput struct {
	Path    string   `json:"path" doc:"the artifact file (its .sha256 is next to it)"`
	SHA256  string   `json:"sha256"`
	Format  string   `json:"format" doc:"lxc or kvm"`
	Subject string   `json:"subject" doc:"the node or role the file is named after"`
	Node    string   `json:"node,omitempty" doc:"the node whose files are baked in; empty for a KVM role image"`
	Roles   []string `json:"roles" doc:"the roles whose binaries are baked in"`
}

func bakeResults(format string, rs []bake.Result) bakeOutput {
	out := bakeOutput{Artifacts: []artifactOutput{}}
	for _, r := range rs {
		out.Artifacts = append(out.Artifacts, artifactOutput{Path: r.Path, SHA256: r.SHA256, Format: format, Subject: r.Job.Subject, Node: r.Job.Node, Roles: r.Job.Roles})
	}
	return out
}

type verifyOutput struct {
	OK      bool          `json:"ok" doc:"every phase ran and every check passed"`
	Phases  []phaseOutput `json:"phases" doc:"the steps around the checks: generate, prepare, network, starting each component, teardown"`
	Checks  []checkOutput `json:"checks" doc:"the smoke checks, numbered as in the text table"`
	WorkDir string        `json:"workDir,omitempty" doc:"node roots and logs, kept after a failing run"`
}

type phaseOutput struct {
	Name    string  `json:"name"`
	OK      bool    `json:"ok"`
	Seconds float64 `json:"seconds"`
	Detail  string  `json:"detail,omitempty"`
	Error   string  `json:"error,omitempty"`
	Skipped string  `json:"skipped,omitempty" doc:"why the phase did not run"`
}

type checkOutput struct {
	N       int     `json:"n"`
	Name    string  `json:"name"`
	Pass    bool    `json:"pass"`
	Seconds float64 `json:"seconds"`
	Detail  string  `json:"detail,omitempty"`
}

// phaseJSON is a verify phase as -o json shows it.
func phaseJSON(p verify.Phase) phaseOutput {
	po := phaseOutput{Name: p.Name, OK: p.Err == nil && p.Skipped == "", Seconds: seconds(p.Took), Detail: p.Detail, Skipped: p.Skipped}
	if p.Err != nil {
		po.Error = p.Err.Error()
	}
	return po
}

func verifyReport(rep *verify.Report) verifyOutput {
	out := verifyOutput{Phases: []phaseOutput{}, Checks: []checkOutput{}}
	if rep == nil {
		return out
	}
	out.OK, out.WorkDir = rep.OK(), rep.WorkDir
	for _, p := range rep.Phases {
		out.Phases = append(out.Phases, phaseJSON(p))
	}
	for _, r := range rep.Rows {
		out.Checks = append(out.Checks, checkOutput{N: r.N, Name: r.Name, Pass: r.Pass, Seconds: seconds(r.Took), Detail: r.Detail})
	}
	return out
}

func seconds(d time.Duration) float64 { return d.Round(time.Millisecond).Seconds() }

type versionOutput struct {
	Version    string `json:"version" doc:"hardway's version (git describe, or the module version)"`
	APIVersion string `json:"apiVersion" doc:"the spec version it reads, hardway.dev/v1alpha1"`
	Kubernetes string `json:"kubernetes" doc:"the Kubernetes minor release its files are made for"`
	Go         string `json:"go" doc:"the Go release it was built with"`
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

type planOutput struct {
	Dir     string              `json:"dir" doc:"the cluster directory, <dir>/<cluster>"`
	Changes []output.Change     `json:"changes" doc:"every file generate would add, change or remove: {path, node, kind, change}, sorted by path (empty when nothing would change)"`
	Rebake  []clusterdir.Action `json:"rebake" doc:"what to re-bake, re-upload or install because of the changes: {node, do}, by node in spec order, then the cluster"`
}
