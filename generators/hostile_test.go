package generators

import (
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/generators/common/commontest"
	"github.com/hardway-dev/hardway/spec"
)

// key is the examples' SSH key.
const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFCG/fLUJYAU3QQzPB228lOyUJv7uI91Zipd7p6XZlvz"

// TestHostileRefused: values that validation refuses, set behind its back,
// are refused by Node (for every node, whatever its roles) and by Cluster,
// with the field named. Each would otherwise have done what its comment says.
func TestHostileRefused(t *testing.T) {
	for _, c := range []struct {
		field string
		edit  func(c *spec.Cluster)
	}{
		// ExecStartPre=/usr/sbin/reboot in the workers' hardway-images.service.
		{"spec.images[0]", func(c *spec.Cluster) { c.Spec.Images = []string{"images/a.tar\nExecStartPre=/usr/sbin/reboot"} }},
		// A second line in every node's authorized_keys, with a forced command.
		{"spec.ssh.authorizedKeys[0]", func(c *spec.Cluster) {
			c.Spec.SSH.AuthorizedKeys = []string{key + " ops\ncommand=\"touch /tmp/hardway-canary\" " + key + " evil"}
		}},
		// An extra kubelet flag, and a key in its YAML configuration.
		{"spec.clusterDomain", func(c *spec.Cluster) { c.Spec.ClusterDomain = "cluster.local --anonymous-auth=true" }},
		{"spec.clusterDomain", func(c *spec.Cluster) {
			c.Spec.ClusterDomain = "cluster.local\nauthentication: {anonymous: {enabled: true}}"
		}},
		// A second server in /etc/hosts and in HAProxy's backend.
		{"spec.domain", func(c *spec.Cluster) { c.Spec.Domain = "lab.internal\n10.0.0.66 kubernetes" }},
		{"spec.apiServer.extraSANs[0]", func(c *spec.Cluster) { c.Spec.APIServer.ExtraSANs = []string{"api.lab.internal 10.0.0.66"} }},
		// A route or a DNS server of the attacker's in the network files.
		{"spec.network.dns[0]", func(c *spec.Cluster) { c.Spec.Network.DNS = []string{"192.168.50.1\n[Route]\nGateway=10.0.0.66"} }},
		{"spec.nodes[0].address", func(c *spec.Cluster) { c.Spec.Nodes[0].Address = "192.168.50.2/24\nDNS=10.0.0.66" }},
		{"spec.network.serviceCIDR", func(c *spec.Cluster) { c.Spec.Network.ServiceCIDR = "10.96.0.0/16 --anonymous-auth=true" }},
		{"spec.encryption.provider", func(c *spec.Cluster) { c.Spec.Encryption.Provider = "identity: {}\n      - aescbc" }},
		// A node whose files land outside its directory.
		{"spec.nodes[5].name", func(c *spec.Cluster) { c.Spec.Nodes[5].Name = "../w1" }},
	} {
		x := commontest.Hostile(t, "../examples/mixed.yaml", c.edit)
		if _, err := Cluster(x); err == nil || !strings.Contains(err.Error(), c.field+": ") {
			t.Errorf("%s: Cluster: %v, want an error naming the field", c.field, err)
		}
		for _, n := range x.C.Spec.Nodes {
			if _, err := Node(x, n); err == nil || !strings.Contains(err.Error(), c.field+": ") {
				t.Errorf("%s: Node(%s): %v, want an error naming the field", c.field, n.Name, err)
			}
		}
	}
}
