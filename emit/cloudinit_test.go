package emit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/hardway-dev/hardway/tree"
)

// seed returns the cloud-init files of w1 with the sample tree, written to a
// temporary directory as user-data, meta-data and network-config.
func seed(t *testing.T, tr *tree.Tree) (dir string, ud, md, nc []byte) {
	t.Helper()
	x, nodes := testContext(t)
	ud, md, nc, err := CloudInit(x, nodes["w1"], tr)
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	for name, data := range map[string][]byte{"user-data": ud, "meta-data": md, "network-config": nc} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir, ud, md, nc
}

// TestCloudInitSchema validates user-data with cloud-init's own schema.
// cloud-init 22.4 (Debian 12) has no schema for network-config:
// TestCloudInitNetworkConfig renders it with cloud-init instead.
func TestCloudInitSchema(t *testing.T) {
	ci := tool(t, "cloud-init")
	dir, _, _, _ := seed(t, sampleTree())
	out := run(t, ci, "schema", "--config-file", filepath.Join(dir, "user-data"))
	if !bytes.Contains(out, []byte("Valid cloud-config")) {
		t.Fatalf("cloud-init schema: %s", out)
	}
}

// TestCloudInitWritesTree applies user-data below a temporary root with
// cloud-init's write_files module and the bootcmd/runcmd commands
// (testdata/apply-user-data.py); the result must be exactly the tree.
func TestCloudInitWritesTree(t *testing.T) {
	py := cloudInitPython(t)
	dir, _, _, _ := seed(t, sampleTree())
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, py, "testdata/apply-user-data.py", filepath.Join(dir, "user-data"), root)
	if s := diff(snapshot(t, root, isRoot()), want(sampleTree(), isRoot())); s != "" {
		t.Errorf("cloud-init wrote a different tree:\n%s", s)
	}
}

// cloudInitPython is the interpreter of the cloud-init script (its #!
// line), which can import the cloudinit package.
func cloudInitPython(t *testing.T) string {
	t.Helper()
	script, err := os.ReadFile(tool(t, "cloud-init"))
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(script), "\n")
	py, ok := strings.CutPrefix(line, "#!")
	if !ok {
		t.Fatalf("cloud-init is not a script: %q", line)
	}
	return strings.TrimSpace(py)
}

// userData is the part of user-data the tests read back.
type userData struct {
	Hostname          string     `yaml:"hostname"`
	FQDN              string     `yaml:"fqdn"`
	ManageEtcHosts    *bool      `yaml:"manage_etc_hosts"`
	SSHPwauth         *bool      `yaml:"ssh_pwauth"`
	SSHAuthorizedKeys []string   `yaml:"ssh_authorized_keys"`
	Bootcmd           [][]string `yaml:"bootcmd"`
	WriteFiles        []struct {
		Path     string `yaml:"path"`
		Encoding string `yaml:"encoding"`
	} `yaml:"write_files"`
	Runcmd [][]string `yaml:"runcmd"`
}

func TestCloudInitUserData(t *testing.T) {
	_, ud, _, _ := seed(t, sampleTree())
	if !bytes.HasPrefix(ud, []byte("#cloud-config\n")) {
		t.Fatalf("user-data starts with %q", ud[:20])
	}
	var got userData
	if err := yaml.Unmarshal(ud, &got); err != nil {
		t.Fatal(err)
	}
	if got.Hostname != "w1" || got.FQDN != "w1.example.com" {
		t.Errorf("hostname %q fqdn %q", got.Hostname, got.FQDN)
	}
	if got.ManageEtcHosts == nil || *got.ManageEtcHosts || got.SSHPwauth == nil || *got.SSHPwauth {
		t.Errorf("manage_etc_hosts %v ssh_pwauth %v; want both false", got.ManageEtcHosts, got.SSHPwauth)
	}
	if len(got.SSHAuthorizedKeys) != 1 || !strings.HasSuffix(got.SSHAuthorizedKeys[0], " ops@example.com") {
		t.Errorf("ssh_authorized_keys %q", got.SSHAuthorizedKeys)
	}
	// bootcmd pre-creates exactly the secrets (checked at work by
	// TestCloudInitWritesTree).
	var secrets []string
	for _, e := range sampleTree().Entries() {
		if e.Secret {
			secrets = append(secrets, e.Path)
		}
	}
	if len(got.Bootcmd) != 1 || strings.Join(got.Bootcmd[0][4:], " ") != strings.Join(secrets, " ") {
		t.Errorf("bootcmd %q, want the secrets %q pre-created", got.Bootcmd, secrets)
	}
	for _, f := range got.WriteFiles {
		b64 := f.Path == "/etc/etcd/server.key" || f.Path == "/usr/local/bin/tool"
		if b64 != (f.Encoding == "b64") {
			t.Errorf("%s: encoding %q", f.Path, f.Encoding)
		}
	}
	if bytes.Contains(ud, []byte("MHcCAQEEIDummyKeyMaterial")) {
		t.Error("the secret is in clear text in user-data")
	}
	// The end of runcmd: daemon-reload, then the units in Enable order;
	// every symlink before it.
	n := len(got.Runcmd)
	tail := got.Runcmd[n-3:]
	wantTail := [][]string{
		{"systemctl", "daemon-reload"},
		{"systemctl", "enable", "--now", "--no-block", "b.service"},
		{"systemctl", "enable", "--now", "--no-block", "a.service"},
	}
	for i := range wantTail {
		if strings.Join(tail[i], " ") != strings.Join(wantTail[i], " ") {
			t.Errorf("runcmd[%d] = %q, want %q", n-3+i, tail[i], wantTail[i])
		}
	}
	for _, c := range got.Runcmd[:n-3] {
		if c[0] == "systemctl" {
			t.Errorf("systemctl before the files are complete: %q", c)
		}
	}
}

func TestCloudInitMetaData(t *testing.T) {
	_, ud, md, nc := seed(t, sampleTree())
	sum := sha256.Sum256([]byte(string(ud) + string(nc)))
	wantMD := "instance-id: w1-" + hex.EncodeToString(sum[:])[:12] + "\nlocal-hostname: w1\n"
	if string(md) != wantMD {
		t.Errorf("meta-data:\n%s\nwant:\n%s", md, wantMD)
	}
	if !regexp.MustCompile(`^instance-id: w1-[0-9a-f]{12}\n`).Match(md) {
		t.Errorf("instance-id format: %s", md)
	}
	_, _, md2, _ := seed(t, sampleTree())
	if !bytes.Equal(md, md2) {
		t.Error("meta-data is not deterministic")
	}
	changed := sampleTree()
	changed.File("/etc/motd", 0o644, []byte("hello\n"))
	if _, _, md3, _ := seed(t, changed); bytes.Equal(md, md3) {
		t.Error("a changed tree keeps the instance-id: cloud-init would not run again")
	}
}

// TestCloudInitNetworkConfig renders network-config with cloud-init's own
// converter (the parser cloud-init uses at boot) to systemd-networkd and
// netplan, and reads the addresses and routes back.
func TestCloudInitNetworkConfig(t *testing.T) {
	ci := tool(t, "cloud-init")
	dir, _, _, _ := seed(t, sampleTree())
	render := func(kind string) string {
		out := filepath.Join(dir, kind)
		run(t, ci, "devel", "net-convert", "-p", filepath.Join(dir, "network-config"), "-k", "yaml", "-D", "debian", "-O", kind, "-d", out)
		var all []byte
		filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				b, _ := os.ReadFile(p)
				all = append(all, b...)
			}
			return err
		})
		return string(all)
	}
	networkd := render("networkd")
	for _, s := range []string{
		"Name=eth0",
		"Address=10.240.0.31/24",
		"Destination=0.0.0.0/0\n\nGateway=10.240.0.1",
		"DNS=10.240.0.1 10.240.0.2",
		"Domains=example.com",
	} {
		if !strings.Contains(networkd, s) {
			t.Errorf("networkd rendering lacks %q:\n%s", s, networkd)
		}
	}
	if strings.Contains(networkd, "10.200.") {
		t.Errorf("networkd rendering routes a pod CIDR, which the gateway routes:\n%s", networkd)
	}
	netplan := render("netplan")
	x, nodes := testContext(t)
	mac := x.MAC(nodes["w1"])
	if !regexp.MustCompile(`^02(:[0-9a-f]{2}){5}$`).MatchString(mac) {
		t.Errorf("MAC %s is not a locally administered unicast address", mac)
	}
	if !strings.Contains(networkd, "MACAddress="+mac) {
		t.Errorf("networkd rendering does not match the pinned MAC %s:\n%s", mac, networkd)
	}
	for _, s := range []string{"macaddress: " + mac, "set-name: eth0"} {
		if !strings.Contains(netplan, s) {
			t.Errorf("netplan rendering lacks %q:\n%s", s, netplan)
		}
	}
}

// TestCloudInitNetworkConfigRoutes: a controller and a worker alike have
// the default route only; the gateway routes the other workers' pods.
func TestCloudInitNetworkConfigRoutes(t *testing.T) {
	x, nodes := testContext(t)
	for _, name := range []string{"c1", "w1"} {
		_, _, nc, err := CloudInit(x, nodes[name], tree.New(name))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Ethernets map[string]struct {
				Routes []map[string]string `yaml:"routes"`
			} `yaml:"ethernets"`
		}
		if err := yaml.Unmarshal(nc, &doc); err != nil {
			t.Fatal(err)
		}
		r := doc.Ethernets["eth0"].Routes
		if len(r) != 1 || r[0]["to"] != "0.0.0.0/0" || r[0]["via"] != "10.240.0.1" {
			t.Errorf("routes of %s: %v", name, r)
		}
	}
}

// TestCloudInitNetworkConfigTwoNICs renders the network-config of gw, which
// has a public interface with the default route, with cloud-init's own
// converter: each interface is matched by its pinned MAC and renamed, the
// default route goes through the public gateway, and eth0 routes only the
// pods through network.gateway.
func TestCloudInitNetworkConfigTwoNICs(t *testing.T) {
	ci := tool(t, "cloud-init")
	x, nodes := testContext(t)
	gw := nodes["gw"]
	_, _, nc, err := CloudInit(x, gw, tree.New("gw"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "network-config"), nc, 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "networkd")
	run(t, ci, "devel", "net-convert", "-p", filepath.Join(dir, "network-config"), "-k", "yaml", "-D", "debian", "-O", "networkd", "-d", out)
	files := map[string]string{}
	filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			files[filepath.Base(p)] = string(b)
		}
		return err
	})
	eth0, eth1 := files["10-cloud-init-eth0.network"], files["10-cloud-init-eth1.network"]
	for _, c := range []struct{ file, s string }{
		{eth0, "MACAddress=" + x.MAC(gw)},
		{eth0, "Address=10.240.0.2/24"},
		{eth0, "Destination=10.200.0.0/16\n\nGateway=10.240.0.1"},
		{eth0, "DNS=10.240.0.1 10.240.0.2"},
		{eth1, "MACAddress=" + x.NICMAC(gw, 1)},
		{eth1, "Address=203.0.113.5/24"},
		{eth1, "Destination=0.0.0.0/0\n\nGateway=203.0.113.1"},
	} {
		if !strings.Contains(c.file, c.s) {
			t.Errorf("networkd rendering lacks %q:\n%v", c.s, files)
		}
	}
	if strings.Contains(eth0, "Destination=0.0.0.0/0") || strings.Contains(eth1, "DNS=") {
		t.Errorf("eth0 has a default route or eth1 resolvers:\n%v", files)
	}
	if x.NICMAC(gw, 1) == x.MAC(gw) {
		t.Errorf("eth1 has eth0's MAC %s", x.MAC(gw))
	}
}

// TestCloudInitLocale runs cloud-init's locale module on user-data
// (testdata/apply-locale.py): on a machine where no locale was generated,
// as on hardway's bases, the locale it sets must be one update-locale
// accepts. Without a locale in user-data the module sets Debian's
// en_US.UTF-8, update-locale refuses it and cloud-config.service fails
// (found by verify --boot on KVM nodes).
func TestCloudInitLocale(t *testing.T) {
	py := cloudInitPython(t)
	tool(t, "update-locale")
	dir, _, _, _ := seed(t, sampleTree())
	file := filepath.Join(dir, "locale")
	run(t, py, "testdata/apply-locale.py", filepath.Join(dir, "user-data"), file)
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^LANG=C\.UTF-8$`).Match(got) {
		t.Errorf("locale file:\n%s\nwant LANG=C.UTF-8", got)
	}
}
