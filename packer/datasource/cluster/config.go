//go:generate packer-sdc mapstructure-to-hcl2 -type Config,DatasourceOutput,Node
//go:generate packer-sdc struct-markdown

package cluster

// Config is the configuration of the hardway-cluster data source.
type Config struct {
	// The cluster spec (a hardway.dev/v1alpha1 Cluster file). It is checked
	// as `hardway validate` checks it; every problem is reported at once.
	Spec string `mapstructure:"spec" required:"true"`
	// hardway's output root, as `hardway generate --dir`; the paths returned
	// are under `<output_directory>/<cluster>/`. Defaults to `out`. The data
	// source reads nothing there and writes nothing.
	OutputDirectory string `mapstructure:"output_directory"`
}

// DatasourceOutput is what the data source returns.
type DatasourceOutput struct {
	// The cluster's name (metadata.name).
	Cluster string `mapstructure:"cluster"`
	// The cluster's Kubernetes version, for example `v1.34.2`.
	KubernetesVersion string `mapstructure:"kubernetes_version"`
	// The cluster's output directory, `<output_directory>/<cluster>`.
	Directory string `mapstructure:"directory"`
	// The PKI state directory, `<directory>/pki`.
	PKIDir string `mapstructure:"pki_dir"`
	// The manifest of every generated file with its SHA-256, `<directory>/manifest.json`.
	Manifest string `mapstructure:"manifest"`
	// Where hardway-lxc and `hardway bake` write artifacts by default, `<directory>/bake`.
	BakeDirectory string `mapstructure:"bake_directory"`
	// The default route of every node (network.gateway).
	Gateway string `mapstructure:"gateway"`
	// The nodes' resolvers (network.dns).
	DNS []string `mapstructure:"dns"`
	// The roles the nodes hold, sorted.
	Roles []string `mapstructure:"roles"`
	// The names of the nodes of target `lxc`, in spec order.
	LXCNodes []string `mapstructure:"lxc_nodes"`
	// The names of the nodes of target `kvm`, in spec order.
	KVMNodes []string `mapstructure:"kvm_nodes"`
	// Every node, in spec order.
	Nodes []Node `mapstructure:"nodes"`
}

// Node is one node of the spec with the paths of its generated files.
type Node struct {
	// The node's name.
	Name string `mapstructure:"name"`
	// The node's roles.
	Roles []string `mapstructure:"roles"`
	// `lxc` or `kvm`.
	Target string `mapstructure:"target"`
	// The node's address with its prefix length, for example `10.240.0.11/24`.
	Address string `mapstructure:"address"`
	// The node's address without prefix length.
	IP string `mapstructure:"ip"`
	// The node's FQDN, `<name>.<domain>`.
	FQDN string `mapstructure:"fqdn"`
	// The node's Proxmox VM or container id.
	VMID int `mapstructure:"vmid"`
	// The node's output directory, `<directory>/nodes/<name>`.
	Directory string `mapstructure:"directory"`
	// The node's tree as files at their final paths, written only by
	// `hardway generate --rootfs` (overlay_tar holds the same entries on
	// every run).
	Rootfs string `mapstructure:"rootfs"`
	// The node's tree as a reproducible tar (what hardway-node installs).
	OverlayTar string `mapstructure:"overlay_tar"`
	// The node's pct or qm configuration lines.
	ProxmoxConf string `mapstructure:"proxmox_conf"`
	// The NoCloud directory (user-data, meta-data, network-config); empty
	// unless the node is of target `kvm` booted by cloud-init.
	CloudInit string `mapstructure:"cloud_init"`
	// The NoCloud seed ISO; empty unless the node is of target `kvm` booted
	// by cloud-init.
	SeedISO string `mapstructure:"seed_iso"`
	// The Ignition config; empty unless the node is of target `kvm` booted
	// by Ignition. For a node with role etcd, controller or worker, the one
	// `hardway bake --format sysext` writes in bake_directory with its
	// systemd-sysext image.
	Ignition string `mapstructure:"ignition"`
}
