package node

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"

	"github.com/hardway-dev/hardway/generators"
	"github.com/hardway-dev/hardway/packer/internal/load"
	"github.com/hardway-dev/hardway/packer/internal/plugintest"
	"github.com/hardway-dev/hardway/rootfs"
)

func TestPrepareValid(t *testing.T) {
	file := plugintest.Write(t, plugintest.Cluster)
	var p Provisioner
	if err := p.Prepare(map[string]interface{}{"spec": file, "node": "w2", "destination_root": "/mnt/image/"}); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	c := p.config
	if c.OutputDirectory != "out" || c.DestinationRoot != "/mnt/image" || c.StagingDirectory != "/tmp" || p.node.Name != "w2" {
		t.Errorf("config %+v, node %s", c, p.node.Name)
	}
}

func TestPrepareInvalid(t *testing.T) {
	file := plugintest.Write(t, plugintest.Cluster)
	for _, tc := range []struct {
		name string
		raw  map[string]interface{}
		want []string
	}{
		{"nothing", map[string]interface{}{}, []string{"spec: required", "node: required"}},
		{"missing spec", map[string]interface{}{"spec": "/nonexistent.yaml", "node": "w1"}, []string{"spec: stat /nonexistent.yaml: no such file"}},
		{"unknown node, relative paths", map[string]interface{}{"spec": file, "node": "w9", "destination_root": "mnt", "staging_directory": "tmp"}, []string{
			`node: no node "w9" in ` + file,
			`destination_root: "mnt" is not an absolute path`,
			`staging_directory: "tmp" is not an absolute path`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p Provisioner
			err := p.Prepare(tc.raw)
			merr, ok := err.(*packersdk.MultiError)
			if !ok {
				t.Fatalf("Prepare returned %T %v, want a *packer.MultiError", err, err)
			}
			if len(merr.Errors) != len(tc.want) {
				t.Fatalf("%d errors, want %d:\n%v", len(merr.Errors), len(tc.want), err)
			}
			for i, w := range tc.want {
				if got := merr.Errors[i].Error(); !strings.Contains(got, w) {
					t.Errorf("error %d: %q does not contain %q", i, got, w)
				}
			}
		})
	}
}

func TestUseSudo(t *testing.T) {
	for _, tc := range []struct {
		useSudo interface{}
		user    interface{}
		want    bool
	}{
		{nil, "debian", true},
		{nil, "root", false},
		{nil, nil, false},
		{false, "debian", false},
		{true, "root", true},
	} {
		raw := map[string]interface{}{}
		if tc.useSudo != nil {
			raw["use_sudo"] = tc.useSudo
		}
		var c Config
		if err := config.Decode(&c, nil, raw); err != nil {
			t.Fatal(err)
		}
		if got := useSudo(&c, map[string]interface{}{"User": tc.user}); got != tc.want {
			t.Errorf("use_sudo %v, user %v: sudo %v, want %v", tc.useSudo, tc.user, got, tc.want)
		}
	}
}

func TestSteps(t *testing.T) {
	file := plugintest.Write(t, plugintest.Cluster)
	for _, tc := range []struct {
		root string
		skip bool
		want []string // what each step says, or why it is skipped
	}{
		{root: "/", want: []string{"Installing", "Reloading systemd", "Sysprep"}},
		{root: "/", skip: true, want: []string{"Installing", "Reloading systemd", "skip_sysprep is set"}},
		{root: "/mnt/x", want: []string{"Installing", "destination_root is /mnt/x, not /: skipping"}},
	} {
		var p Provisioner
		if err := p.Prepare(map[string]interface{}{"spec": file, "node": "cp1", "destination_root": tc.root, "skip_sysprep": tc.skip}); err != nil {
			t.Fatal(err)
		}
		x, _, err := load.Generate(context.Background(), p.doc, t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := generators.Node(x, p.node)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range steps(&p.config, "/tmp/o.tar", tr) {
			got = append(got, s.say+s.skip)
			if out, err := exec.Command("sh", "-n", "-c", s.script).CombinedOutput(); err != nil {
				t.Errorf("step %q: sh -n: %v\n%s", s.say, err, out)
			}
		}
		if len(got) != len(tc.want) {
			t.Fatalf("root %s: steps %q, want %q", tc.root, got, tc.want)
		}
		for i := range got {
			if !strings.Contains(got[i], tc.want[i]) {
				t.Errorf("root %s: step %d %q, want %q", tc.root, i, got[i], tc.want[i])
			}
		}
	}
}

// TestProvisionLocal runs Provision through a communicator that runs its
// commands on this machine, into a destination_root in a temporary
// directory, with the PKI state of `hardway generate` and then read-only
// from pki_dir: every entry of the node's tree must arrive, and the staged
// tar must be gone.
func TestProvisionLocal(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("no tar")
	}
	file := plugintest.Write(t, plugintest.Cluster)
	out := t.TempDir()
	for _, pkiDir := range []string{"", filepath.Join(out, "pkrtest", "pki")} {
		root, staging := filepath.Join(t.TempDir(), "root"), t.TempDir()
		var p Provisioner
		err := p.Prepare(map[string]interface{}{
			"spec": file, "node": "w1", "output_directory": out, "pki_dir": pkiDir,
			"destination_root": root, "staging_directory": staging, "use_sudo": false,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Provision(context.Background(), packersdk.TestUi(t), localComm{}, map[string]interface{}{"User": "root"}); err != nil {
			t.Fatalf("pki_dir %q: Provision: %v", pkiDir, err)
		}
		x, err := load.PKI(p.doc, filepath.Join(out, "pkrtest", "pki"))
		if err != nil {
			t.Fatal(err)
		}
		tr, err := generators.Node(x, p.node)
		if err != nil {
			t.Fatal(err)
		}
		plugintest.CheckInstalled(t, root, tr, os.Geteuid() == 0)
		if left, _ := os.ReadDir(staging); len(left) > 0 {
			t.Errorf("the staged tar is still there: %v", left)
		}
	}
}

// TestPKIReadOnly checks that pki_dir is never written to: an empty
// directory is an error that says to run hardway generate.
func TestPKIReadOnly(t *testing.T) {
	file := plugintest.Write(t, plugintest.Cluster)
	var p Provisioner
	if err := p.Prepare(map[string]interface{}{"spec": file, "node": "w1"}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, err := load.PKI(p.doc, dir)
	if err == nil || !strings.Contains(err.Error(), "run `hardway generate`") {
		t.Fatalf("load.PKI of an empty directory: %v", err)
	}
	if left, _ := os.ReadDir(dir); len(left) > 0 {
		t.Errorf("load.PKI wrote %v", left)
	}
}

// localComm is a communicator for this machine: commands run with sh -c,
// uploads are files.
type localComm struct{}

func (localComm) Start(ctx context.Context, rc *packersdk.RemoteCmd) error {
	cmd := exec.CommandContext(ctx, "sh", "-c", rc.Command)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = rc.Stdin, rc.Stdout, rc.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() {
		err := cmd.Wait()
		var exit *exec.ExitError
		switch {
		case err == nil:
			rc.SetExited(0)
		case errors.As(err, &exit):
			rc.SetExited(exit.ExitCode())
		default:
			rc.SetExited(packersdk.CmdDisconnect)
		}
	}()
	return nil
}

func (localComm) Upload(dst string, src io.Reader, _ *os.FileInfo) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (localComm) UploadDir(string, string, []string) error { return errors.New("not used") }
func (localComm) Download(string, io.Writer) error         { return errors.New("not used") }
func (localComm) DownloadDir(string, string, []string) error {
	return errors.New("not used")
}

// TestSysprepLocal applies the sysprep to a machine's tree in a temporary
// directory through the local communicator: the machine id is emptied and
// dbus's copy becomes a link to it, the host keys and cloud-init's instance
// state go (its seed stays), and the machine having sshd gets the keygen
// unit, enabled — what rootfs.Sysprep does to a base.
func TestSysprepLocal(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("no tar")
	}
	root, staging := t.TempDir(), t.TempDir()
	files := map[string]string{
		"etc/machine-id":                       "0123456789abcdef0123456789abcdef\n",
		"var/lib/dbus/machine-id":              "0123456789abcdef0123456789abcdef\n",
		"etc/ssh/ssh_host_ed25519_key":         "private",
		"etc/ssh/ssh_host_ed25519_key.pub":     "public",
		"etc/ssh/sshd_config":                  "kept",
		"usr/sbin/sshd":                        "",
		"var/lib/cloud/instances/i-1/obj.pkl":  "state",
		"var/lib/cloud/data/instance-id":       "i-1",
		"var/lib/cloud/seed/nocloud/meta-data": "kept",
	}
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/var/lib/cloud/instances/i-1", filepath.Join(root, "var/lib/cloud/instance")); err != nil {
		t.Fatal(err)
	}
	staged := filepath.Join(staging, "sysprep.tar")
	if err := sysprep(context.Background(), packersdk.TestUi(t), localComm{}, false, root, staged); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "etc/machine-id")); err != nil || len(b) != 0 {
		t.Errorf("machine-id: %q, %v; want empty", b, err)
	}
	if l, err := os.Readlink(filepath.Join(root, "var/lib/dbus/machine-id")); l != "/etc/machine-id" {
		t.Errorf("dbus machine-id: link to %q, %v; want /etc/machine-id", l, err)
	}
	for _, gone := range []string{"etc/ssh/ssh_host_ed25519_key", "etc/ssh/ssh_host_ed25519_key.pub", "var/lib/cloud/instances", "var/lib/cloud/instance", "var/lib/cloud/data"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); !os.IsNotExist(err) {
			t.Errorf("%s is still there (%v)", gone, err)
		}
	}
	for _, kept := range []string{"etc/ssh/sshd_config", "var/lib/cloud/seed/nocloud/meta-data", "etc/systemd/system/" + rootfs.SSHKeygenUnit} {
		if _, err := os.Stat(filepath.Join(root, kept)); err != nil {
			t.Errorf("%s: %v", kept, err)
		}
	}
	if l, err := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants", rootfs.SSHKeygenUnit)); err != nil || l != "/etc/systemd/system/"+rootfs.SSHKeygenUnit {
		t.Errorf("keygen unit link: %q, %v", l, err)
	}
	if _, err := os.Stat(staged); !os.IsNotExist(err) {
		t.Errorf("the staged tar is still there (%v)", err)
	}
}
