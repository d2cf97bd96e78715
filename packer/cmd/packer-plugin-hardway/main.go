// Command packer-plugin-hardway is hardway's Packer plugin: the builders
// hardway-lxc and hardway-kvm, the provisioner hardway-node and the data
// source hardway-cluster, thin adapters over hardway's library packages.
//
// Install it next to Packer with
//
//	packer plugins install --path ./packer-plugin-hardway github.com/hardway-dev/hardway
package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/packer-plugin-sdk/plugin"

	"github.com/hardway-dev/hardway/packer/builder/kvm"
	"github.com/hardway-dev/hardway/packer/builder/lxc"
	"github.com/hardway-dev/hardway/packer/datasource/cluster"
	"github.com/hardway-dev/hardway/packer/provisioner/node"
	"github.com/hardway-dev/hardway/packer/version"
)

func main() {
	pps := plugin.NewSet()
	pps.RegisterBuilder("lxc", new(lxc.Builder))
	pps.RegisterBuilder("kvm", new(kvm.Builder))
	pps.RegisterProvisioner("node", new(node.Provisioner))
	pps.RegisterDatasource("cluster", new(cluster.Datasource))
	pps.SetVersion(version.PluginVersion)
	if err := pps.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
