package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hardway-dev/hardway/output"
	"github.com/hardway-dev/hardway/verify"
)

// hardwayOut runs the built binary and returns its standard output and
// standard error apart, and its exit status.
func hardwayOut(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// walk calls f on every command of the tree.
func walk(c *cobra.Command, f func(*cobra.Command)) {
	f(c)
	for _, sub := range c.Commands() {
		walk(sub, f)
	}
}

// TestFlagsHaveOneMeaning (issue 16, point 1): -o is the output format and
// --dir the output root wherever a command has them, -f the spec.
func TestFlagsHaveOneMeaning(t *testing.T) {
	meanings := map[string]string{
		"output": "output format: text or json",
		"file":   "cluster spec",
		"dir":    "output root",
	}
	walk(newRoot(), func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			want, ok := meanings[f.Name]
			if !ok || f.Hidden {
				return
			}
			if c.Name() == "init" && f.Name == "file" {
				want = "file to write" // the spec it writes
			}
			if !strings.HasPrefix(f.Usage, want) {
				t.Errorf("%s --%s: %q does not start with %q", c.CommandPath(), f.Name, f.Usage, want)
			}
		})
	})
}

// TestDeprecatedSpellings: the previous release's -o FILE and -o DIR still
// work for one release, with a notice on standard error only.
func TestDeprecatedSpellings(t *testing.T) {
	dir := t.TempDir()
	out, errOut, code := hardwayOut(t, "", "generate", "-f", seed, "-o", dir)
	if code != 0 || !strings.Contains(errOut, "hardway generate -o "+dir+" is deprecated") || !strings.Contains(errOut, "use hardway generate --dir "+dir) {
		t.Errorf("generate -o DIR: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "kublxc", "manifest.json")); err != nil {
		t.Errorf("generate -o DIR did not write into DIR: %v", err)
	}
	if _, errOut, code := hardwayOut(t, "", "generate", "-f", seed, "-o", dir, "--dir", dir); code != exitUsage {
		t.Errorf("-o DIR and --dir together: exit %d\n%s", code, errOut)
	}
	file := filepath.Join(dir, "c.yaml")
	if _, errOut, code := hardwayOut(t, "", "init", "-o", file); code != 0 || !strings.Contains(errOut, "use hardway init -f "+file) {
		t.Errorf("init -o FILE: exit %d\n%s", code, errOut)
	}
	if _, err := os.Stat(file); err != nil {
		t.Error(err)
	}
	// certs check takes the directory as --dir, as generate now does.
	out, errOut, code = hardwayOut(t, "", "certs", "check", "-f", seed, "--dir", dir, "-o", "json")
	var st []struct{ Name, State string }
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st) != 19 {
		t.Errorf("certs check --dir -o json: exit %d\n%s%s", code, out, errOut)
	}
}

// TestExitCodes (point 4): usage 2, invalid input 1, findings 3.
func TestExitCodes(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none")
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"validate", "-f", seed}, 0, ""},
		{[]string{"bogus"}, exitUsage, `unknown command "bogus"`},
		{[]string{"validate", "--bogus"}, exitUsage, "unknown flag: --bogus"},
		{[]string{"validate", "-f", seed, "extra"}, exitUsage, `unknown command "extra"`},
		{[]string{"validate", "-f", seed, "-o", "yaml"}, exitUsage, `unknown output format "yaml"`},
		{[]string{"certs", "bogus"}, exitUsage, `unknown command "bogus" for "hardway certs"`},
		{[]string{"certs", "renew", "-f", seed}, exitUsage, "requires at least 1 arg"},
		{[]string{"bake", "-f", seed}, exitUsage, "--base is required"},
		{[]string{"bake", "-f", seed, "--base", "b.tar", "--format", "vm"}, exitUsage, `--format: unknown value "vm"`},
		{[]string{"validate", "-f", "../../spec/testdata/invalid/duplicate-vmid.yaml"}, exitFailed, "221 is used by cp1 too"},
		{[]string{"validate", "-f", missing}, exitFailed, "no such file"},
		{[]string{"certs", "check", "-f", seed, "--dir", missing}, exitFindings, "missing"},
	} {
		out, code := hardway(t, c.args...)
		if code != c.code || !strings.Contains(out, c.says) {
			t.Errorf("hardway %s: exit %d, want %d and %q:\n%s", strings.Join(c.args, " "), code, c.code, c.says, out)
		}
		if c.code == exitUsage && !strings.Contains(out, "--help' for usage.") {
			t.Errorf("hardway %s: a usage error without the hint to --help:\n%s", strings.Join(c.args, " "), out)
		}
	}
}

// TestJSONOutputs (point 3): validate, generate and version print one JSON
// document on standard output with -o json (verify's: TestVerifyJSON;
// bake's: TestBakeCommand; certs check's: TestCertsCheckJSONAndRenew).
func TestJSONOutputs(t *testing.T) {
	var v validateOutput
	decode := func(args ...string) (string, int) {
		t.Helper()
		out, errOut, code := hardwayOut(t, "", args...)
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("hardway %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		return errOut, code
	}
	// The seed warns about its even etcd count, and about the two image
	// archives it lists that are not built in a checkout (make images).
	if _, code := decode("validate", "-f", seed, "-o", "json"); code != 0 || !v.Valid || v.Nodes != 11 || len(v.Issues) != 3 ||
		!slices.ContainsFunc(v.Issues, func(i issueOutput) bool { return i.Severity == "warning" && i.Line == 59 && i.Path == "spec.nodes" }) {
		t.Errorf("validate seed: exit %d %+v", code, v)
	}
	v = validateOutput{}
	errorsOf := func(is []issueOutput) []issueOutput {
		return slices.DeleteFunc(slices.Clone(is), func(i issueOutput) bool { return i.Severity != "error" })
	}
	if _, code := decode("validate", "-f", "../../spec/testdata/invalid/duplicate-vmid.yaml", "-o", "json"); code != exitFailed || v.Valid || len(errorsOf(v.Issues)) != 1 ||
		errorsOf(v.Issues)[0] != (issueOutput{File: "../../spec/testdata/invalid/duplicate-vmid.yaml", Line: 26, Column: 13, Path: "spec.nodes[2].vmid", Severity: "error", Message: "221 is used by cp1 too"}) {
		t.Errorf("validate invalid: exit %d %+v", code, v)
	}

	dir := t.TempDir()
	var g generateOutput
	out, _, code := hardwayOut(t, "", "generate", "-f", seed, "--dir", dir, "-o", "json")
	// A first run writes every file its manifest lists (without the
	// rootfs/ trees, no symlink, which "changed" would leave out).
	arts, _ := output.ReadManifest(filepath.Join(dir, "kublxc"))
	if err := json.Unmarshal([]byte(out), &g); err != nil || code != 0 || g.Dir != filepath.Join(dir, "kublxc") || len(g.Changed) != len(arts) || len(arts) == 0 {
		t.Errorf("generate -o json: exit %d, %v, %d changed, the manifest lists %d\n%s", code, err, len(g.Changed), len(arts), out)
	}
	out, _, _ = hardwayOut(t, "", "generate", "-f", seed, "--dir", dir, "-o", "json")
	if err := json.Unmarshal([]byte(out), &g); err != nil || g.Changed == nil || len(g.Changed) != 0 {
		t.Errorf("rerun: want \"changed\": [], got %v\n%s", err, out)
	}

	var ver versionOutput
	out, _, _ = hardwayOut(t, "", "version", "-o", "json")
	if err := json.Unmarshal([]byte(out), &ver); err != nil || ver.APIVersion != "hardway.dev/v1alpha1" || ver.Version == "" || ver.Kubernetes != "v1.34" {
		t.Errorf("version -o json: %v %+v", err, ver)
	}
}

// TestVerifyJSON: verify's document carries every phase and check of its
// report (a run needs root and the pinned binaries: TestVerify* in verify/).
func TestVerifyJSON(t *testing.T) {
	rep := &verify.Report{
		Phases: []verify.Phase{{Name: "prepare", Took: 1500 * time.Millisecond, Detail: "3 nodes"}, {Name: "start etcd", Skipped: "no etcd"}},
		Rows:   []verify.Row{{N: 1, Name: "etcd members", Pass: true, Took: time.Second}, {N: 2, Name: "livez", Detail: "refused"}},
	}
	got := verifyReport(rep)
	if got.OK || len(got.Phases) != 2 || got.Phases[0].Seconds != 1.5 || !got.Phases[0].OK || got.Phases[1].OK || got.Phases[1].Skipped != "no etcd" ||
		len(got.Checks) != 2 || !got.Checks[0].Pass || got.Checks[1].Pass || got.Checks[1].Detail != "refused" {
		t.Errorf("%+v", got)
	}
}

// TestSmallThings (point 5).
func TestSmallThings(t *testing.T) {
	// --version says what version says.
	v1, _, _ := hardwayOut(t, "", "--version")
	v2, _, _ := hardwayOut(t, "", "version")
	if v1 != v2 || !strings.HasPrefix(v1, "hardway ") {
		t.Errorf("--version %q, version %q", v1, v2)
	}

	// -f - reads standard input; init -f - writes standard output.
	data, _ := os.ReadFile("../../examples/seed-kvm.yaml")
	if out, errOut, code := hardwayOut(t, string(data), "validate", "-f", "-"); code != 0 || out != "<stdin>: valid (3 nodes)\n" {
		t.Errorf("validate -f -: exit %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := hardwayOut(t, "kind: [", "validate", "-f", "-"); code != exitFailed || !strings.HasPrefix(errOut, "<stdin>:2:1: (document): YAML syntax") {
		t.Errorf("validate -f - of a broken spec: exit %d\n%s", code, errOut)
	}
	// What --show-defaults prints validates, for every example.
	for _, ex := range []string{"seed-lxc", "seed-kvm", "mixed"} {
		out, _, _ := hardwayOut(t, "", "validate", "--show-defaults", "-f", "../../examples/"+ex+".yaml")
		if o, errOut, code := hardwayOut(t, out, "validate", "--no-artifacts", "-f", "-"); code != 0 {
			t.Errorf("validate --show-defaults of %s does not validate:\n%s%s", ex, o, errOut)
		}
	}

	seed, _ := filepath.Abs(seed)
	dir := t.TempDir()
	t.Chdir(dir)
	if out, errOut, code := hardwayOut(t, "", "init", "-f", "-"); code != 0 || !strings.HasPrefix(out, "# yaml-language-server: $schema=cluster.schema.json\n") || !strings.Contains(out, "name: kublxc") {
		t.Errorf("init -f -: exit %d\n%s", code, errOut)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("init -f - wrote files: %v", entries)
	}

	// certs check changes nothing, even where there is nothing.
	missing := filepath.Join(dir, "none")
	if _, _, code := hardwayOut(t, "", "certs", "check", "-f", seed, "--dir", missing); code != exitFindings {
		t.Errorf("certs check of a missing dir: exit %d", code)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("certs check created the directory it checks")
	}

	// verify checks --bin-dir before generating, and says it once.
	out, errOut, code := hardwayOut(t, "", "verify", "-f", seed, "--dir", dir, "--bin-dir", missing)
	if code != exitFailed || strings.Count(out+errOut, "--bin-dir "+missing) != 1 {
		t.Errorf("verify --bin-dir missing: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "kublxc")); err == nil {
		t.Error("verify generated before checking --bin-dir")
	}
	help, _, _ := hardwayOut(t, "", "verify", "--help")
	for _, l := range strings.Split(help, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "--bin-dir") && strings.Count(l, "default") != 1 {
			t.Errorf("verify --help names the default of --bin-dir %d times: %s", strings.Count(l, "default"), l)
		}
	}
}

// TestHelpParagraphs: every paragraph of a command's help starts a
// sentence (with a capital, a command's name or a flag), indented blocks
// aside: bake --help had one starting mid-sentence.
func TestHelpParagraphs(t *testing.T) {
	root := newRoot()
	walk(root, func(c *cobra.Command) {
		for _, p := range strings.Split(c.Long, "\n\n") {
			p = strings.TrimLeft(p, "\n")
			if first, _, _ := strings.Cut(p, " "); p == "" || p[0] == ' ' || p[0] == '-' || p[0] == '"' || first == c.Name() {
				continue
			} else if sub, _, err := root.Find([]string{first}); err == nil && sub != root {
				continue
			}
			if r := p[0]; r < 'A' || r > 'Z' {
				t.Errorf("%s --help: a paragraph starts mid-sentence: %.60q", c.CommandPath(), p)
			}
		}
	})
}

// TestInitTopology (point 8): init's flags make the cluster asked for, and
// what they make validates; a network too small or a bad count is a usage
// error.
func TestInitTopology(t *testing.T) {
	out, errOut, code := hardwayOut(t, "", "init", "-f", "-", "--name", "lab", "--node-cidr", "192.168.50.0/24",
		"--controllers", "3", "--workers", "4", "--lbs", "2", "--target", "kvm")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	for _, want := range []string{
		"  name: lab\n", "    nodeCIDR: 192.168.50.0/24\n", "    vip: 192.168.50.10\n",
		"    - {name: lb1, roles: [lb], target: kvm, address: 192.168.50.11/24, vmid: 211}\n",
		"    - {name: cp3, roles: [controller, etcd], target: kvm, address: 192.168.50.15/24, vmid: 215}\n",
		"    - {name: worker4, roles: [worker], target: kvm, address: 192.168.50.19/24, vmid: 219}\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	var v validateOutput
	o, _, code := hardwayOut(t, out, "validate", "-f", "-", "-o", "json")
	if err := json.Unmarshal([]byte(o), &v); err != nil || code != 0 || !v.Valid || v.Nodes != 9 {
		t.Errorf("validate: exit %d %v %+v", code, err, v)
	}
	for _, args := range [][]string{
		{"--node-cidr", "10.0.0.0/29", "--workers", "5"},
		{"--controllers", "0"},
		{"--target", "docker"},
		{"--name", "Not A Label"},
		{"--workers", "3", "--example", "mixed"},
	} {
		if _, errOut, code := hardwayOut(t, "", append([]string{"init", "-f", "-"}, args...)...); code != exitUsage {
			t.Errorf("init %v: exit %d, want %d\n%s", args, code, exitUsage, errOut)
		}
	}
}

// TestCompletion (point 11): --node, --role and --format complete from the
// spec -f names, -f from *.yaml files.
func TestCompletion(t *testing.T) {
	complete := func(args ...string) []string {
		out, _, _ := hardwayOut(t, "", append([]string{"__complete"}, args...)...)
		var vals []string
		for _, l := range strings.Split(out, "\n") {
			if l != "" && !strings.HasPrefix(l, ":") && !strings.HasPrefix(l, "Completion ended") {
				name, _, _ := strings.Cut(l, "\t")
				vals = append(vals, name)
			}
		}
		return vals
	}
	mixed := "../../examples/mixed.yaml"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bake", "-f", mixed, "--node", ""}, "lb1 lb2 cp1 cp2 cp3 w1 w2 w3"},
		{[]string{"bake", "-f", mixed, "--role", ""}, "controller etcd lb worker"},
		{[]string{"bake", "--format", ""}, "lxc kvm sysext"},
		{[]string{"validate", "-o", ""}, "text json"},
		{[]string{"certs", "renew", "-f", seed, "kube-p"}, "all apiserver apiserver-kubelet-client apiserver-etcd-client etcd/healthcheck-client front-proxy-client admin super-admin kube-controller-manager kube-scheduler kube-proxy etcd/server-etcd1 etcd/peer-etcd1 etcd/server-etcd2 etcd/peer-etcd2 kubelet-worker1 kubelet-worker2"},
	} {
		if got := strings.Join(complete(c.args...), " "); got != c.want {
			t.Errorf("complete %v: %q, want %q", c.args, got, c.want)
		}
	}
	out, _, _ := hardwayOut(t, "", "__complete", "validate", "-f", "")
	if !strings.Contains(out, "yaml") {
		t.Errorf("-f does not complete *.yaml files:\n%s", out)
	}
}

// TestAcknowledgedWarning (point 7): a warning the spec acknowledges is
// shown by validate once, marked, and by no other command.
func TestAcknowledgedWarning(t *testing.T) {
	data, _ := os.ReadFile(seed)
	file := filepath.Join(t.TempDir(), "cluster.yaml")
	os.WriteFile(file, append(data, "  acknowledgeWarnings: [even-etcd-members]\n"...), 0o644)
	_, errOut, code := hardwayOut(t, "", "validate", "--no-artifacts", "-f", file)
	if code != 0 || strings.Count(errOut, "etcd members") != 1 || !strings.Contains(errOut, "warning (acknowledged even-etcd-members): spec.nodes: 2 etcd members") {
		t.Errorf("validate: exit %d\n%s", code, errOut)
	}
	out, _, _ := hardwayOut(t, "", "validate", "--no-artifacts", "-f", file, "-o", "json")
	if !strings.Contains(out, `"name": "even-etcd-members",`+"\n      \"acknowledged\": true") {
		t.Errorf("validate -o json does not mark it acknowledged:\n%s", out)
	}
	for _, args := range [][]string{
		{"generate", "-f", file, "--dir", t.TempDir()},
		{"certs", "check", "-f", file, "--dir", t.TempDir()},
		{"pin", "-f", file},
	} {
		if _, errOut, _ := hardwayOut(t, "", args...); strings.Contains(errOut, "etcd members") {
			t.Errorf("hardway %s shows the acknowledged warning:\n%s", args[0], errOut)
		}
	}
}

// TestCertsCheckCAAlgorithm (point 6): after pki.algorithm changes, certs
// check says that the CAs keep their algorithm, instead of a bare ok.
func TestCertsCheckCAAlgorithm(t *testing.T) {
	dir := t.TempDir()
	if o, code := hardway(t, "generate", "-f", seed, "--dir", dir); code != 0 {
		t.Fatal(o)
	}
	data, _ := os.ReadFile(seed)
	rsa := filepath.Join(dir, "rsa.yaml")
	changed := strings.Replace(string(data), "algorithm: ecdsa-p256", "algorithm: rsa-2048", 1)
	if changed == string(data) {
		t.Fatal("the seed names no ecdsa-p256 algorithm to change")
	}
	os.WriteFile(rsa, []byte(changed), 0o644)
	out, _, code := hardwayOut(t, "", "certs", "check", "-f", rsa, "--dir", dir, "-o", "json")
	var st []struct{ Name, State, Reason, CA string }
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != exitFindings {
		t.Fatalf("exit %d %v\n%s", code, err, out)
	}
	for _, s := range st {
		if s.CA == "" && (s.State != "ok" || !strings.Contains(s.Reason, "an ECDSA key while spec.pki.algorithm is rsa-2048: CAs are never replaced")) {
			t.Errorf("%s: %s: %s", s.Name, s.State, s.Reason)
		}
	}
}
