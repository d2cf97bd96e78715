package nodegen

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/spec"
)

var examples = []string{"../../examples/seed-lxc.yaml", "../../examples/seed-kvm.yaml", "../../examples/mixed.yaml"}

// load parses and validates an example, defaults applied.
func load(t *testing.T, path string) *spec.Cluster {
	t.Helper()
	doc, err := spec.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if is := doc.Validate(spec.Options{}).Errors(); len(is) > 0 {
		t.Fatalf("%s: %v", path, is)
	}
	return doc.Cluster
}

// TestCheckExamples: the examples pass, and between them every rule of
// checkRules applies to a field (a renamed YAML key would otherwise leave
// its rule unused, silently).
func TestCheckExamples(t *testing.T) {
	used := map[string]bool{}
	for _, ex := range examples {
		c := load(t, ex)
		if err := Check(c); err != nil {
			t.Errorf("%s: %v", ex, err)
		}
		walk(reflect.ValueOf(c).Elem(), "", "", nil, func(_, pattern string, _ []string, _ string) { used[pattern] = true })
	}
	for p := range checkRules {
		if !used[p] {
			t.Errorf("checkRules[%q] matches no field of the examples", p)
		}
	}
	for _, p := range []string{"spec.nodes[].roles[]", "spec.ssh.authorizedKeys[]", "spec.pki.algorithm"} {
		if !used[p] {
			t.Errorf("walk does not reach %s", p)
		}
	}
}

// TestCheckRefuses: what Check refuses, with the field named and the value
// quoted; several errors are reported together.
func TestCheckRefuses(t *testing.T) {
	for _, c := range []struct {
		edit func(c *spec.Cluster)
		want string
	}{
		{func(c *spec.Cluster) { c.Spec.Proxmox.Bridge = "vmbr0\n\tpost-up reboot" },
			`spec.proxmox.bridge: "vmbr0\n\tpost-up reboot" holds the control character U+000A: no generated file may take it`},
		{func(c *spec.Cluster) { c.Spec.Proxmox.Storage = "local,size=1" },
			`spec.proxmox.storage: "local,size=1" is not a name of letters, digits, '.', '_' and '-' not starting with '.' or '-': hardway writes it where it cannot be quoted`},
		{func(c *spec.Cluster) { c.Spec.Nodes[2].Name = ".." }, `spec.nodes[2].name: ".." is not a name`},
		{func(c *spec.Cluster) { c.Spec.Nodes[2].Name = "-rf" }, `spec.nodes[2].name: "-rf" is not a name`},
		{func(c *spec.Cluster) { c.Spec.Nodes[2].Name = ".ssh" }, `spec.nodes[2].name: ".ssh" is not a name`},
		{func(c *spec.Cluster) { c.Spec.Proxmox.Bridge = "_br.0-x" }, ""},
		{func(c *spec.Cluster) { c.Spec.Nodes[2].Roles = []string{"worker", "root"} }, `spec.nodes[2].roles[1]: "root" is not one of etcd, controller, worker, lb, gateway`},
		{func(c *spec.Cluster) { c.Spec.Nodes[2].Address = "10.240.0.5/24 " }, `spec.nodes[2].address: "10.240.0.5/24 " is not an IP address with a prefix length`},
		{func(c *spec.Cluster) { c.Spec.Network.Gateway = "fe80::1%eth0;reboot" }, `spec.network.gateway: "fe80::1%eth0;reboot" is not an IP address`},
		{func(c *spec.Cluster) { c.Spec.APIServer.VIP = "" }, ""},
		{func(c *spec.Cluster) { c.Spec.APIServer.ExtraSANs = []string{"*.example.com", "10.0.0.1", "a b"} }, `spec.apiServer.extraSANs[2]: "a b" is not a DNS name`},
		{func(c *spec.Cluster) { c.Spec.ClusterDomain = "cluster.local." }, `spec.clusterDomain: "cluster.local." is not a DNS name`},
		{func(c *spec.Cluster) { c.Spec.SSH.AuthorizedKeys = []string{"ssh-ed25519 AAAA ok\u2028command=x"} }, `spec.ssh.authorizedKeys[0]: "ssh-ed25519 AAAA ok\u2028command=x" holds the control character U+2028`},
		{func(c *spec.Cluster) { c.Spec.Binaries.SHA256 = map[string]string{"kubelet\n": "x"} }, `spec.binaries.sha256["kubelet\n"]: "kubelet\n" holds the control character U+000A`},
		{func(c *spec.Cluster) { c.Spec.Images = []string{"a.tar", "\xff.tar"} }, `spec.images[1]: "\xff.tar" is not UTF-8 text`},
		{func(c *spec.Cluster) { c.Metadata.Name = "a/b"; c.Spec.KubernetesVersion = "v1 .2" },
			"metadata.name: \"a/b\" is not a name of letters, digits, '.', '_' and '-' not starting with '.' or '-': hardway writes it where it cannot be quoted\n" +
				`spec.kubernetesVersion: "v1 .2" is not a name`},
	} {
		cl := load(t, examples[0])
		c.edit(cl)
		err := Check(cl)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("Check: %v, want no error", err)
		case c.want != "" && (err == nil || !strings.HasPrefix(err.Error(), c.want)):
			t.Errorf("Check: %v\nwant %s...", err, c.want)
		}
	}
}
