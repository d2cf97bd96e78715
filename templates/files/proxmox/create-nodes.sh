#!/bin/bash
# create-nodes.sh: creates the Proxmox guests of cluster {{ comment .Cluster }} and, with
# --start, starts them. Written by hardway, which never runs it. Run it as root
# on a node of the Proxmox cluster, from a copy of the whole cluster directory:
# it reads the nodes' boot configuration there.
#
# Before it changes anything it checks, across the Proxmox cluster
# (pvesh get /cluster/resources), that each VMID of the spec is free or holds
# this cluster's guest (tagged {{ comment .Tag }}, with the node's name and type): a VMID
# held by any other guest is an error. It checks that every template, image
# and snippet it needs exists. It reports every problem it finds, then stops.
# Then it creates the missing guests, tagged and described as this cluster's;
# completes those of this Proxmox node that an interrupted run left half-made
# (an LXC worker's raw keys, a VM's disk size); and copies the VMs' boot
# configuration to the snippets storage again, so that it follows a
# regenerate. A guest of the cluster on another Proxmox node is reported and
# left to that node. So it can run again at any time, after nodes are added
# to the spec among others. Every setting comes from the spec
# (nodes/<node>/proxmox.conf lists them per node): change the spec and
# regenerate rather than this file. Every value from the spec is quoted as
# one shell word.
#
# Usage: create-nodes.sh [--start]
#   --start   then start the guests that are not running, in dependency
#             order: gateway, lb, etcd, controllers, workers.
#
# It needs the LXC templates in {{ comment .TemplateStorage }}:vztmpl/, the KVM images in IMAGE_DIR,
# the content type "snippets" on storage {{ comment .SnippetsStorage }} and the host contract of this
# directory installed (each file's header says where). The snippets hold the
# VMs' private keys, and a VM reads them each time it starts: on a storage
# that is not shared (local), a VM starts only on this Proxmox node and cannot
# migrate; a shared one (spec.proxmox.snippetsStorage) lets it run on any.
set -euo pipefail

usage() {
	echo "usage: $0 [--start]"
}
START=0
for arg in "$@"; do
	case "${arg}" in
	--start) START=1 ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		usage >&2
		exit 2
		;;
	esac
done

# Templates and images are named as hardway bake names them, the Proxmox way
# (<os>-<version>-hardway-<node|role>_<pkgver>_amd64), the package version being
# the Kubernetes version they carry: a node's own template or image, or for a
# VM with spec.nodes[].roleImage the image of that role. {{ .Vars.OS }} and {{ .Vars.OSVersion }}
# name the base they were baked from (hack/base.sh: Debian 12).
{{ .Vars.OS }}="${ {{- .Vars.OS }}:-debian}"
{{ .Vars.OSVersion }}="${ {{- .Vars.OSVersion }}:-12}"
SPEC_VERSION={{ shq .Version }}
{{ .Vars.Version }}="${ {{- .Vars.Version }}:-${SPEC_VERSION}}"
IMAGE_DIR="${IMAGE_DIR:-/var/lib/vz/import}"
# Where Proxmox keeps this node's container configurations.
CT_CONF_DIR="${CT_CONF_DIR:-/etc/pve/lxc}"
# This Proxmox node, as /cluster/resources names it.
NODE="${NODE:-$(uname -n)}"
NODE="${NODE%%.*}"

# From spec.proxmox.
TEMPLATE_STORAGE={{ shq .TemplateStorage }}
SNIPPETS_STORAGE={{ shq .SnippetsStorage }}
# The tag that makes a guest this cluster's.
TAG={{ shq .Tag }}

CLUSTER_DIR="$(cd "$(dirname "$0")/.." && pwd)"

# The guests, by VMID: node name, type and template or image.
declare -A NAME TYPE ARTIFACT
{{- range .Guests }}
NAME[{{ .VMID }}]={{ shq .Name }} TYPE[{{ .VMID }}]={{ .Type }} ARTIFACT[{{ .VMID }}]={{ .Artifact }}
{{- end }}
# In spec order, and in start order.
GUESTS=({{ range $i, $g := .Guests }}{{ if $i }} {{ end }}{{ $g.VMID }}{{ end }})
START_ORDER=({{ range $i, $id := .StartOrder }}{{ if $i }} {{ end }}{{ $id }}{{ end }})

# fields FIELD...: reads a JSON list of objects (pvesh --output-format json)
# and prints each object's FIELDs on a line, separated by the unit separator
# (0x1f). perl's JSON::PP is on every Proxmox host.
# shellcheck disable=SC2016 # $/, $l, $o, $v and $_ are perl's
fields() {
	perl -MJSON::PP -e 'local $/; my $l = decode_json(<STDIN>);
		for my $o (@$l) { print join("\x1f", map { my $v = $o->{$_} // ""; $v =~ s/[\x1f\n]/ /g; $v } @ARGV), "\n" }' "$@"
}

# has_tag TAGS TAG: whether Proxmox's tag list TAGS (separated by ; , or
# spaces) holds TAG.
has_tag() {
	local t list
	IFS=';, ' read -r -a list <<<"$1"
	for t in "${list[@]}"; do
		[[ "${t}" == "$2" ]] && return 0
	done
	return 1
}

# json_has FIELD VALUE: whether the JSON list of objects on stdin holds one
# whose FIELD is VALUE.
# shellcheck disable=SC2016 # perl's variables
json_has() {
	perl -MJSON::PP -e 'local $/; my ($f, $v) = @ARGV;
		exit !grep { ($_->{$f} // "") eq $v } @{decode_json(<STDIN>)}' "$@"
}

# artifact_missing ID: whether ID's template or image is missing; the
# templates are listed once, into templates.
templates=""
artifact_missing() {
	if [[ "${TYPE[$1]}" == qemu ]]; then
		[[ ! -f "${ARTIFACT[$1]}" ]]
		return
	fi
	if [[ -z "${templates}" ]]; then
		templates="$(pvesh get "/nodes/${NODE}/storage/${TEMPLATE_STORAGE}/content" --content vztmpl --output-format json)"
	fi
	! json_has volid "${ARTIFACT[$1]}" <<<"${templates}"
}

# need_snippet SRC NAME: SRC must be in the cluster directory.
need_snippet() {
	if [[ ! -f "${CLUSTER_DIR}/$1" ]]; then
		ERRORS+=("${id} (${NAME[${id}]}): no ${CLUSTER_DIR}/$1 (run hardway generate)")
	fi
}

# install_snippet SRC NAME: copies SRC (relative to the cluster directory) to
# the snippets storage as NAME, readable by root only (it holds private
# keys), unless it holds that already.
install_snippet() {
	local dest
	dest="$(pvesm path "${SNIPPETS_STORAGE}:snippets/$2")"
	if ! cmp -s "${CLUSTER_DIR}/$1" "${dest}"; then
		install -D -m 0600 "${CLUSTER_DIR}/$1" "${dest}"
		echo "${id} (${NAME[${id}]}): snippet $2 written"
	fi
}

# raw_key VMID LINE: appends LINE to the container's configuration unless it
# holds it (pct create cannot set raw LXC keys).
raw_key() {
	local conf="${CT_CONF_DIR}/$1.conf"
	if ! grep -qxF -e "$2" "${conf}"; then
		echo "$2" >>"${conf}"
	fi
}

# grow VMID GIB: grows the VM's scsi0 to GIB GiB unless it is that large.
grow() {
	local size mib
	size="$(qm config "$1" | sed -n 's/^scsi0: .*[:,]size=\([0-9]*[KMGT]\).*$/\1/p')"
	case "${size}" in
	*K) mib=$((${size%K} / 1024)) ;;
	*M) mib=${size%M} ;;
	*G) mib=$((${size%G} * 1024)) ;;
	*T) mib=$((${size%T} * 1024 * 1024)) ;;
	*)
		echo "$1: no size for scsi0 in its configuration (qm config $1)" >&2
		return 1
		;;
	esac
	if ((mib < $2 * 1024)); then
		qm resize "$1" scsi0 "$2G"
	fi
}

{{- range $g := .Guests }}

# {{ comment $g.Name }} ({{ comment $g.Roles }}): {{ if $g.LXC }}LXC{{ else }}KVM{{ end }} {{ $g.VMID }}.
{{- if $g.LXC }}
# {{ $g.Privilege | wrapWith 78 "\n# " }}
create_{{ $g.VMID }}() {
	pct create {{ $g.VMID }} "${ARTIFACT[{{ $g.VMID }}]}" \
{{- range $i, $o := $g.Options }}
		--{{ $o.Key }} {{ shq $o.Value }}{{ if lt (add1 $i) (len $g.Options) }} \{{ end }}
{{- end }}
}
complete_{{ $g.VMID }}() {
{{- with $g.Raw }}
	# Raw LXC keys, which pct create cannot set:
{{- range . }}
	#   {{ .Key }}: {{ .Why | wrapWith 64 "\n\t#     " }}
{{- end }}
{{- range . }}
	raw_key {{ $g.VMID }} {{ shq .Line }}
{{- end }}
{{- else }}
	:
{{- end }}
}
{{- else }}
snippets_{{ $g.VMID }}() {
{{- range $g.Snippets }}
	"$1" {{ shq .Src }} {{ shq .Name }}
{{- end }}
}
create_{{ $g.VMID }}() {
	qm create {{ $g.VMID }} \
{{- range $g.Options }}
		--{{ .Key }} {{ shq .Value }} \
{{- end }}
		--scsi0 {{ shq $g.Storage ":0,import-from=" }}"${ARTIFACT[{{ $g.VMID }}]}"
}
complete_{{ $g.VMID }}() {
	grow {{ $g.VMID }} {{ $g.DiskGiB }}
}
{{- end }}
{{- end }}

# The guests of the whole Proxmox cluster, by VMID.
declare -A HAS_TYPE HAS_NODE HAS_NAME HAS_TAGS HAS_LOCK HAS_STATUS
resources="$(pvesh get /cluster/resources --type vm --output-format json)"
parsed="$(fields vmid type node name tags lock status <<<"${resources}")"
while IFS=$'\x1f' read -r vmid type node name tags lock status; do
	[[ -n "${vmid}" ]] || continue
	HAS_TYPE[${vmid}]="${type}" HAS_NODE[${vmid}]="${node}" HAS_NAME[${vmid}]="${name}"
	HAS_TAGS[${vmid}]="${tags}" HAS_LOCK[${vmid}]="${lock}" HAS_STATUS[${vmid}]="${status}"
done <<<"${parsed}"

# The snippets storage as this node sees it (its content types, whether it
# is shared), and how many other Proxmox nodes there are.
resources="$(pvesh get /cluster/resources --type storage --output-format json)"
# shellcheck disable=SC2016 # perl's variables
parsed="$(NODE="${NODE}" STORAGE="${SNIPPETS_STORAGE}" perl -MJSON::PP -e 'local $/; my ($content, $shared, %others) = ("", 0);
	for my $s (@{decode_json(<STDIN>)}) {
		$others{$s->{node}} = 1 if $s->{node} ne $ENV{NODE};
		($content, $shared) = ($s->{content} // "", $s->{shared} // 0) if $s->{node} eq $ENV{NODE} && $s->{storage} eq $ENV{STORAGE};
	}
	print join("\x1f", $content, $shared, scalar keys %others), "\n"' <<<"${resources}")"
IFS=$'\x1f' read -r SNIPPETS_CONTENT SNIPPETS_SHARED OTHER_NODES <<<"${parsed}"

# What to do with each guest: create it here, check and complete it here, or
# leave it to the Proxmox node it is on. ERRORS are the problems that stop
# the run before any change.
CREATE=() HERE=() ELSEWHERE=() ERRORS=()
for id in "${GUESTS[@]}"; do
	what="${id} (${NAME[${id}]})"
	if [[ -z "${HAS_TYPE[${id}]+set}" ]]; then
		CREATE+=("${id}")
	elif ! has_tag "${HAS_TAGS[${id}]}" "${TAG}"; then
		ERRORS+=("${what}: VMID ${id} is taken by ${HAS_TYPE[${id}]} '${HAS_NAME[${id}]}' on node ${HAS_NODE[${id}]} (tags: '${HAS_TAGS[${id}]}'), which is not a guest of this cluster: free the VMID or give the node another spec.nodes[].vmid. If it is this node, made before hardway tagged its guests, tag it: pvesh set /nodes/${HAS_NODE[${id}]}/${HAS_TYPE[${id}]}/${id}/config --tags 'hardway;${TAG}'")
	elif [[ "${HAS_TYPE[${id}]}" != "${TYPE[${id}]}" || "${HAS_NAME[${id}]}" != "${NAME[${id}]}" ]]; then
		ERRORS+=("${what}: VMID ${id} is this cluster's ${HAS_TYPE[${id}]} '${HAS_NAME[${id}]}' on node ${HAS_NODE[${id}]}, but the spec makes it ${TYPE[${id}]} '${NAME[${id}]}': remove the old guest, or give the node another spec.nodes[].vmid")
	elif [[ -n "${HAS_LOCK[${id}]}" ]]; then
		ERRORS+=("${what}: locked (${HAS_LOCK[${id}]}) on node ${HAS_NODE[${id}]}. A 'create' lock is a creation that was interrupted and left the guest half-made: remove it (on ${HAS_NODE[${id}]}: pct unlock ${id}, or qm unlock ${id}, then pct destroy ${id} or qm destroy ${id}) and run again. Otherwise wait for the operation holding the lock.")
	elif [[ "${HAS_NODE[${id}]}" != "${NODE}" ]]; then
		ELSEWHERE+=("${id}")
	else
		HERE+=("${id}")
	fi
done

# Preflight: everything the guests to create and complete need.
for id in "${CREATE[@]}"; do
	if artifact_missing "${id}"; then
		ERRORS+=("${id} (${NAME[${id}]}): no ${ARTIFACT[${id}]} to create it from (hardway bake writes it; the README's \"From spec to a running cluster on Proxmox\" says where it goes)")
	fi
done
vms=0
for id in "${CREATE[@]}" "${HERE[@]}"; do
	if [[ "${TYPE[${id}]}" == qemu ]]; then
		vms=$((vms + 1))
		"snippets_${id}" need_snippet
	fi
done
if ((vms > 0)) && ! has_tag "${SNIPPETS_CONTENT}" snippets; then
	ERRORS+=("storage ${SNIPPETS_STORAGE} has no content type snippets on node ${NODE} (content: '${SNIPPETS_CONTENT}'): enable it (pvesm set ${SNIPPETS_STORAGE} --content <its types>,snippets)")
fi
if ((${#ERRORS[@]} > 0)); then
	printf 'error: %s\n' "${ERRORS[@]}" >&2
	echo "create-nodes.sh: nothing was changed" >&2
	exit 1
fi
if ((vms > 0 && OTHER_NODES > 0 && SNIPPETS_SHARED != 1)); then
	echo "warning: storage ${SNIPPETS_STORAGE} is not shared: the VMs of this cluster start only on ${NODE}, and cannot migrate or fail over to another node, which has no copy of their snippets; a shared storage with content snippets (spec.proxmox.snippetsStorage) lets them run on any" >&2
fi

for id in "${GUESTS[@]}"; do
	what="${id} (${NAME[${id}]})"
	if [[ " ${ELSEWHERE[*]} " == *" ${id} "* ]]; then
		echo "${what}: exists on node ${HAS_NODE[${id}]}: left to it (run create-nodes.sh there to check it)"
		continue
	fi
	if [[ "${TYPE[${id}]}" == qemu ]]; then
		"snippets_${id}" install_snippet
	fi
	if [[ " ${CREATE[*]} " == *" ${id} "* ]]; then
		"create_${id}"
		"complete_${id}"
		HAS_NODE[${id}]="${NODE}" HAS_STATUS[${id}]=stopped
		echo "${what}: created"
	else
		"complete_${id}"
		echo "${what}: exists, checked"
	fi
done

if ((START)); then
	for id in "${START_ORDER[@]}"; do
		if [[ "${HAS_STATUS[${id}]}" == running ]]; then
			continue
		fi
		if [[ "${HAS_NODE[${id}]}" == "${NODE}" ]]; then
			if [[ "${TYPE[${id}]}" == lxc ]]; then pct start "${id}"; else qm start "${id}"; fi
		else
			pvesh create "/nodes/${HAS_NODE[${id}]}/${TYPE[${id}]}/${id}/status/start"
		fi
		echo "${id} (${NAME[${id}]}): started"
	done
fi
