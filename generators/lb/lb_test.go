package lb_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/generators/common/commontest"
	"github.com/hardway-dev/hardway/generators/lb"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/pki"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

const seedLXC = "../../examples/seed-lxc.yaml"

func generate(t *testing.T, x *nodegen.Context, name string) *tree.Tree {
	t.Helper()
	tr := tree.New(name)
	if err := lb.Generate(x, commontest.Node(t, x, name), tr); err != nil {
		t.Fatal(err)
	}
	if err := tr.Check(); err != nil {
		t.Fatal(err)
	}
	return tr
}

// haproxyFiles writes lb's haproxy.cfg and CA to dir, the config pointing at
// the copy of the CA (haproxy -c opens it), and returns the config's path.
func haproxyFiles(t *testing.T, tr *tree.Tree, dir string) string {
	t.Helper()
	ca := commontest.WriteFile(t, dir, "ca.crt", commontest.File(t, tr, lb.HAProxyCA))
	cfg := strings.ReplaceAll(string(commontest.File(t, tr, lb.HAProxyConfig)), lb.HAProxyCA, ca)
	return commontest.WriteFile(t, dir, "haproxy.cfg", []byte(cfg))
}

// TestHAProxyConfig: haproxy -c accepts lb's configuration and rejects a
// corrupted copy; the frontend and backends are those of seed-lxc, by hand.
func TestHAProxyConfig(t *testing.T) {
	haproxy := commontest.Tool(t, "haproxy", "haproxy")
	x := commontest.Context(t, seedLXC)
	tr := generate(t, x, "lb")
	cfg := haproxyFiles(t, tr, t.TempDir())
	if out, ok := commontest.Run(t, haproxy, "-c", "-f", cfg); !ok {
		t.Fatalf("haproxy -c: %s", out)
	}
	data, _ := os.ReadFile(cfg)
	bad := commontest.WriteFile(t, t.TempDir(), "bad.cfg", []byte(strings.Replace(string(data), "http-check expect status 200", "http-check expect stat 200", 1)))
	if out, ok := commontest.Run(t, haproxy, "-c", "-f", bad); ok {
		t.Errorf("haproxy -c accepted a corrupted configuration: %s", out)
	}

	text := string(data)
	for _, want := range []string{
		"bind 10.240.0.10:6443",
		"server controller 10.240.0.20:6443 verifyhost controller.example.com",
		"server controller1 10.240.0.21:6443 verifyhost controller1.example.com",
		"server controller2 10.240.0.22:6443 verifyhost controller2.example.com",
	} {
		if !strings.Contains(text, "\t"+want+"\n") {
			t.Errorf("haproxy.cfg lacks %q", want)
		}
	}
	if ca := commontest.File(t, tr, lb.HAProxyCA); string(ca) != string(x.PKI.Get(pki.CA).CertPEM) {
		t.Error("/etc/haproxy/ca.crt is not the cluster CA")
	}
}

// TestHAProxyServesHealthyController runs the generated HAProxy in a network
// namespace of its own: controller (10.240.0.20) answers TLS with the real
// apiserver certificate, nothing listens on controller1's address and
// controller2's is not even there. Without the lb's sysctl HAProxy cannot
// bind the VIP; with it, it binds the VIP it does not hold yet. The health
// check (TLS, cluster CA, FQDN) must keep controller up and take the others
// down; once the VIP arrives, as keepalived would move it, clients get through.
func TestHAProxyServesHealthyController(t *testing.T) {
	tools := map[string]string{}
	for name, pkg := range map[string]string{"haproxy": "haproxy", "openssl": "openssl", "curl": "curl",
		"unshare": "util-linux", "ip": "iproute2", "ss": "iproute2", "sysctl": "procps", "timeout": "coreutils"} {
		tools[name] = commontest.Tool(t, name, pkg)
	}
	x := commontest.Context(t, seedLXC)
	tr := generate(t, x, "lb")
	dir := t.TempDir()
	cfg := haproxyFiles(t, tr, dir)
	commontest.WriteFile(t, dir, "sysctl.conf", commontest.File(t, tr, lb.Sysctl))
	api := x.PKI.Get("apiserver")
	commontest.WriteFile(t, dir, "apiserver.crt", api.CertPEM)
	commontest.WriteFile(t, dir, "apiserver.key", api.KeyPEM)

	script := `
set -u
# Background processes are stopped by the PIDs recorded here (dash's "jobs -p"
# lists nothing in an EXIT trap, which leaked HAProxy before).
PIDS=""
trap 'kill $PIDS 2>/dev/null; wait' EXIT
cd "$DIR"
ip link set lo up
ip addr add 10.240.0.20/32 dev lo
ip addr add 10.240.0.21/32 dev lo
timeout 5 haproxy -db -f "$CFG" >nobind.log 2>&1
echo "nobind=$?"
sysctl -q -p sysctl.conf
echo "nonlocal=$(cat /proc/sys/net/ipv4/ip_nonlocal_bind)"
openssl s_server -quiet -accept 10.240.0.20:6443 -cert apiserver.crt -key apiserver.key -www >/dev/null 2>&1 &
PIDS="$PIDS $!"
for _ in $(seq 40); do curl -sk -o /dev/null https://10.240.0.20:6443/ && break; sleep 0.25; done
haproxy -db -f "$CFG" >haproxy.log 2>&1 &
PIDS="$PIDS $!"
# Before the checks take controller1 and controller2 down, HAProxy counts
# them up: the round robin sends connections there, which fail and must be
# redispatched to controller.
ip addr add 10.240.0.10/32 dev lo
for _ in $(seq 100); do ss -Hltn | grep -q '10.240.0.10:6443' && break; sleep 0.02; done
for i in 1 2 3 4; do
	curl -sS --max-time 5 --cacert ca.crt --resolve kubernetes.example.com:6443:10.240.0.10 \
		-o /dev/null -w "early$i=%{http_code}\n" https://kubernetes.example.com:6443/readyz
done
grep -c 'is DOWN' haproxy.log | sed 's/^/down_before_late=/'
for _ in $(seq 60); do
	grep -q 'controller1 is DOWN' haproxy.log && grep -q 'controller2 is DOWN' haproxy.log && break
	sleep 0.5
done
for i in 1 2 3; do
	curl -sS --max-time 5 --cacert ca.crt --resolve kubernetes.example.com:6443:10.240.0.10 \
		-o /dev/null -w "curl$i=%{http_code}\n" https://kubernetes.example.com:6443/readyz
done
`
	cmd := fmt.Sprintf("DIR=%q CFG=%q PATH=%q; %s", dir, cfg, toolPath(tools), script)
	out, _ := commontest.Run(t, tools["unshare"], "-n", "sh", "-c", cmd)
	log, _ := os.ReadFile(filepath.Join(dir, "haproxy.log"))
	nobind, _ := os.ReadFile(filepath.Join(dir, "nobind.log"))
	t.Logf("script:\n%s\nhaproxy.log:\n%s", out, log)

	if !strings.Contains(out, "nobind=1") || !strings.Contains(string(nobind), "cannot bind socket") {
		t.Errorf("without ip_nonlocal_bind HAProxy should fail to bind the VIP; got %q: %s", out, nobind)
	}
	if !strings.Contains(out, "nonlocal=1") {
		t.Errorf("%s did not set ip_nonlocal_bind", lb.Sysctl)
	}
	for _, down := range []string{"controller1", "controller2"} {
		if !strings.Contains(string(log), "kube-apiserver/"+down+" is DOWN") {
			t.Errorf("the health check did not take %s down", down)
		}
	}
	if regexp.MustCompile(`kube-apiserver/controller is DOWN`).Match(log) {
		t.Error("the health check took the healthy controller down (TLS verification or /readyz failed)")
	}
	for i := 1; i <= 3; i++ {
		if !strings.Contains(out, fmt.Sprintf("curl%d=200", i)) {
			t.Errorf("request %d through the VIP did not get 200", i)
		}
	}
	for i := 1; i <= 4; i++ {
		if !strings.Contains(out, fmt.Sprintf("early%d=200", i)) {
			t.Errorf("request %d through the VIP, sent while dead controllers still counted up, did not get 200 (no redispatch)", i)
		}
	}
}

// toolPath is a PATH holding every tool's directory.
func toolPath(tools map[string]string) string {
	var dirs []string
	for _, p := range tools {
		dirs = append(dirs, filepath.Dir(p))
	}
	return strings.Join(append(dirs, "/usr/sbin", "/usr/bin", "/sbin", "/bin"), ":")
}

// TestKeepalivedConfig: keepalived -t accepts every lb node's configuration,
// checked in a network namespace where eth0 exists, and rejects a corrupted
// one. Roles come from the order of seed-lxc's lb nodes (lb, lb1, lb2); the
// VRID of 10.240.0.10 is 1 + (10+240+0+10) mod 255 = 6.
func TestKeepalivedConfig(t *testing.T) {
	keepalived := commontest.Tool(t, "keepalived", "keepalived")
	unshare := commontest.Tool(t, "unshare", "util-linux")
	ip := commontest.Tool(t, "ip", "iproute2")
	x := commontest.Context(t, seedLXC)
	cases := []struct {
		node, state, priority, self string
		peers                       []string
	}{
		{"lb", "MASTER", "200", "10.240.0.40", []string{"10.240.0.41", "10.240.0.42"}},
		{"lb1", "BACKUP", "199", "10.240.0.41", []string{"10.240.0.40", "10.240.0.42"}},
		{"lb2", "BACKUP", "198", "10.240.0.42", []string{"10.240.0.40", "10.240.0.41"}},
	}
	check := func(conf string) (string, bool) {
		return commontest.Run(t, unshare, "-n", "sh", "-c", `"$1" link add eth0 type veth peer name peer0 && "$2" -t -f "$3"`, "sh", ip, keepalived, conf)
	}
	for _, c := range cases {
		text := string(commontest.File(t, generate(t, x, c.node), lb.KeepalivedConfig))
		conf := commontest.WriteFile(t, t.TempDir(), "keepalived.conf", []byte(text))
		if out, ok := check(conf); !ok {
			t.Errorf("%s: keepalived -t: %s", c.node, out)
		}
		fields := keyValues(text)
		for k, want := range map[string]string{"state": c.state, "priority": c.priority, "virtual_router_id": "6",
			"interface": "eth0", "unicast_src_ip": c.self, "router_id": c.node} {
			if fields[k] != want {
				t.Errorf("%s: %s = %q, want %q", c.node, k, fields[k], want)
			}
		}
		if got := block(text, "unicast_peer"); strings.Join(got, " ") != strings.Join(c.peers, " ") {
			t.Errorf("%s: unicast_peer %q, want %q", c.node, got, c.peers)
		}
		if got := block(text, "virtual_ipaddress"); len(got) != 1 || got[0] != "10.240.0.10/24 dev eth0" {
			t.Errorf("%s: virtual_ipaddress %q", c.node, got)
		}
	}
	text := string(commontest.File(t, generate(t, x, "lb"), lb.KeepalivedConfig))
	bad := commontest.WriteFile(t, t.TempDir(), "bad.conf", []byte(strings.Replace(text, "\tvirtual_router_id 6\n", "\tvirtual_router_id 600\n", 1)))
	if out, ok := check(bad); ok {
		t.Errorf("keepalived -t accepted VRID 600: %s", out)
	}
}

// keyValues maps the first word of each line to the rest.
func keyValues(text string) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(text, "\n") {
		if f := strings.Fields(l); len(f) == 2 && !strings.HasPrefix(f[0], "#") {
			out[f[0]] = f[1]
		}
	}
	return out
}

// block returns the trimmed lines inside `name {` ... `}`.
func block(text, name string) []string {
	_, rest, ok := strings.Cut(text, name+" {\n")
	if !ok {
		return nil
	}
	body, _, _ := strings.Cut(rest, "}")
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// TestMixedLB: mixed's second lb node, lb2, is the backup; its VIP
// 192.168.50.10 gives VRID 1 + (192+168+50+10) mod 255 = 166.
func TestMixedLB(t *testing.T) {
	x := commontest.Context(t, "../../examples/mixed.yaml")
	f := keyValues(string(commontest.File(t, generate(t, x, "lb2"), lb.KeepalivedConfig)))
	if f["state"] != "BACKUP" || f["priority"] != "199" || f["virtual_router_id"] != "166" || f["unicast_src_ip"] != "192.168.50.3" {
		t.Errorf("mixed lb2: state %s priority %s vrid %s src %s, want BACKUP 199 166 192.168.50.3",
			f["state"], f["priority"], f["virtual_router_id"], f["unicast_src_ip"])
	}
}

// TestSingleLB: a lone lb node has no VRRP peers, hence no unicast block, and
// keepalived still accepts its configuration; as a VM booted by cloud-init
// it uses eth0 (an lb booted by Ignition is refused: Flatcar and Fedora
// CoreOS ship no HAProxy or keepalived).
func TestSingleLB(t *testing.T) {
	keepalived := commontest.Tool(t, "keepalived", "keepalived")
	unshare := commontest.Tool(t, "unshare", "util-linux")
	ip := commontest.Tool(t, "ip", "iproute2")
	x := commontest.Context(t, seedLXC, func(c *spec.Cluster) {
		c.Spec.Nodes = slices.DeleteFunc(c.Spec.Nodes, func(n spec.Node) bool { return n.Name == "lb1" || n.Name == "lb2" })
		for i := range c.Spec.Nodes {
			if c.Spec.Nodes[i].Name == "lb" {
				c.Spec.Nodes[i].Target, c.Spec.Nodes[i].Boot, c.Spec.Nodes[i].SwapMiB = spec.TargetKVM, spec.BootCloudInit, 0 // swap is a container's limit
			}
		}
	})
	text := string(commontest.File(t, generate(t, x, "lb"), lb.KeepalivedConfig))
	if strings.Contains(text, "unicast_") {
		t.Errorf("a single lb has unicast settings:\n%s", text)
	}
	if f := keyValues(text); f["state"] != "MASTER" || f["interface"] != "eth0" {
		t.Errorf("state %s interface %s, want MASTER eth0", f["state"], f["interface"])
	}
	conf := commontest.WriteFile(t, t.TempDir(), "keepalived.conf", []byte(text))
	if out, ok := commontest.Run(t, unshare, "-n", "sh", "-c", `"$1" link add eth0 type veth peer name peer0 && "$2" -t -f "$3"`, "sh", ip, keepalived, conf); !ok {
		t.Errorf("keepalived -t: %s", out)
	}
}

// TestInterface: eth0 wherever hardway or cloud-init names the NIC, ens18
// (Proxmox's virtio net0) on an Ignition VM.
func TestInterface(t *testing.T) {
	for _, c := range []struct {
		target, boot, want string
	}{{spec.TargetLXC, "", "eth0"}, {spec.TargetKVM, spec.BootCloudInit, "eth0"}, {spec.TargetKVM, spec.BootIgnition, "ens18"}} {
		if got := lb.Interface(spec.Node{Target: c.target, Boot: c.boot}); got != c.want {
			t.Errorf("%s/%s: %s, want %s", c.target, c.boot, got, c.want)
		}
	}
}

// TestVRID checks the formula by hand and that one /24 never repeats an id.
func TestVRID(t *testing.T) {
	for vip, want := range map[string]int{
		"10.240.0.10":   6,   // 10+240+0+10 = 260; 260 mod 255 = 5
		"192.168.50.10": 166, // 192+168+50+10 = 420; 420 mod 255 = 165
		"10.0.0.1":      12,  // 11
		"10.0.0.244":    255, // 254
		"10.0.0.245":    1,   // 255 mod 255 = 0
	} {
		if got := lb.VRID(mustAddr(t, vip)); got != want {
			t.Errorf("VRID(%s) = %d, want %d", vip, got, want)
		}
	}
	seen := map[int]string{}
	for i := 1; i < 255; i++ {
		vip := fmt.Sprintf("172.16.9.%d", i)
		id := lb.VRID(mustAddr(t, vip))
		if id < 1 || id > 255 {
			t.Errorf("VRID(%s) = %d, outside 1..255", vip, id)
		}
		if other, dup := seen[id]; dup {
			t.Errorf("VRID(%s) = VRID(%s) = %d", vip, other, id)
		}
		seen[id] = vip
	}
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
