package worker_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/generators/common/commontest"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/generators/worker"
	"github.com/hardway-dev/hardway/tree"
)

// conflist is the part of a CNI network list the tests read.
type conflist struct {
	CNIVersion string           `json:"cniVersion"`
	Name       string           `json:"name"`
	Plugins    []map[string]any `json:"plugins"`
}

// bridgeConf is the bridge plugin's configuration with host-local IPAM.
type bridgeConf struct {
	Type      string `json:"type"`
	Bridge    string `json:"bridge"`
	IsGateway bool   `json:"isGateway"`
	IPAM      struct {
		Type   string `json:"type"`
		Ranges [][]struct {
			Subnet string `json:"subnet"`
		} `json:"ranges"`
		Routes []struct {
			Dst string `json:"dst"`
		} `json:"routes"`
	} `json:"ipam"`
}

func readConflist(t *testing.T, tr *tree.Tree) (conflist, bridgeConf) {
	t.Helper()
	data := file(t, tr, "/etc/cni/net.d/10-bridge.conflist")
	var l conflist
	if err := json.Unmarshal(data, &l); err != nil {
		t.Fatalf("10-bridge.conflist: %v\n%s", err, data)
	}
	if len(l.Plugins) == 0 {
		t.Fatal("10-bridge.conflist has no plugins")
	}
	raw, _ := json.Marshal(l.Plugins[0])
	var b bridgeConf
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	return l, b
}

// The bridge network allocates from the node's pinned pod CIDR (written by
// hand from the specs in expects) with a default route through the bridge.
func TestCNIConfig(t *testing.T) {
	for _, e := range expects {
		tr := nodeTree(t, load(t, e.example), e.node)
		l, b := readConflist(t, tr)
		if l.CNIVersion == "" || l.Name == "" {
			t.Errorf("%s: conflist needs cniVersion and name: %+v", e.node, l)
		}
		if b.Type != "bridge" || b.Bridge != "cni0" || !b.IsGateway || b.IPAM.Type != "host-local" {
			t.Errorf("%s: first plugin is %+v, want bridge cni0 as gateway with host-local IPAM", e.node, b)
		}
		if len(b.IPAM.Ranges) != 1 || len(b.IPAM.Ranges[0]) != 1 || b.IPAM.Ranges[0][0].Subnet != e.podCIDR {
			t.Errorf("%s: IPAM ranges %+v, want the single subnet %s", e.node, b.IPAM.Ranges, e.podCIDR)
		}
		if len(b.IPAM.Routes) != 1 || b.IPAM.Routes[0].Dst != "0.0.0.0/0" {
			t.Errorf("%s: IPAM routes %+v, want 0.0.0.0/0", e.node, b.IPAM.Routes)
		}
		var lo map[string]any
		if err := json.Unmarshal(file(t, tr, "/etc/cni/net.d/99-loopback.conf"), &lo); err != nil || lo["type"] != "loopback" {
			t.Errorf("%s: 99-loopback.conf: %v %v", e.node, err, lo)
		}
	}
}

// pluginTypes returns every CNI plugin type the tree's network files use.
func pluginTypes(t *testing.T, tr *tree.Tree) []string {
	t.Helper()
	l, _ := readConflist(t, tr)
	var out []string
	for _, p := range l.Plugins {
		out = append(out, fmt.Sprint(p["type"]))
	}
	if ipam, ok := l.Plugins[0]["ipam"].(map[string]any); ok {
		out = append(out, fmt.Sprint(ipam["type"]))
	}
	var lo map[string]any
	if err := json.Unmarshal(file(t, tr, "/etc/cni/net.d/99-loopback.conf"), &lo); err != nil {
		t.Fatal(err)
	}
	return append(out, fmt.Sprint(lo["type"]))
}

// Every plugin the configuration names is a row of worker.Binaries in
// UpstreamCNIBinDir (what bake installs in upstream mode) and shipped by
// Debian's containernetworking-plugins (packaged mode's bin_dir), in a
// version that supports the configuration's cniVersion.
func TestCNIPlugins(t *testing.T) {
	tr := nodeTree(t, load(t, "seed-kvm.yaml"), "kub-node1")
	l, _ := readConflist(t, tr)
	types := pluginTypes(t, tr)
	for _, p := range types {
		if !slices.Contains(worker.Binaries, nodegen.Binary{Name: p, Dir: worker.UpstreamCNIBinDir}) {
			t.Errorf("the network uses CNI plugin %s, missing from worker.Binaries (in worker.UpstreamCNIBinDir)", p)
		}
	}
	if testing.Short() {
		t.Skip("-short: skipping the check of Debian's CNI plugins")
	}
	for _, p := range types {
		bin := filepath.Join("/usr/lib/cni", p)
		cmd := exec.Command(bin)
		cmd.Env = []string{"CNI_COMMAND=VERSION"}
		out, err := cmd.Output()
		if err != nil {
			t.Errorf("%s: %v (apt-get install containernetworking-plugins)", bin, err)
			continue
		}
		var v struct {
			Supported []string `json:"supportedVersions"`
		}
		if err := json.Unmarshal(out, &v); err != nil || !strings.Contains(" "+strings.Join(v.Supported, " ")+" ", " "+l.CNIVersion+" ") {
			t.Errorf("%s does not support cniVersion %s: %s", bin, l.CNIVersion, out)
		}
	}
}

// The real bridge plugin, given the generated network in a pair of network
// namespaces this test creates, gives the pod an address in the node's
// pinned CIDR, the bridge the gateway address, and the pod a default route.
func TestCNIBridgeAdd(t *testing.T) {
	ipTool := commontest.Tool(t, "ip", "iproute2")
	commontest.Tool(t, "iptables", "iptables")
	if os.Geteuid() != 0 {
		t.Fatal("creating network namespaces needs root")
	}
	const (
		node    = "worker2"
		podCIDR = "10.200.1.0/24" // seed-lxc.yaml: the second worker's
		gateway = "10.200.1.1"
	)
	tr := nodeTree(t, load(t, "seed-lxc.yaml"), node)
	_, b := readConflist(t, tr)

	suffix := fmt.Sprint(os.Getpid())
	hostNS, podNS := "hwk-host-"+suffix, "hwk-pod-"+suffix
	for _, ns := range []string{hostNS, podNS} {
		run(t, ipTool, "netns", "add", ns)
		t.Cleanup(func() { exec.Command(ipTool, "netns", "delete", ns).Run() })
	}

	// The bridge plugin's own configuration: the conflist's first plugin
	// with the list's name and version, host-local's state kept in the test.
	conf := map[string]any{}
	l, _ := readConflist(t, tr)
	for k, v := range l.Plugins[0] {
		conf[k] = v
	}
	conf["cniVersion"], conf["name"] = l.CNIVersion, l.Name
	conf["ipam"].(map[string]any)["dataDir"] = t.TempDir()
	stdin, _ := json.Marshal(conf)

	cmd := exec.Command(ipTool, "netns", "exec", hostNS, "/usr/lib/cni/bridge")
	cmd.Env = []string{
		"CNI_COMMAND=ADD", "CNI_CONTAINERID=hardway-test", "CNI_IFNAME=eth0",
		"CNI_NETNS=/run/netns/" + podNS, "CNI_PATH=/usr/lib/cni", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
	}
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bridge ADD: %v: %s", err, out)
	}
	var res struct {
		IPs []struct {
			Address string `json:"address"`
			Gateway string `json:"gateway"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.IPs) != 1 {
		t.Fatalf("bridge ADD result: %v: %s", err, out)
	}
	addr, err := netip.ParsePrefix(res.IPs[0].Address)
	if err != nil || !netip.MustParsePrefix(podCIDR).Contains(addr.Addr()) || addr.Bits() != 24 {
		t.Errorf("pod address %s is not in %s", res.IPs[0].Address, podCIDR)
	}
	if res.IPs[0].Gateway != gateway {
		t.Errorf("pod gateway %s, want %s", res.IPs[0].Gateway, gateway)
	}
	if br := run(t, ipTool, "-n", hostNS, "-4", "addr", "show", "dev", b.Bridge); !strings.Contains(br, "inet "+gateway+"/24") {
		t.Errorf("bridge %s in the node namespace: %s", b.Bridge, br)
	}
	if r := run(t, ipTool, "-n", podNS, "-4", "route", "show", "default"); !strings.Contains(r, "via "+gateway+" dev eth0") {
		t.Errorf("pod default route: %q, want via %s", r, gateway)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
	return string(out)
}
