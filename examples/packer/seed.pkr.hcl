# Bakes, with hardway's Packer plugin, a Proxmox LXC template for every LXC
# node of a spec (examples/seed-lxc.yaml by default) and a KVM disk image
# (qcow2) for every role of its KVM nodes booted by cloud-init, then records
# each artifact's SHA-256 with Packer's checksum post-processor and every
# build in a Packer manifest.
#
# From the repository root:
#
#   make plugin                      # builds bin/packer-plugin-hardway
#   packer plugins install --path bin/packer-plugin-hardway github.com/hardway-dev/hardway
#   hack/base.sh                     # a Debian base, ~/.cache/hardway/base/debian-12-base.tar.zst
#   packer build -var spec=out/try/seed-lxc.yaml \
#     -var base_rootfs=$HOME/.cache/hardway/base/debian-12-base.tar.zst examples/packer/seed.pkr.hcl
#
# The artifacts, their .sha256 files, the checksum files and
# packer-manifest.json land in out/<cluster>/bake/ (out/kublxc/bake/ here).
# The seed spec installs upstream binaries (binaries.mode upstream), which
# bake takes only when pinned: out/try/seed-lxc.yaml is a copy with its
# binaries next to it and pinned by `hardway pin --write` (the README's
# recipe under "Baking LXC templates"). A spec with binaries.mode packaged
# pins its Kubernetes binaries the same way and takes containerd, runc, the
# CNI plugins and etcd from the base's Debian packages instead: bake refuses
# a base without them.
#
# examples/seed-lxc.yaml has no KVM node, so the build has no hardway-kvm
# source there. A spec with KVM nodes needs a base with a kernel, its
# initrd, systemd-boot and cloud-init, as the full base above has. The
# seed's KVM cluster (-var spec=examples/seed-kvm.yaml, binaries.mode
# packaged) needs Debian's containerd, runc, containernetworking-plugins
# and etcd-server too, which only the KVM base has: add
# -var kvm_base_rootfs=$HOME/.cache/hardway/base/debian-12-kvm.tar.zst
# (hack/base.sh --kvm). Each role image carries the binaries of its role
# and no node: a VM made from it takes its node's identity from that node's
# NoCloud seed (out/<cluster>/nodes/<node>/seed.iso) at first boot.

packer {
  required_plugins {
    hardway = {
      source  = "github.com/hardway-dev/hardway"
      version = ">= 0.1.0"
    }
  }
}

variable "spec" {
  type        = string
  default     = "examples/seed-lxc.yaml"
  description = "The cluster spec, relative to the directory packer runs in."
}

variable "base_rootfs" {
  type        = string
  description = "The base root file system tarball (hack/base.sh builds a Debian one)."
}

variable "kvm_base_rootfs" {
  type        = string
  default     = ""
  description = "The base of the KVM images, with a kernel, its initrd, systemd-boot and cloud-init; empty: base_rootfs."
}

variable "output_directory" {
  type        = string
  default     = "out"
  description = "hardway's output root: the PKI state stays in <output_directory>/<cluster>/pki."
}

# The spec's nodes, roles and the paths of hardway's outputs.
data "hardway-cluster" "seed" {
  spec             = var.spec
  output_directory = var.output_directory
}

locals {
  cluster = data.hardway-cluster.seed
  # Every node of target lxc, by name.
  lxc_nodes = { for n in local.cluster.nodes : n.name => n if n.target == "lxc" }
  # The roles of the nodes of target kvm booted by cloud-init (those with a
  # NoCloud seed), each once: a role image serves these nodes.
  kvm_roles = sort(distinct(flatten([for n in local.cluster.nodes : n.roles if n.target == "kvm" && n.seed_iso != ""])))
  kvm_base  = var.kvm_base_rootfs != "" ? var.kvm_base_rootfs : var.base_rootfs
}

# What every template shares; the build below adds its node.
source "hardway-lxc" "node" {
  spec             = var.spec
  base_rootfs      = var.base_rootfs
  output_directory = var.output_directory
}

# What every KVM role image shares; the build below adds its role.
source "hardway-kvm" "role" {
  spec             = var.spec
  base_rootfs      = local.kvm_base
  output_directory = var.output_directory
  format           = "qcow2"
}

# One build block for both kinds: Packer refuses a build block without a
# source, and a spec may have no LXC or no KVM node.
build {
  # One source per LXC node, named after it: hardway-lxc.gw, hardway-lxc.etcd1...
  dynamic "source" {
    for_each = local.lxc_nodes
    iterator = node
    labels   = ["hardway-lxc.node"]
    content {
      name = node.key
      node = node.key
    }
  }

  # One source per role of the KVM nodes, named after it: hardway-kvm.worker...
  # None for a spec without KVM nodes (examples/seed-lxc.yaml).
  dynamic "source" {
    for_each = local.kvm_roles
    iterator = role
    labels   = ["hardway-kvm.role"]
    content {
      name = role.value
      role = role.value
    }
  }

  # A checksum file per build, named after its source: packer_hardway-lxc_gw_sha256.checksum,
  # packer_hardway-kvm_worker_sha256.checksum...
  post-processor "checksum" {
    checksum_types = ["sha256"]
    output         = "${local.cluster.bake_directory}/packer_${source.type}_${source.name}_sha256.checksum"
  }

  # Every build, its artifact and what the builder says about it (for a
  # role image: the nodes it serves).
  post-processor "manifest" {
    output     = "${local.cluster.bake_directory}/packer-manifest.json"
    strip_path = false
    custom_data = {
      node   = build.node
      roles  = build.roles
      vmid   = build.vmid
      sha256 = build.sha256
    }
  }
}
