// Package cluster is the hardway-cluster data source: it reads a cluster
// spec and returns its nodes, its roles and the paths of the files `hardway
// generate` writes for each node, so that one HCL2 template can build every
// node (for_each over the nodes, dynamic source blocks).
package cluster

import (
	"path/filepath"
	"slices"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/hcl2helper"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/zclconf/go-cty/cty"

	"github.com/hardway-dev/hardway/nodefiles"
	"github.com/hardway-dev/hardway/output"
	"github.com/hardway-dev/hardway/packer/internal/load"
	"github.com/hardway-dev/hardway/spec"
)

// DatasourceType is the data source's name in templates.
const DatasourceType = "hardway-cluster"

// Datasource reads a cluster spec.
type Datasource struct {
	config Config
	doc    *spec.Document
}

// ConfigSpec is the HCL2 schema of Config.
func (d *Datasource) ConfigSpec() hcldec.ObjectSpec { return d.config.FlatMapstructure().HCL2Spec() }

// OutputSpec is the HCL2 schema of DatasourceOutput.
func (d *Datasource) OutputSpec() hcldec.ObjectSpec {
	return (&DatasourceOutput{}).FlatMapstructure().HCL2Spec()
}

// Configure reads and checks the spec.
func (d *Datasource) Configure(raws ...interface{}) error {
	if err := config.Decode(&d.config, nil, raws...); err != nil {
		return err
	}
	if d.config.OutputDirectory == "" {
		d.config.OutputDirectory = load.DefaultOutputDirectory
	}
	doc, _, errs := load.Spec(load.FieldSpec, d.config.Spec)
	d.doc = doc
	return load.Errors(errs)
}

// Execute returns the spec's nodes, roles and paths.
func (d *Datasource) Execute() (cty.Value, error) {
	return hcl2helper.HCL2ValueFromConfig(Describe(d.doc, d.config.OutputDirectory), d.OutputSpec()), nil
}

// Describe is the output for doc with hardway's output root out. The
// paths are those clusterdir.Run writes (a test holds them to it).
func Describe(doc *spec.Document, out string) DatasourceOutput {
	c := doc.Cluster
	dir := load.ClusterDir(doc, out)
	o := DatasourceOutput{
		Cluster:           c.Metadata.Name,
		KubernetesVersion: c.Spec.KubernetesVersion,
		Directory:         dir,
		PKIDir:            filepath.Join(dir, "pki"),
		Manifest:          filepath.Join(dir, output.ManifestFile),
		BakeDirectory:     filepath.Join(dir, nodefiles.BakeDir),
		Gateway:           c.Spec.Network.Gateway,
		DNS:               append([]string{}, c.Spec.Network.DNS...),
		Roles:             []string{},
		LXCNodes:          []string{},
		KVMNodes:          []string{},
	}
	for _, n := range c.Spec.Nodes {
		at := func(a nodefiles.Artifact) string { return filepath.Join(dir, a.Path(n.Name)) }
		node := Node{
			Name:        n.Name,
			Roles:       append([]string{}, n.Roles...),
			Target:      n.Target,
			Address:     n.Address,
			IP:          n.IP().String(),
			FQDN:        c.FQDN(n),
			VMID:        n.VMID,
			Directory:   filepath.Join(dir, nodefiles.Dir(n.Name)),
			Rootfs:      at(nodefiles.Rootfs),
			OverlayTar:  at(nodefiles.OverlayTar),
			ProxmoxConf: at(nodefiles.ProxmoxConf),
		}
		switch {
		case n.Target == spec.TargetLXC:
			o.LXCNodes = append(o.LXCNodes, n.Name)
		case n.BootsByIgnition():
			o.KVMNodes = append(o.KVMNodes, n.Name)
			node.Ignition = filepath.Join(dir, nodefiles.IgnitionConfig(c, n))
		default:
			o.KVMNodes = append(o.KVMNodes, n.Name)
			node.CloudInit = at(nodefiles.CloudInit)
			node.SeedISO = at(nodefiles.SeedISO)
		}
		for _, r := range n.Roles {
			if !slices.Contains(o.Roles, r) {
				o.Roles = append(o.Roles, r)
			}
		}
		o.Nodes = append(o.Nodes, node)
	}
	slices.Sort(o.Roles)
	return o
}
