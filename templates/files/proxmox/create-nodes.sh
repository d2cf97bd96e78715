#!/bin/bash
# create-nodes.sh: creates the Proxmox guests of cluster {{ comment .Cluster }}. Written by
# hardway, which never runs it. Run it as root on the Proxmox host, from a copy
# of the whole cluster directory: it reads the nodes' boot configuration there.
# A VMID that already exists is left alone, so it can run again after nodes are
# added to the spec. Every setting comes from the spec (nodes/<node>/proxmox.conf
# lists them per node): change the spec and regenerate rather than this file.
# Every value from the spec is quoted as one shell word.
#
# It needs the LXC templates in {{ comment .TemplateStorage }}:vztmpl/ and the KVM images in
# IMAGE_DIR, the content type "snippets" enabled on storage {{ comment .SnippetsStorage }},
# and the host contract of this directory installed (each file's header says where).
set -euo pipefail

# Templates and images are named as hardway bake names them, the Proxmox way
# (<os>-<version>-<variant>_<pkgver>_<arch>), the package version being the
# Kubernetes version they carry:
#   <OS>-<OS_VERSION>-hardway-<node>_<VERSION>_amd64.tar.zst   LXC, in vztmpl
#   <OS>-<OS_VERSION>-hardway-<node>_<VERSION>_amd64.qcow2     KVM, in IMAGE_DIR
# OS and OS_VERSION name the base they were baked from (hack/base.sh: Debian 12).
OS="${OS:-debian}"
OS_VERSION="${OS_VERSION:-12}"
SPEC_VERSION={{ shq .Version }}
VERSION="${VERSION:-${SPEC_VERSION}}"
IMAGE_DIR="${IMAGE_DIR:-/var/lib/vz/import}"
# Where Proxmox keeps this node's container configurations.
CT_CONF_DIR="${CT_CONF_DIR:-/etc/pve/lxc}"

# From spec.proxmox.
TEMPLATE_STORAGE={{ shq .TemplateStorage }}
SNIPPETS_STORAGE={{ shq .SnippetsStorage }}

CLUSTER_DIR="$(cd "$(dirname "$0")/.." && pwd)"

# lxc_template NODE: the volume of NODE's LXC template.
lxc_template() {
	echo "${TEMPLATE_STORAGE}:vztmpl/${OS}-${OS_VERSION}-hardway-$1_${VERSION}_amd64.tar.zst"
}

# kvm_image NODE: the path of NODE's disk image.
kvm_image() {
	echo "${IMAGE_DIR}/${OS}-${OS_VERSION}-hardway-$1_${VERSION}_amd64.qcow2"
}

# exists VMID: whether a container or a VM has that id.
exists() {
	pct config "$1" >/dev/null 2>&1 || qm config "$1" >/dev/null 2>&1
}

# snippet FILE NAME: copies FILE (relative to the cluster directory) to the
# snippets storage as NAME, readable by root only: it holds private keys.
snippet() {
	local dest
	dest="$(pvesm path "${SNIPPETS_STORAGE}:snippets/$2")"
	install -D -m 0600 "${CLUSTER_DIR}/$1" "${dest}"
}
{{- range $g := .Guests }}

# {{ comment $g.Name }} ({{ comment $g.Roles }}): {{ if $g.LXC }}LXC{{ else }}KVM{{ end }} {{ $g.VMID }}.
{{- if $g.LXC }}
# {{ $g.Privilege | wrapWith 78 "\n# " }}
{{- end }}
if exists {{ $g.VMID }}; then
	echo {{ shq (printf "%d (%s) exists: left alone" $g.VMID $g.Name) }}
else
{{- if $g.LXC }}
	pct create {{ $g.VMID }} "$(lxc_template {{ shq $g.Name }})" \
{{- range $i, $o := $g.Options }}
		--{{ $o.Key }} {{ shq $o.Value }}{{ if lt (add1 $i) (len $g.Options) }} \{{ end }}
{{- end }}
{{- with $g.Raw }}
	# Raw LXC keys, which pct create cannot set:
{{- range . }}
	#   {{ .Key }}: {{ .Why | wrapWith 64 "\n\t#     " }}
{{- end }}
	cat >>"${CT_CONF_DIR}/{{ $g.VMID }}.conf" <<'CONF'
{{- range . }}
{{ .Key }}:{{ with .Value }} {{ . }}{{ end }}
{{- end }}
CONF
{{- end }}
{{- else }}
{{- range $g.Snippets }}
	snippet {{ shq .Src }} {{ shq .Name }}
{{- end }}
	qm create {{ $g.VMID }} \
{{- range $g.Options }}
		--{{ .Key }} {{ shq .Value }} \
{{- end }}
		--scsi0 {{ shq $g.Storage ":0,import-from=" }}"$(kvm_image {{ shq $g.Name }})"
	qm resize {{ $g.VMID }} scsi0 {{ $g.DiskGiB }}G
{{- end }}
	echo {{ shq (printf "%d (%s) created" $g.VMID $g.Name) }}
fi
{{- end }}
