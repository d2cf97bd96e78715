# Makes a Proxmox VM template for every node of examples/seed-kvm.yaml by
# cloning a Debian 12 cloud-init template and installing the node's hardway
# tree into it with the hardway-node provisioner, which also prepares it to
# become a template (machine-id, SSH host keys, cloud-init state).
#
# The provisioner installs the tree only, no binaries. The spec uses
# binaries.mode packaged, so the template you clone must already hold what
# that mode runs: Debian's containerd, runc, containernetworking-plugins and
# etcd-server packages, and the spec's pinned Kubernetes binaries (kubelet,
# kube-proxy, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl) under /usr/local/bin, because Debian packages no Kubernetes.
# `hardway bake --format kvm` from `hack/base.sh --kvm` puts both in without
# a Proxmox host.
#
# Documented, not run by the tests (it needs a Proxmox host). From the
# repository root:
#
#   packer plugins install --path bin/packer-plugin-hardway github.com/hardway-dev/hardway
#   packer init examples/packer/proxmox-clone.pkr.hcl     # fetches the Proxmox plugin (online only)
#   packer build -var proxmox_url=https://pve.example.com:8006/api2/json \
#     -var proxmox_token=... -var clone_vm=debian-12-kube examples/packer/proxmox-clone.pkr.hcl
#
# Each clone boots with its node's address (cloud-init ipconfig), so that
# Packer reaches it over SSH as the cloud image's user, debian, who has
# sudo: the provisioner installs through sudo.

packer {
  required_plugins {
    hardway = {
      source  = "github.com/hardway-dev/hardway"
      version = ">= 0.1.0"
    }
    proxmox = {
      source  = "github.com/hashicorp/proxmox"
      version = ">= 1.2.0"
    }
  }
}

variable "spec" {
  type    = string
  default = "examples/seed-kvm.yaml"
}

variable "proxmox_url" {
  type = string
}

variable "proxmox_username" {
  type    = string
  default = "packer@pve!hardway"
}

variable "proxmox_token" {
  type      = string
  sensitive = true
}

variable "proxmox_node" {
  type        = string
  default     = "pve"
  description = "The Proxmox host the clones run on."
}

variable "clone_vm" {
  type        = string
  description = "The cloud-init template to clone: Debian 12 with containerd, runc, containernetworking-plugins, etcd-server and the pinned Kubernetes binaries in /usr/local/bin."
}

variable "template_vmid_offset" {
  type        = number
  default     = 9000
  description = "Template of node N gets vmid offset + N's vmid, away from the nodes' own ids."
}

data "hardway-cluster" "kvm" {
  spec = var.spec
}

locals {
  cluster   = data.hardway-cluster.kvm
  kvm_nodes = { for n in local.cluster.nodes : n.name => n if n.target == "kvm" }
}

source "proxmox-clone" "node" {
  proxmox_url = var.proxmox_url
  username    = var.proxmox_username
  token       = var.proxmox_token
  node        = var.proxmox_node
  clone_vm    = var.clone_vm
  full_clone  = true

  cores      = 2
  memory     = 4096
  qemu_agent = true
  network_adapters {
    bridge = "vmbr3"
    model  = "virtio"
  }
  cloud_init   = true
  ssh_username = "debian"
  ssh_timeout  = "10m"
}

build {
  dynamic "source" {
    for_each = local.kvm_nodes
    iterator = node
    labels   = ["proxmox-clone.node"]
    content {
      name          = node.key
      vm_name       = "hardway-${node.key}"
      vm_id         = var.template_vmid_offset + node.value.vmid
      template_name = "hardway-${node.key}"
      ipconfig {
        ip      = node.value.address
        gateway = local.cluster.gateway
      }
    }
  }

  # source.name is the node: install its tree at / through sudo, reload
  # systemd (its units are enabled by the links in the tree), then sysprep.
  provisioner "hardway-node" {
    spec = var.spec
    node = source.name
  }
}
