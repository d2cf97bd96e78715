// Package spec defines the hardway.dev/v1alpha1 Cluster document: its Go
// types, the YAML parser that reports file:line:col errors, defaults and validation.
package spec

// The struct tags below are the single description of the spec:
//   yaml:"name"          the field's key in the document
//   hw:"required"        the field must be present
//   hw:"enum=a|b"        the allowed values
//   hw:"range=1..1024"   the bounds of an integer
//   doc:"..."            the reference text, used by `hardway schema` and the docs
// Parsing, schema generation and the README's field table all read them.
// Every string field without an enum has a rule in fieldRules (validate.go).

// APIVersion and Kind identify the document.
const (
	APIVersion = "hardway.dev/v1alpha1"
	Kind       = "Cluster"
)

// Cluster is the whole document.
type Cluster struct {
	APIVersion string      `yaml:"apiVersion" hw:"required,enum=hardway.dev/v1alpha1" doc:"Always hardway.dev/v1alpha1."`
	Kind       string      `yaml:"kind" hw:"required,enum=Cluster" doc:"Always Cluster."`
	Metadata   Metadata    `yaml:"metadata" hw:"required" doc:"Identity of the cluster."`
	Spec       ClusterSpec `yaml:"spec" hw:"required" doc:"The cluster's desired shape."`
}

// Metadata names the cluster.
type Metadata struct {
	Name string `yaml:"name" hw:"required" doc:"Cluster name (a DNS-1123 label); outputs go to <out>/<name>/."`
}

// ClusterSpec is the body of the document.
type ClusterSpec struct {
	KubernetesVersion string     `yaml:"kubernetesVersion" hw:"required" doc:"Kubernetes release of the binaries, vX.Y.Z: a patch release of the minor release this hardway makes files for (v1.34). It names the baked templates and images and the Proxmox templates create-nodes.sh uses; the units, flags and configurations do not change with it. hardway pin refuses binaries of another release."`
	Domain            string     `yaml:"domain" doc:"DNS domain of the nodes: a node's FQDN is <name>.<domain>. Default example.com."`
	ClusterDomain     string     `yaml:"clusterDomain" doc:"In-cluster DNS domain. Default cluster.local."`
	Network           Network    `yaml:"network" hw:"required" doc:"Node, pod and service addressing."`
	APIServer         APIServer  `yaml:"apiServer" doc:"How clients reach the API servers."`
	PKI               PKI        `yaml:"pki" doc:"Key algorithm and certificate lifetimes."`
	Encryption        Encryption `yaml:"encryption" doc:"Encryption of Secrets at rest in etcd."`
	Binaries          Binaries   `yaml:"binaries" doc:"Where the Kubernetes binaries come from."`
	Images            []string   `yaml:"images" doc:"OCI image archives (paths relative to the spec) imported into containerd at first boot on workers."`
	SSH               SSH        `yaml:"ssh" doc:"SSH access to the nodes."`
	Proxmox           Proxmox    `yaml:"proxmox" doc:"Proxmox host settings used by the generated pct/qm configuration."`
	Ignition          Ignition   `yaml:"ignition" doc:"What the nodes booted by Ignition (boot: ignition) boot from and fetch."`
	Nodes             []Node     `yaml:"nodes" hw:"required" doc:"Every machine of the cluster, in order (order sets pod CIDRs and keepalived priorities)."`
	// The enum is warningNames (acknowledge.go).
	AcknowledgeWarnings []string `yaml:"acknowledgeWarnings,omitempty" hw:"enum=even-etcd-members|short-validity|no-image-archives" doc:"Warnings this spec knows about and keeps, by name: validate shows them once, marked acknowledged; the other commands do not print them. even-etcd-members: an even number of etcd members; short-validity: a lifetime under 30 days; no-image-archives: workers without archives of the pause and CoreDNS images (a site whose nodes reach a registry)."`
}

// Network holds the cluster's address plan.
type Network struct {
	NodeCIDR        string   `yaml:"nodeCIDR" hw:"required" doc:"The nodes' L2 network (the Proxmox bridge)."`
	Gateway         string   `yaml:"gateway" doc:"Default route of every node. Default: first address of nodeCIDR."`
	DNS             []string `yaml:"dns" doc:"Resolvers of the nodes. Default: [gateway]."`
	PodCIDR         string   `yaml:"podCIDR" doc:"Cluster pod network. Default 10.200.0.0/16."`
	PodCIDRMaskSize int      `yaml:"podCIDRMaskSize" hw:"range=1..126" doc:"Prefix length of each worker's pod CIDR; the i-th worker gets the i-th subnet. Default 24."`
	ServiceCIDR     string   `yaml:"serviceCIDR" doc:"Service cluster IP range; its first address is the kubernetes service. Default 10.32.0.0/24."`
	ClusterDNS      string   `yaml:"clusterDNS" doc:"Cluster DNS service IP. Default: the 10th address of serviceCIDR."`
}

// APIServer describes the API endpoint.
type APIServer struct {
	VIP       string   `yaml:"vip" doc:"Virtual IP held by keepalived on the lb nodes; kubelets, kube-proxy and admins use it. Requires lb nodes."`
	Port      int      `yaml:"port" hw:"range=1..65535" doc:"Secure port of kube-apiserver and of the load balancer. Default 6443."`
	ExtraSANs []string `yaml:"extraSANs" doc:"Extra DNS names or IPs in the API server certificate."`
}

// PKI selects key algorithm and validity periods.
type PKI struct {
	Algorithm    string `yaml:"algorithm" hw:"enum=ecdsa-p256|ecdsa-p384|rsa-2048|rsa-3072|rsa-4096" doc:"Key algorithm of every key. Default ecdsa-p256."`
	CAValidity   string `yaml:"caValidity" doc:"Lifetime of the CAs, a Go duration of at least 1h (below 720h, a warning). Default 87600h (10 years)."`
	CertValidity string `yaml:"certValidity" doc:"Lifetime of leaf certificates, a Go duration of at least 1h (below 720h, a warning). Default 8760h (1 year)."`
}

// Encryption configures the apiserver's EncryptionConfiguration.
type Encryption struct {
	Provider string `yaml:"provider" hw:"enum=aescbc|aesgcm|secretbox" doc:"Provider for Secrets. Default aescbc."`
}

// Binaries says where binaries come from.
type Binaries struct {
	Mode   string            `yaml:"mode" hw:"enum=upstream|packaged" doc:"upstream: pinned files from dir are installed under /usr/local/bin; packaged: the distribution's packages in the base image provide containerd, runc, the CNI plugins (/usr/lib/cni) and etcd under /usr/bin, and Kubernetes (which no distribution packages) is pinned from dir under /usr/local/bin as in upstream. Default upstream."`
	Dir    string            `yaml:"dir" doc:"Directory of the upstream binaries, relative to the spec file. Default artifacts."`
	SHA256 map[string]string `yaml:"sha256" doc:"Pinned SHA-256 of each file in dir, by file name (for example kube-apiserver)."`
}

// SSH holds access settings.
type SSH struct {
	AuthorizedKeys []string `yaml:"authorizedKeys" doc:"Public keys installed for root on every node."`
	BastionPort    int      `yaml:"bastionPort" hw:"range=1..65535" doc:"sshd port on gateway nodes. Default 7022."`
}

// Proxmox holds the host-side names.
type Proxmox struct {
	Bridge          string `yaml:"bridge" doc:"Bridge of the nodes' network. Default vmbr0."`
	Storage         string `yaml:"storage" doc:"Storage for root disks. Default local-lvm."`
	TemplateStorage string `yaml:"templateStorage" doc:"Storage holding LXC templates (vztmpl). Default local."`
	SnippetsStorage string `yaml:"snippetsStorage" doc:"Storage holding cloud-init snippets. Default local."`
}

// Ignition holds what the nodes booted by Ignition need from the operator.
type Ignition struct {
	URL    string            `yaml:"url" doc:"http(s) URL of a directory the operator serves hardway bake --format sysext's output from (an air-gapped site: a server on the nodes' network). A node booted by Ignition with role etcd, controller or worker fetches its systemd-sysext image (the pinned binaries) there at first boot, checked against the SHA-256 its Ignition config holds. Required when such a node exists."`
	Images map[string]string `yaml:"images" doc:"The distribution disk image create-nodes.sh imports for the nodes of each Ignition variant (fcos, flatcar), a file name in the Proxmox host's image directory, for example flatcar: flatcar_production_proxmoxve_image.img. Required for every variant a node uses."`
}

// Node is one machine.
type Node struct {
	Name      string   `yaml:"name" hw:"required" doc:"Host name, a DNS-1123 label, unique."`
	Roles     []string `yaml:"roles" hw:"required,enum=etcd|controller|worker|lb|gateway" doc:"What the node runs: etcd, controller, worker, lb, gateway."`
	Target    string   `yaml:"target" hw:"required,enum=lxc|kvm" doc:"lxc (Proxmox container) or kvm (virtual machine)."`
	Address   string   `yaml:"address" hw:"required" doc:"The node's address with nodeCIDR's prefix length (10.240.0.31/24 in 10.240.0.0/24), unique, inside network.nodeCIDR: not its network or broadcast address, the gateway or the API VIP."`
	VMID      int      `yaml:"vmid" hw:"required,range=100..999999999" doc:"Proxmox VM/CT id, unique."`
	Cores     int      `yaml:"cores" hw:"range=1..1024" doc:"CPU cores. Default 1 (2 for controllers, 4 for workers)."`
	MemoryMiB int      `yaml:"memoryMiB" hw:"range=128..4194304" doc:"Memory in MiB. Default 1024 (2048 for controllers, 4096 for workers)."`
	SwapMiB   int      `yaml:"swapMiB" hw:"range=0..4194304" doc:"Swap limit in MiB of an LXC container (an error on kvm nodes, whose swap is the guest's own). Default 0; a worker with swap gets failSwapOn: false."`
	DiskGiB   int      `yaml:"diskGiB" hw:"range=1..65536" doc:"Root disk size in GiB. Default 10 (20 for workers)."`
	Boot      string   `yaml:"boot,omitempty" hw:"enum=cloud-init|ignition" doc:"KVM boot configuration: cloud-init (NoCloud) or ignition. Default cloud-init."`
	Ignition  string   `yaml:"ignitionVariant,omitempty" hw:"enum=fcos|flatcar" doc:"Butane variant when boot is ignition. Default fcos."`
	RoleImage string   `yaml:"roleImage,omitempty" hw:"enum=etcd|controller|worker|lb|gateway" doc:"KVM nodes booted by cloud-init: the node boots from the role image of this role (hardway bake --format kvm --role R, one image for every node with R, which takes its identity from the node's NoCloud seed) instead of its own node image (hardway bake --format kvm --node N, the default). One of the node's roles. create-nodes.sh imports the image named accordingly."`
	// Interfaces are the NICs beyond the first; the first is Address on
	// spec.proxmox.bridge.
	Interfaces []Interface `yaml:"interfaces,omitempty" doc:"The node's network interfaces beyond the first (which is address on proxmox.bridge): eth1, eth2, ... in order, for example a gateway's public NIC. Not on nodes booted by Ignition."`
}

// Interface is one of a node's network interfaces beyond the first: Proxmox
// net1, net2, ... named eth1, eth2, ...
type Interface struct {
	Bridge  string `yaml:"bridge" hw:"required" doc:"The Proxmox bridge of the interface, another than proxmox.bridge and than the node's other interfaces'."`
	Address string `yaml:"address" hw:"required" doc:"The interface's address with its prefix length (203.0.113.5/24), outside network.nodeCIDR and unique."`
	Gateway string `yaml:"gateway,omitempty" doc:"The interface's gateway, inside its prefix. At most one interface of a node has one; it is then the node's default route, and network.gateway is only the route to network.podCIDR (the pods on the workers)."`
}
