package emit

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/netip"
	"path"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// CloudInit returns the NoCloud user-data, meta-data and network-config of
// node n, carrying tree t.
//
// user-data (#cloud-config) creates the tree in cloud-init's own order:
//   - bootcmd (before write_files) creates every secret as an empty 0600
//     file, because write_files opens a new file with the process umask and
//     only then chmods it: a key would be world-readable for a moment;
//   - write_files writes every regular file: text as a literal string,
//     secrets and anything not printable UTF-8 base64-encoded, permissions
//     as an octal string. Owners are not given there: write_files resolves
//     them by name (getpwnam), and a tree only has numeric ids;
//   - runcmd creates directories (install -d with mode and owner for the
//     tree's own, mkdir -p for implicit parents nothing else creates), sets
//     numeric owners (chown), makes symlinks (ln -sfnT), then runs
//     systemctl daemon-reload and, per unit in t.Units() order,
//     systemctl enable --now --no-block (the units may wait for each other,
//     e.g. etcd members; blocking would stall cloud-init's final stage).
//
// The tree writes /etc/hosts, so manage_etc_hosts is false. locale is
// C.UTF-8, built into glibc: without the key cloud-init's locale module
// sets the distribution's default, en_US.UTF-8 on Debian, which a base has
// not generated (Debian's locales package, a dependency of cloud-init,
// builds only what /etc/locale.gen enables: nothing by default);
// update-locale refuses it and cloud-config.service fails, leaving the
// node degraded (verify --boot's first row found it on mixed.yaml's KVM
// controllers). C.UTF-8 needs no generation (cloud-init skips locale-gen
// for it) and is what the LXC nodes, which cloud-init does not run on,
// have. The spec's SSH
// keys go to the default user and, with disable_root false, to root as the
// spec promises. meta-data's instance-id ends with a digest of user-data and
// network-config, so a changed configuration makes cloud-init run again.
// A spec that nodegen.Check refuses gives nothing: cloud-init writes the keys,
// host name and addresses into files that cannot quote them.
func CloudInit(x *nodegen.Context, n spec.Node, t *tree.Tree) (userData, metaData, networkConfig []byte, err error) {
	if err := x.Check(); err != nil {
		return nil, nil, nil, err
	}
	es, err := entries(t)
	if err != nil {
		return nil, nil, nil, err
	}
	if userData, err = marshalYAML("#cloud-config\n", cloudConfig(x.C, n, t, es)); err != nil {
		return nil, nil, nil, fmt.Errorf("user-data: %w", err)
	}
	if networkConfig, err = marshalYAML("", netConfig(x, n)); err != nil {
		return nil, nil, nil, fmt.Errorf("network-config: %w", err)
	}
	sum := sha256.Sum256(append(append([]byte(nil), userData...), networkConfig...))
	md := metaDataDoc{InstanceID: n.Name + "-" + hex.EncodeToString(sum[:])[:12], LocalHostname: n.Name}
	if metaData, err = marshalYAML("", md); err != nil {
		return nil, nil, nil, fmt.Errorf("meta-data: %w", err)
	}
	return userData, metaData, networkConfig, nil
}

// Locale is the system locale user-data sets (see CloudInit).
const Locale = "C.UTF-8"

// userDataDoc is the #cloud-config document; field order is output order.
type userDataDoc struct {
	Hostname          string      `yaml:"hostname"`
	FQDN              string      `yaml:"fqdn"`
	Locale            string      `yaml:"locale"`
	ManageEtcHosts    bool        `yaml:"manage_etc_hosts"`
	SSHPwauth         bool        `yaml:"ssh_pwauth"`
	DisableRoot       bool        `yaml:"disable_root"`
	SSHAuthorizedKeys []string    `yaml:"ssh_authorized_keys,omitempty"`
	Bootcmd           [][]string  `yaml:"bootcmd,omitempty"`
	WriteFiles        []writeFile `yaml:"write_files,omitempty"`
	Runcmd            [][]string  `yaml:"runcmd"`
}

// writeFile is one write_files item.
type writeFile struct {
	Path        string `yaml:"path"`
	Permissions string `yaml:"permissions"`
	Encoding    string `yaml:"encoding,omitempty"`
	Content     string `yaml:"content"`
}

// metaDataDoc is the NoCloud meta-data.
type metaDataDoc struct {
	InstanceID    string `yaml:"instance-id"`
	LocalHostname string `yaml:"local-hostname"`
}

// cloudConfig builds the user-data document of n from its tree entries es.
func cloudConfig(c *spec.Cluster, n spec.Node, t *tree.Tree, es []*tree.Entry) userDataDoc {
	doc := userDataDoc{
		Hostname:          n.Name,
		FQDN:              c.FQDN(n),
		Locale:            Locale,
		SSHAuthorizedKeys: c.Spec.SSH.AuthorizedKeys,
	}
	var secrets []string
	for _, e := range es {
		if e.IsFile() {
			doc.WriteFiles = append(doc.WriteFiles, fileItem(e))
			if e.Secret {
				secrets = append(secrets, e.Path)
			}
		}
	}
	if len(secrets) > 0 {
		doc.Bootcmd = [][]string{append([]string{"sh", "-c", precreate, "sh"}, secrets...)}
	}
	doc.Runcmd = append(treeCommands(t, es), []string{"systemctl", "daemon-reload"})
	for _, u := range t.Units() {
		doc.Runcmd = append(doc.Runcmd, []string{"systemctl", "enable", "--now", "--no-block", u.Name})
	}
	return doc
}

// treeCommands completes what write_files leaves out: directories first
// (the tree's own with mode and owner, then the implicit parents no file
// creates), numeric owners of files, then symlinks.
func treeCommands(t *tree.Tree, es []*tree.Entry) [][]string {
	written := map[string]bool{} // directories write_files creates as parents
	for _, e := range es {
		for d := path.Dir(e.Path); e.IsFile() && d != "/"; d = path.Dir(d) {
			written[d] = true
		}
	}
	var dirs, owners, links [][]string
	for _, e := range es {
		switch {
		case e.IsDir() && explicit(t, e):
			dirs = append(dirs, []string{"install", "-d", "-m", octal(e), "-o", strconv.Itoa(e.UID), "-g", strconv.Itoa(e.GID), e.Path})
		case e.IsDir() && !written[e.Path]:
			dirs = append(dirs, []string{"mkdir", "-p", e.Path})
		case e.IsFile() && (e.UID != 0 || e.GID != 0):
			owners = append(owners, []string{"chown", owner(e), e.Path})
		case e.IsSymlink():
			links = append(links, []string{"ln", "-sfnT", e.Target, e.Path})
			if e.UID != 0 || e.GID != 0 {
				links = append(links, []string{"chown", "-h", owner(e), e.Path})
			}
		}
	}
	return append(append(dirs, owners...), links...)
}

// precreate creates each argument as an empty 0600 file (with its parents)
// unless it exists. bootcmd runs at every boot; a key written by an earlier
// boot is kept.
const precreate = `for f; do [ -e "$f" ] || install -D -m 0600 /dev/null "$f"; done`

// fileItem is the write_files item of regular file e.
func fileItem(e *tree.Entry) writeFile {
	w := writeFile{Path: e.Path, Permissions: octal(e)}
	if e.Secret || !isText(e.Data) {
		w.Encoding, w.Content = "b64", base64.StdEncoding.EncodeToString(e.Data)
	} else {
		w.Content = string(e.Data)
	}
	return w
}

// owner is e's numeric uid:gid.
func owner(e *tree.Entry) string { return strconv.Itoa(e.UID) + ":" + strconv.Itoa(e.GID) }

// networkDoc is a network-config version 2 document.
type networkDoc struct {
	Version   int                 `yaml:"version"`
	Ethernets map[string]ethernet `yaml:"ethernets"`
}

// ethernet is one ethernets entry.
type ethernet struct {
	Match       match        `yaml:"match"`
	SetName     string       `yaml:"set-name"`
	Addresses   []string     `yaml:"addresses"`
	Routes      []route      `yaml:"routes,omitempty"`
	Nameservers *nameservers `yaml:"nameservers,omitempty"`
}

type match struct {
	MACAddress string `yaml:"macaddress"`
}

type route struct {
	To  string `yaml:"to"`
	Via string `yaml:"via"`
}

type nameservers struct {
	Addresses []string `yaml:"addresses,omitempty"`
	Search    []string `yaml:"search"`
}

// netConfig is the network of n, one ethernets entry per interface
// (spec.Cluster.NICs): its static address on the interface with its pinned
// MAC (x.NICMAC, also set on net<i> by the Proxmox config), renamed eth<i>;
// the default route through the interface's gateway (on eth0 the spec's
// gateway, which routes every worker's pod CIDR: generators/proxmox, unless
// another interface has a gateway: then eth0 routes only network.podCIDR
// through it); and on eth0 the spec's resolvers with the domain as search
// list. The default route is written 0.0.0.0/0 (or ::/0), which every
// cloud-init renderer understands, not netplan's "default".
func netConfig(x *nodegen.Context, n spec.Node) networkDoc {
	nw := x.C.Spec.Network
	doc := networkDoc{Version: 2, Ethernets: map[string]ethernet{}}
	for _, nic := range x.C.NICs(n) {
		eth := ethernet{
			Match:     match{MACAddress: x.NICMAC(n, nic.Index)},
			SetName:   nic.Name,
			Addresses: []string{nic.Address},
		}
		if nic.Index == 0 {
			eth.Nameservers = &nameservers{Addresses: nw.DNS, Search: []string{x.C.Spec.Domain}}
		}
		if gw, err := netip.ParseAddr(nic.Gateway); err == nil {
			to := "0.0.0.0/0"
			if gw.Is6() {
				to = "::/0"
			}
			eth.Routes = append(eth.Routes, route{To: to, Via: gw.String()})
		}
		for _, r := range nic.Routes {
			eth.Routes = append(eth.Routes, route{To: r.To, Via: r.Via})
		}
		doc.Ethernets[nic.Name] = eth
	}
	return doc
}

// marshalYAML renders v (structs: fixed field order) after header.
func marshalYAML(header string, v any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(header)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
