package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hardway-dev/hardway/generators"
	"github.com/hardway-dev/hardway/packer/internal/load"
	"github.com/hardway-dev/hardway/packer/internal/plugintest"
)

// TestAccProvisionerSSH runs the hardway-node provisioner in a null build
// over SSH, against Debian's OpenSSH server started here on 127.0.0.1 with
// a throwaway port and host key. Run as root, it logs in as a throwaway
// unprivileged user allowed sudo, so the provisioner goes through sudo
// (its default for a user that is not root) and the files must arrive
// root-owned; otherwise it logs in as the current user without sudo. The
// tree goes to a destination_root in a temporary directory (so the
// systemd and sysprep steps are skipped), and every entry of the node's
// tree, mode, owner and enablement link must be there.
func TestAccProvisionerSSH(t *testing.T) {
	e := newEnv(t)
	sshd := lookPath(t, "/usr/sbin/sshd", "sshd")
	keygen := lookPath(t, "/usr/bin/ssh-keygen", "ssh-keygen")
	dir := t.TempDir()
	for _, k := range []string{"host", "client"} {
		if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "hardway-test", "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	pub, err := os.ReadFile(filepath.Join(dir, "client.pub"))
	if err != nil {
		t.Fatal(err)
	}
	// sshd reads the keys as the user logging in: they go in a directory
	// that user can reach (t.TempDir's are private to this one).
	keys, err := os.MkdirTemp("", "hardway-ssh-keys-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(keys) })
	if err := os.Chmod(keys, 0o755); err != nil {
		t.Fatal(err)
	}
	authorized := filepath.Join(keys, "authorized_keys")
	if err := os.WriteFile(authorized, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	login, root := sshUser(t, keys)
	if root {
		// sshd's privilege separation directory, as Debian's unit creates it.
		if _, err := os.Stat("/run/sshd"); errors.Is(err, os.ErrNotExist) {
			if err := os.Mkdir("/run/sshd", 0o755); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Remove("/run/sshd") })
		}
	}
	port := freePort(t)
	config := filepath.Join(dir, "sshd_config")
	conf := strings.Join([]string{
		"ListenAddress 127.0.0.1",
		"Port " + strconv.Itoa(port),
		"HostKey " + filepath.Join(dir, "host"),
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"AuthorizedKeysFile " + authorized,
		"AuthenticationMethods publickey",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"StrictModes no",
		"AllowUsers " + login,
		"Subsystem sftp internal-sftp",
		"",
	}, "\n")
	if err := os.WriteFile(config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	server := exec.Command(sshd, "-D", "-e", "-f", config)
	logFile, err := os.Create(filepath.Join(dir, "sshd.log"))
	if err != nil {
		t.Fatal(err)
	}
	server.Stdout, server.Stderr = logFile, logFile
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Stop the server this test started, by its PID.
		_ = syscall.Kill(server.Process.Pid, syscall.SIGTERM)
		_ = server.Wait()
		logFile.Close()
		if t.Failed() {
			if log, err := os.ReadFile(logFile.Name()); err == nil {
				t.Logf("sshd log:\n%s", log)
			}
		}
	})
	waitListening(t, port)

	specFile := plugintest.Write(t, plugintest.Cluster)
	out := filepath.Join(dir, "out")
	dest := filepath.Join(dir, "root")
	template := filepath.Join(e.dir, "ssh.pkr.hcl")
	hcl := fmt.Sprintf(`
source "null" "ssh" {
  communicator         = "ssh"
  ssh_host             = "127.0.0.1"
  ssh_port             = %d
  ssh_username         = %q
  ssh_private_key_file = %q
  ssh_timeout          = "1m"
}

build {
  sources = ["source.null.ssh"]

  provisioner "hardway-node" {
    spec             = %q
    node             = "w1"
    output_directory = %q
    destination_root = %q
  }
}
`, port, login, filepath.Join(dir, "client"), specFile, out, dest)
	if err := os.WriteFile(template, []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	e.run("validate", template)
	start := time.Now()
	log := e.run("build", template)
	t.Logf("packer build with hardway-node over SSH took %s", time.Since(start).Round(time.Millisecond))
	for _, w := range []string{"Installing", "destination_root is " + dest + ", not /: skipping"} {
		if !strings.Contains(log, w) {
			t.Errorf("packer output lacks %q:\n%s", w, log)
		}
	}

	doc, _, errs := load.Spec("spec", specFile)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	x, err := load.PKI(doc, filepath.Join(out, doc.Cluster.Metadata.Name, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := doc.Cluster.Node("w1")
	tr, err := generators.Node(x, n)
	if err != nil {
		t.Fatal(err)
	}
	plugintest.CheckInstalled(t, dest, tr, root)
	if left, _ := filepath.Glob("/tmp/hardway-w1-overlay.tar"); len(left) > 0 {
		t.Errorf("the staged tar is still there: %v", left)
	}
}

// sshUser returns the user the test logs in as, and whether the test runs
// as root. As root, it creates an unprivileged user with home directory
// home, allowed passwordless sudo, removed when the test ends.
func sshUser(t *testing.T, home string) (string, bool) {
	t.Helper()
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		return u.Username, false
	}
	lookPath(t, "/usr/sbin/useradd", "useradd")
	lookPath(t, "/usr/bin/sudo", "sudo")
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := "hwtest" + hex.EncodeToString(b)
	// '*' as the password: no password login, but not a locked account,
	// which sshd would refuse.
	if out, err := exec.Command("useradd", "--system", "--no-create-home", "--home-dir", home,
		"--shell", "/bin/sh", "--password", "*", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v\n%s", err, out)
	}
	sudoers := filepath.Join("/etc/sudoers.d", name)
	t.Cleanup(func() {
		os.Remove(sudoers)
		// userdel refuses (status 8) while a process of the user runs: the
		// sshd session of the last connection may still be ending.
		deadline := time.Now().Add(15 * time.Second)
		for {
			out, err := exec.Command("userdel", name).CombinedOutput()
			if err == nil {
				return
			}
			var exit *exec.ExitError
			if errors.As(err, &exit) && exit.ExitCode() == 8 && time.Now().Before(deadline) {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			t.Errorf("userdel %s: %v\n%s", name, err, out)
			return
		}
	})
	if err := os.WriteFile(sudoers, []byte(name+" ALL=(root) NOPASSWD: ALL\n"), 0o440); err != nil {
		t.Fatal(err)
	}
	return name, true
}

// lookPath returns the first of names that is an executable.
func lookPath(t *testing.T, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Fatalf("%s is not installed (Debian: apt-get install openssh-server sudo)", names[len(names)-1])
	return ""
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitListening waits until something accepts connections on port.
func waitListening(t *testing.T, port int) {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd does not listen on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
