package spec

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/netip"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// rule is the check of one kind of string field: what it accepts, said once
// for the messages, the reference (docs/spec.md) and the JSON schema.
type rule struct {
	desc    string                // what the field accepts, for the reference
	pattern string                // a regular expression every accepted value matches, for the schema ("" if none says enough)
	check   func(s string) string // "" when s is acceptable, else the message
}

// optional accepts "" besides what r accepts.
func optional(r rule) rule {
	return rule{desc: r.desc + ", or empty", check: func(s string) string {
		if s == "" {
			return ""
		}
		return r.check(s)
	}}
}

// The patterns are compiled on first use (lazyRegexp): most commands
// validate no spec, and compiling them at start-up cost every command
// ~5 ms and 4,300 allocations (fileNameRE's {0,254} alone 3,300).
var (
	dnsLabelRE  = lazyRegexp(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	versionRE   = lazyRegexp(`^v[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}$`)
	sha256RE    = lazyRegexp(`^[0-9a-f]{64}$`)
	fileNameRE  = lazyRegexp(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,254}$`)
	relPathRE   = lazyRegexp(`^[A-Za-z0-9._/-]+$`)
	imageBaseRE = lazyRegexp(`^[A-Za-z0-9][A-Za-z0-9._-]*\.tar$`)
	// pve-storage's parse_storage_id, case-insensitive.
	storageIDRE = lazyRegexp(`^[A-Za-z][A-Za-z0-9._-]*[A-Za-z0-9]$`)
	// A Linux interface name (IFNAMSIZ 16 with its NUL) that Proxmox's
	// pve-bridge-id takes, not starting with '-' (an option to ip, ifup) or
	// '.' (".", "..", a hidden file name).
	ifNameRE = lazyRegexp(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$`)
	// An http(s) URL of a directory: a host name or [IPv6], an optional
	// port and path, nothing that needs quoting.
	urlRE = lazyRegexp(`^https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$`)
	// What an authorized key's comment may hold: a user@host, a name, a date.
	sshCommentRE = lazyRegexp(`^[A-Za-z0-9 @._+=:,/-]*$`)
)

// lazyRegexp returns a regular expression compiled on first use.
func lazyRegexp(pattern string) *lazyRE {
	return &lazyRE{pattern, sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(pattern) })}
}

type lazyRE struct {
	pattern string
	re      func() *regexp.Regexp
}

func (l *lazyRE) String() string            { return l.pattern }
func (l *lazyRE) MatchString(s string) bool { return l.re().MatchString(s) }

// The rules of fieldRules.
var (
	ruleDNSLabel = rule{
		desc:    "a DNS-1123 label",
		pattern: dnsLabelRE.String(),
		check: func(s string) string {
			if !dnsLabelRE.MatchString(s) {
				return fmt.Sprintf("%q is not a DNS-1123 label (lower-case letters, digits and '-', at most 63)", s)
			}
			return ""
		},
	}
	ruleDNSName = rule{
		desc:    "a DNS name (DNS-1123 labels joined by dots, at most 253 characters)",
		pattern: `^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$`,
		check: func(s string) string {
			if !isDNSName(s) {
				return fmt.Sprintf("%q is not a DNS name", s)
			}
			return ""
		},
	}
	ruleVersion = rule{
		desc:    "vX.Y.Z",
		pattern: versionRE.String(),
		check: func(s string) string {
			if !versionRE.MatchString(s) {
				return fmt.Sprintf("%q is not a version like v1.34.2", s)
			}
			return ""
		},
	}
	ruleCIDR = rule{
		desc: "an IP prefix without host bits (10.240.0.0/24)",
		check: func(s string) string {
			p, err := netip.ParsePrefix(s)
			switch {
			case err != nil:
				return fmt.Sprintf("%q is not a CIDR (like 10.240.0.0/24)", s)
			case p.Masked() != p:
				return fmt.Sprintf("%s has host bits set; did you mean %s?", s, p.Masked())
			}
			return ""
		},
	}
	ruleIP = rule{
		desc: "an IP address",
		check: func(s string) string {
			if _, ok := addr(s); !ok {
				return fmt.Sprintf("%q is not an IP address", s)
			}
			return ""
		},
	}
	ruleAddress = rule{
		desc: "an IP address with prefix length (10.240.0.11/24)",
		check: func(s string) string {
			if _, err := netip.ParsePrefix(s); err != nil {
				return fmt.Sprintf("%q is not an address with prefix length (like 10.240.0.11/24)", s)
			}
			return ""
		},
	}
	ruleSAN = rule{
		desc: "an IP address or a DNS name (*.name for a wildcard)",
		check: func(s string) string {
			if _, ok := addr(s); !ok && !isDNSName(strings.TrimPrefix(s, "*.")) {
				return fmt.Sprintf("%q is neither an IP address nor a DNS name", s)
			}
			return ""
		},
	}
	ruleDuration = rule{
		desc: "a Go duration (8760h)",
		check: func(s string) string {
			if !isPositiveDuration(s) {
				return fmt.Sprintf("%q is not a positive duration (like 8760h)", s)
			}
			return ""
		},
	}
	ruleDir = rule{
		desc:    "a path below the spec's directory (letters, digits, ._-/; no ..)",
		pattern: relPathRE.String(),
		check:   checkRelPath,
	}
	ruleImage = rule{
		desc:    "a path below the spec's directory (letters, digits, ._-/; no ..) of a file named *.tar",
		pattern: `^[A-Za-z0-9._/-]*\.tar$`,
		check: func(s string) string {
			if m := checkRelPath(s); m != "" {
				return m
			}
			if !imageBaseRE.MatchString(path.Base(s)) {
				return fmt.Sprintf("%q: an image archive's file name starts with a letter or digit and ends in .tar", s)
			}
			return ""
		},
	}
	ruleFileName = rule{
		desc:    "a file name in binaries.dir (letters, digits, ._+-)",
		pattern: fileNameRE.String(),
		check: func(s string) string {
			if !fileNameRE.MatchString(s) {
				return fmt.Sprintf("%q must be a plain file name inside binaries.dir (letters, digits and ._+-, not starting with . or -)", s)
			}
			return ""
		},
	}
	ruleURL = rule{
		desc:    "an http or https URL (host, optional port and path; letters, digits, ._~/-)",
		pattern: urlRE.String(),
		check: func(s string) string {
			if !urlRE.MatchString(s) {
				return fmt.Sprintf("%q is not an http(s) URL of a directory (http:// or https://, a host, an optional :port and path of letters, digits and ._~/-; no user, query or fragment)", s)
			}
			return ""
		},
	}
	ruleIgnitionVariant = rule{
		desc:    "an Ignition variant: fcos or flatcar",
		pattern: `^(fcos|flatcar)$`,
		check: func(s string) string {
			if s != IgnitionFCOS && s != IgnitionFlatcar {
				return fmt.Sprintf("%q is not an Ignition variant (fcos or flatcar)", s)
			}
			return ""
		},
	}
	ruleDiskImage = rule{
		desc:    "a file name in the Proxmox host's image directory (letters, digits, ._+-)",
		pattern: fileNameRE.String(),
		check: func(s string) string {
			if !fileNameRE.MatchString(s) {
				return fmt.Sprintf("%q must be a plain file name in the Proxmox host's image directory (letters, digits and ._+-, not starting with . or -)", s)
			}
			return ""
		},
	}
	ruleSHA256 = rule{
		desc:    "a SHA-256 in lower-case hex",
		pattern: sha256RE.String(),
		check: func(s string) string {
			if !sha256RE.MatchString(s) {
				return fmt.Sprintf("%q is not a SHA-256 in lower-case hex (64 characters)", s)
			}
			return ""
		},
	}
	ruleSSHKey = rule{
		desc:  "one OpenSSH public key line: type, base64 key, optional comment (letters, digits, spaces, @._+=:,/-)",
		check: checkSSHKey,
	}
	ruleStorage = rule{
		desc:    "a Proxmox storage id",
		pattern: storageIDRE.String(),
		check: func(s string) string {
			if !storageIDRE.MatchString(s) {
				return fmt.Sprintf("%q is not a Proxmox storage id (a letter, then letters, digits and ._-, ending in a letter or digit)", s)
			}
			return ""
		},
	}
	ruleBridge = rule{
		desc:    "a Linux interface name (letters, digits, ._-; at most 15)",
		pattern: ifNameRE.String(),
		check: func(s string) string {
			if !ifNameRE.MatchString(s) {
				return fmt.Sprintf("%q is not a bridge name (letters, digits and ._-, not starting with . or -, at most 15 characters)", s)
			}
			return ""
		},
	}
)

// maxPath bounds a path in the spec (Linux's PATH_MAX is 4096).
const maxPath = 1024

// checkRelPath accepts a path relative to the spec file that stays below its
// directory: no absolute path, no .. component, a safe character set.
func checkRelPath(s string) string {
	switch {
	case s == "":
		return "the path is empty"
	case strings.HasPrefix(s, "/"):
		return fmt.Sprintf("%q is absolute; give a path relative to the spec file", s)
	case !relPathRE.MatchString(s):
		return fmt.Sprintf("%q may hold only letters, digits and ._-/", s)
	case len(s) > maxPath:
		return fmt.Sprintf("the path is %d characters long; at most %d", len(s), maxPath)
	}
	for _, c := range strings.Split(s, "/") {
		switch {
		case c == "..":
			return fmt.Sprintf("%q leaves the spec's directory (a .. component); give a path below it", s)
		case strings.HasPrefix(c, "-"):
			return fmt.Sprintf("%q has a component starting with '-'", s)
		}
	}
	return ""
}

// sshKeyTypes are the key types OpenSSH accepts in authorized_keys (DSA
// is gone since OpenSSH 9.8).
var sshKeyTypes = []string{
	"ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
	"sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com", "ssh-rsa",
}

// maxSSHKey bounds a key line; a 16384-bit RSA key is about 2.8 KB.
const maxSSHKey = 8192

// checkSSHKey accepts one authorized_keys line of the form "type base64
// [comment]", without options (command="..."): the key data must decode
// to a key of the type it names.
func checkSSHKey(s string) string {
	if i := strings.IndexFunc(s, isControl); i >= 0 {
		r, _ := utf8.DecodeRuneInString(s[i:])
		return fmt.Sprintf("holds the control character %s: a key is one line of text", strconv.QuoteRune(r))
	}
	if len(s) > maxSSHKey {
		return fmt.Sprintf("is %d bytes long; a public key line has at most %d", len(s), maxSSHKey)
	}
	f := strings.Fields(s)
	if len(f) >= 1 && strings.ContainsAny(f[0], `="`) {
		return "starts with options; give the bare key (\"ssh-ed25519 AAAA... comment\")"
	}
	if len(f) < 2 {
		return "not an OpenSSH public key (expected \"ssh-ed25519 AAAA... comment\")"
	}
	if !slices.Contains(sshKeyTypes, f[0]) {
		return fmt.Sprintf("%q is not a key type OpenSSH accepts (%s)", f[0], strings.Join(sshKeyTypes, ", "))
	}
	blob, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil || len(blob) < 4 || uint64(len(blob)-4) < uint64(binary.BigEndian.Uint32(blob)) ||
		string(blob[4:4+binary.BigEndian.Uint32(blob)]) != f[0] {
		return fmt.Sprintf("the key data is not a base64 %s key", f[0])
	}
	if c := strings.Join(f[2:], " "); !sshCommentRE.MatchString(c) {
		return fmt.Sprintf("the comment %q may hold only letters, digits, spaces and @._+=:,/-", c)
	}
	return ""
}

func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !dnsLabelRE.MatchString(l) {
			return false
		}
	}
	return true
}

// visit calls fn for every string of the document below v: each struct
// field, list item, map key and map value, with its path in the document
// and its key in fieldRules.
func visit(v reflect.Value, p, key string, fn func(p, key, s string)) {
	switch v.Kind() {
	case reflect.String:
		fn(p, key, v.String())
	case reflect.Struct:
		for _, f := range Fields(v.Type()) {
			visit(v.Field(f.Index), join(p, f.Key), join(key, f.Key), fn)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			visit(v.Index(i), fmt.Sprintf("%s[%d]", p, i), key+"[]", fn)
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			k := iter.Key().String()
			fn(join(p, k), key+".(key)", k)
			visit(iter.Value(), join(p, k), key+".*", fn)
		}
	}
}

// checkFields applies fieldRules to every string of the document and
// returns the paths whose value broke its rule.
func (v *validator) checkFields() map[string]bool {
	bad := map[string]bool{}
	visit(reflect.ValueOf(v.d.Cluster).Elem(), "", "", func(p, key, s string) {
		r, ok := fieldRules[key]
		if !ok || (s == "" && !v.d.Has(p)) {
			// An enum, checked while parsing (TestFieldRules keeps this
			// so), or a default ApplyDefaults could not derive from an
			// invalid field (the gateway from nodeCIDR, say), reported
			// there.
			return
		}
		if msg := r.check(s); msg != "" {
			v.errf(p, "%s", msg)
			bad[p] = true
		}
	})
	return bad
}

// explicitZero is a field the file sets to its zero value: "", 0 or [].
type explicitZero struct {
	path string
	v    reflect.Value
}

// explicitZeros lists the fields the file sets to their zero value, before
// ApplyDefaults fills them; reportDefaulted then names those it filled. A
// spec that says `domain: ""` or `dns: []` means something, and silently
// getting example.com or the gateway is not it.
func (d *Document) explicitZeros() []explicitZero {
	var out []explicitZero
	var walk func(v reflect.Value, p string)
	walk = func(v reflect.Value, p string) {
		switch v.Kind() {
		case reflect.Struct:
			for _, f := range Fields(v.Type()) {
				walk(v.Field(f.Index), join(p, f.Key))
			}
			return
		case reflect.Slice:
			if v.Type().Elem().Kind() == reflect.Struct {
				for i := 0; i < v.Len(); i++ {
					walk(v.Index(i), fmt.Sprintf("%s[%d]", p, i))
				}
				return
			}
		}
		if n, ok := d.pos[p]; ok && !(n.Kind == yaml.ScalarNode && n.Tag == "!!null") && isEmpty(v) {
			out = append(out, explicitZero{p, v})
		}
	}
	walk(reflect.ValueOf(d.Cluster).Elem(), "")
	return out
}

func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice, reflect.Map:
		return v.Len() == 0
	}
	return v.IsZero()
}

// reportDefaulted reports the explicit zeros that ApplyDefaults replaced.
func (v *validator) reportDefaulted(zs []explicitZero) {
	for _, z := range zs {
		if isEmpty(z.v) {
			continue
		}
		var def string
		switch z.v.Kind() {
		case reflect.String:
			def = fmt.Sprintf("%q", z.v.String())
		case reflect.Slice:
			def = fmt.Sprintf("%q", z.v.Interface())
		default:
			def = fmt.Sprint(z.v.Interface())
		}
		v.errf(z.path, "is empty; leave the field out for the default %s", def)
	}
}
