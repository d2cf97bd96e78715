package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"

	"github.com/spf13/cobra"

	"github.com/hardway-dev/hardway/examples"
	"github.com/hardway-dev/hardway/spec"
)

// topology is the cluster init makes from its flags.
type topology struct {
	Name, NodeCIDR, Target   string
	Controllers, Workers, LB int
}

// topologyFlags are the flags that make init write a topology of its own
// instead of an example.
var topologyFlags = []string{"name", "node-cidr", "controllers", "workers", "lbs", "target"}

func newInit() *cobra.Command {
	var file, legacyFile, example string
	var force bool
	t := topology{Name: "kthw", NodeCIDR: "10.240.0.0/24", Target: spec.TargetLXC, Controllers: 1, Workers: 2}
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a cluster spec to start from: an example, or the topology its flags give",
		Long: `init writes a cluster spec for you to edit: one of the bundled examples
(default: the seed guide's LXC topology), or, with any of --name,
--node-cidr, --controllers, --workers, --lbs or --target, a cluster of that
shape: controllers with stacked etcd, workers, and load balancers holding a
VIP when --lbs is set, numbered from the 10th address of the node network,
with vmids 200 and up. What it writes validates. It never overwrites a file
unless --force; -f - writes to standard output. (-o FILE, the previous
release's spelling of -f FILE, works until the next release.)`,
		Example: `  hardway init                                   # cluster.yaml: the seed's LXC topology
  hardway init --example mixed -f mixed.yaml
  hardway init --name lab --node-cidr 192.168.50.0/24 --controllers 3 --workers 4 --lbs 2 --target kvm
  hardway init --workers 5 -f - | hardway validate -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("output") {
				if cmd.Flags().Changed("file") {
					return usageErrorf("-o and -f both name the file to write: use -f")
				}
				deprecated(cmd, "-o "+legacyFile, "-f "+legacyFile)
				file = legacyFile
			}
			custom := slices.ContainsFunc(topologyFlags, cmd.Flags().Changed)
			if custom && cmd.Flags().Changed("example") {
				return usageErrorf("--example writes a bundled example; --%s makes a topology of its own: use one or the other", strings.Join(topologyFlags, ", --"))
			}
			data, err := initSpec(example, custom, t)
			if err != nil {
				return err
			}
			if file == "-" {
				_, err := cmd.OutOrStdout().Write(data)
				return err
			}
			if err := writeNew(file, data, force); err != nil {
				return err
			}
			what := "example " + example
			if custom {
				what = "cluster " + t.Name
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%s); write the editor schema with: hardway schema > %s\n",
				file, what, filepath.Join(filepath.Dir(file), "cluster.schema.json"))
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "cluster.yaml", `file to write; "-" writes to standard output`)
	_ = cmd.MarkFlagFilename("file", "yaml", "yml")
	cmd.Flags().StringVarP(&legacyFile, "output", "o", "", "the file to write (deprecated: use -f)")
	_ = cmd.Flags().MarkHidden("output")
	cmd.Flags().StringVar(&example, "example", "seed-lxc", "example to write: seed-lxc, seed-kvm or mixed")
	_ = cmd.RegisterFlagCompletionFunc("example", cobra.FixedCompletions(exampleNames(), cobra.ShellCompDirectiveNoFileComp))
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing file")
	cmd.Flags().StringVar(&t.Name, "name", t.Name, "cluster name (metadata.name)")
	cmd.Flags().StringVar(&t.NodeCIDR, "node-cidr", t.NodeCIDR, "the nodes' network (spec.network.nodeCIDR); its first address is the gateway")
	cmd.Flags().IntVar(&t.Controllers, "controllers", t.Controllers, "controllers, each with a stacked etcd member (an odd number)")
	cmd.Flags().IntVar(&t.Workers, "workers", t.Workers, "workers")
	cmd.Flags().IntVar(&t.LB, "lbs", 0, "load balancers holding the API VIP (0: clients use the first controller)")
	cmd.Flags().StringVar(&t.Target, "target", t.Target, "target of every node: lxc or kvm")
	_ = cmd.RegisterFlagCompletionFunc("target", cobra.FixedCompletions([]string{spec.TargetLXC, spec.TargetKVM}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// exampleNames are the bundled examples init can write.
func exampleNames() []string {
	files, _ := fs.Glob(examples.FS, "*.yaml")
	for i, f := range files {
		files[i] = strings.TrimSuffix(f, ".yaml")
	}
	return files
}

// initSpec is what init writes: the example, or the topology t.
func initSpec(example string, custom bool, t topology) ([]byte, error) {
	if custom {
		return t.render()
	}
	data, err := examples.FS.ReadFile(example + ".yaml")
	if err != nil {
		return nil, usageErrorf("--example: no example %q (have: %s)", example, strings.Join(exampleNames(), ", "))
	}
	// The schema line points at the repository's copy; outside it, use `hardway schema`.
	return []byte(strings.Replace(string(data), "$schema=../schema/cluster.schema.json", "$schema=cluster.schema.json", 1)), nil
}

// writeNew writes data to a file that must not exist, unless force.
func writeNew(file string, data []byte, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(file, flags, 0o644)
	if err != nil {
		if os.IsExist(err) {
			return fmt.Errorf("%s exists; use --force to overwrite it or -f to choose another file", file)
		}
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// initNode is one node of a topology.
type initNode struct {
	Name, Roles, Address string
	VMID                 int
}

var topologyTemplate = template.Must(template.New("cluster").Parse(`# yaml-language-server: $schema=cluster.schema.json
#
# Written by: hardway init {{.Args}}
# Edit it, then: hardway validate -f <this file>. The reference of every
# field: hardway schema, or docs/spec.md.
apiVersion: hardway.dev/v1alpha1
kind: Cluster
metadata:
  name: {{.T.Name}}
spec:
  kubernetesVersion: {{.Version}}
  network:
    nodeCIDR: {{.T.NodeCIDR}}
{{- if .VIP}}
  apiServer:
    vip: {{.VIP}}
{{- end}}
  binaries:
    mode: upstream      # pinned files from dir (hardway pin --write); packaged: runtime and etcd from the base image's packages, Kubernetes pinned
    dir: artifacts
  nodes:
{{- range .Nodes}}
    - {name: {{.Name}}, roles: [{{.Roles}}], target: {{$.T.Target}}, address: {{.Address}}, vmid: {{.VMID}}}
{{- end}}
`))

// render writes the topology as a spec that validates, or says which
// flag stops it from being one.
func (t topology) render() ([]byte, error) {
	switch {
	case t.Target != spec.TargetLXC && t.Target != spec.TargetKVM:
		return nil, usageErrorf("--target: %q is not lxc or kvm", t.Target)
	case t.Controllers < 1:
		return nil, usageErrorf("--controllers: a cluster needs at least 1")
	case t.Workers < 0 || t.LB < 0:
		return nil, usageErrorf("--workers and --lbs: counts cannot be negative")
	}
	p, err := netip.ParsePrefix(t.NodeCIDR)
	if err != nil || !p.Addr().Is4() || p.Masked() != p {
		return nil, usageErrorf("--node-cidr: %q is not an IPv4 network such as 10.240.0.0/24", t.NodeCIDR)
	}
	var nodes []initNode
	add := func(name, roles string, n int) {
		for i := 1; i <= n; i++ {
			nodes = append(nodes, initNode{Name: fmt.Sprintf("%s%d", name, i), Roles: roles})
		}
	}
	add("lb", spec.RoleLB, t.LB)
	add("cp", spec.RoleController+", "+spec.RoleEtcd, t.Controllers)
	add("worker", spec.RoleWorker, t.Workers)
	vip := 0
	if t.LB > 0 {
		vip = 1
	}
	// Hosts from the 10th address on (the first is the gateway), or from
	// the 2nd in a network too small for that; never the broadcast address.
	hosts := 1<<(32-p.Bits()) - 2
	first := 10
	if first+vip+len(nodes) > hosts {
		first = 2
	}
	if first+vip+len(nodes)-1 > hosts {
		return nil, usageErrorf("--node-cidr: %s has room for %d hosts after its gateway, the topology needs %d", t.NodeCIDR, hosts-1, vip+len(nodes))
	}
	nth := func(i int) netip.Addr {
		a := p.Addr()
		for range i {
			a = a.Next()
		}
		return a
	}
	data := struct {
		T       topology
		Args    string
		Version string
		VIP     string
		Nodes   []initNode
	}{T: t, Args: t.args(), Version: seedVersion()}
	if vip == 1 {
		data.VIP = nth(first).String()
	}
	for i := range nodes {
		nodes[i].Address = netip.PrefixFrom(nth(first+vip+i), p.Bits()).String()
		nodes[i].VMID = 200 + first + vip + i
	}
	data.Nodes = nodes
	var b bytes.Buffer
	if err := topologyTemplate.Execute(&b, data); err != nil {
		return nil, err
	}
	// What the flags made must validate, whatever they said.
	doc, err := spec.Parse("the spec of these flags", ".", b.Bytes())
	if err == nil {
		if is := doc.Validate(spec.Options{}).Errors(); len(is) > 0 {
			err = is
		}
	}
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return b.Bytes(), nil
}

// args is the command line that makes t, for the file's header.
func (t topology) args() string {
	return fmt.Sprintf("--name %s --node-cidr %s --controllers %d --workers %d --lbs %d --target %s",
		t.Name, t.NodeCIDR, t.Controllers, t.Workers, t.LB, t.Target)
}

// seedVersion is the Kubernetes release of the bundled seed example, which
// the pinned tools build.
func seedVersion() string {
	data, _ := examples.FS.ReadFile("seed-lxc.yaml")
	doc, err := spec.Parse("seed-lxc.yaml", ".", data)
	if err != nil {
		return spec.KubernetesMinor + ".0"
	}
	return doc.Cluster.Spec.KubernetesVersion
}
