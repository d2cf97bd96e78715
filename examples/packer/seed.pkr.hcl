# Bakes a Proxmox LXC template for every LXC node of examples/seed-lxc.yaml
# with hardway's Packer plugin, then records each template's SHA-256 with
# Packer's checksum post-processor and every build in a Packer manifest.
#
# From the repository root:
#
#   make plugin                      # builds bin/packer-plugin-hardway
#   packer plugins install --path bin/packer-plugin-hardway github.com/hardway-dev/hardway
#   hack/base.sh                     # a Debian base, ~/.cache/hardway/base/debian-12-base.tar.zst
#   packer build -var base_rootfs=$HOME/.cache/hardway/base/debian-12-base.tar.zst examples/packer/seed.pkr.hcl
#
# The templates, their .sha256 files, the checksum files and
# packer-manifest.json land in out/kublxc/bake/. The seed spec installs
# upstream binaries (binaries.mode upstream): pin them in
# examples/seed-lxc.yaml first (see its binaries section), or pass a spec
# with binaries.mode packaged and a base holding the distribution's
# Kubernetes packages.

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
}

# What every template shares; each build below adds its node.
source "hardway-lxc" "node" {
  spec             = var.spec
  base_rootfs      = var.base_rootfs
  output_directory = var.output_directory
}

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

  # A checksum file per node. (Packer names every build of this block
  # "node", the source's name: build.node, the builder's generated data,
  # tells them apart.)
  post-processor "checksum" {
    checksum_types = ["sha256"]
    output         = "${local.cluster.bake_directory}/packer_${build.node}_sha256.checksum"
  }

  # Every build, its template and what the builder says about it.
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
