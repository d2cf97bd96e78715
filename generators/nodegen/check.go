package nodegen

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/hardway-dev/hardway/spec"
)

// Check refuses a spec whose strings the generators cannot write safely,
// whatever validation (spec/) decided: it is the generators' own line of
// defence, so that a rule missing there or a spec built in Go cannot put a
// command, a path or an extra line into an output. Every string of the spec
// must be one line of printable text; an enum field (hw:"enum=...") one of
// its values; and the fields in checkRules, which land in file names and in
// files that have no quoting (Proxmox and LXC configuration, ifupdown,
// networkd, hosts, HAProxy, keepalived), what their rule says. What can be
// quoted is quoted as well, where it is written (templates/quote.go).
// The errors name the field: "spec.proxmox.bridge: ...".
func Check(c *spec.Cluster) error {
	var errs []error
	walk(reflect.ValueOf(c).Elem(), "", "", nil, func(path, pattern string, enum []string, s string) {
		if err := checkString(pattern, enum, s); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q %w", path, s, err))
		}
	})
	return errors.Join(errs...)
}

// Check checks x's spec (see the function Check), once per Context: every
// generator and emitter calls it before it writes, and the spec of a
// Context does not change once it is in use (a run makes one Context and
// then a tree per node; checking the whole spec per node would make a run
// quadratic in the nodes).
func (x *Context) Check() error {
	x.checked.Do(func() { x.checkErr = Check(x.C) })
	return x.checkErr
}

// checkRule is what a field must hold.
type checkRule struct {
	what string // completes "is not ..."
	ok   func(string) bool
}

// optional accepts "" besides what r accepts.
func optional(r checkRule) checkRule {
	return checkRule{r.what + " (or empty)", func(s string) bool { return s == "" || r.ok(s) }}
}

var (
	// Compiled on first use: a command that writes nothing does not pay
	// for them (~3 ms and 3,600 allocations, the {0,252} repeat most).
	wordRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,252}$`)
	})
	dnsLabelRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	})

	// word is a name that is a file name, a shell word, a systemd word and a
	// token of every configuration syntax: no separator, no quote, no "/",
	// not "." or ".." or a hidden file, no leading "-" that reads as an option.
	word = checkRule{"a name of letters, digits, '.', '_' and '-' not starting with '.' or '-'", IsWord}
	// The network values are rendered as written, so they must parse, and
	// without an IPv6 zone, whose text could be anything.
	ipAddr   = checkRule{"an IP address", isAddr}
	ipPrefix = checkRule{"an IP address with a prefix length", isPrefix}
	dnsName  = checkRule{"a DNS name", isDNSName}
	sanName  = checkRule{"a DNS name, a wildcard DNS name or an IP address", func(s string) bool {
		return isAddr(s) || isDNSName(strings.TrimPrefix(s, "*."))
	}}
)

// checkRules are the fields with a rule, by path ("[]" for any index).
var checkRules = map[string]checkRule{
	"metadata.name":                word,
	"spec.kubernetesVersion":       word,
	"spec.domain":                  dnsName,
	"spec.clusterDomain":           dnsName,
	"spec.network.nodeCIDR":        ipPrefix,
	"spec.network.gateway":         ipAddr,
	"spec.network.dns[]":           ipAddr,
	"spec.network.podCIDR":         ipPrefix,
	"spec.network.serviceCIDR":     ipPrefix,
	"spec.network.clusterDNS":      ipAddr,
	"spec.apiServer.vip":           optional(ipAddr),
	"spec.apiServer.extraSANs[]":   sanName,
	"spec.proxmox.bridge":          word,
	"spec.proxmox.storage":         word,
	"spec.proxmox.templateStorage": word,
	"spec.proxmox.snippetsStorage": word,
	"spec.nodes[].name":            word,
	"spec.nodes[].address":         ipPrefix,
}

// IsWord reports whether s is a name that can be written anywhere as it is:
// a file name, a shell word, a systemd word and a token of every
// configuration syntax (letters, digits, '.', '_' and '-', not starting
// with '.' or '-', at most 253 characters).
func IsWord(s string) bool { return wordRE().MatchString(s) }

// checkString checks one string of the spec; pattern is its path with "[]"
// for indexes, enum its field's allowed values (none if nil).
func checkString(pattern string, enum []string, s string) error {
	if !utf8.ValidString(s) {
		return errors.New("is not UTF-8 text")
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return fmt.Errorf("holds the control character %U: no generated file may take it", r)
		}
	}
	if len(enum) > 0 && s != "" && !slices.Contains(enum, s) {
		return fmt.Errorf("is not one of %s", strings.Join(enum, ", "))
	}
	if r, ok := checkRules[pattern]; ok && !r.ok(s) {
		return fmt.Errorf("is not %s: hardway writes it where it cannot be quoted", r.what)
	}
	return nil
}

// walk calls visit for every string in v (structs by their YAML keys, then
// slices, arrays and maps in order), with its path, its pattern and the
// enum of the field it belongs to.
func walk(v reflect.Value, path, pattern string, enum []string, visit func(path, pattern string, enum []string, s string)) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walk(v.Elem(), path, pattern, enum, visit)
		}
	case reflect.String:
		visit(path, pattern, enum, v.String())
	case reflect.Struct:
		// Every field of the spec has a YAML key (spec.Fields); the
		// spec's types hold nothing else.
		for _, f := range spec.Fields(v.Type()) {
			key := f.Key
			if path != "" {
				key = "." + key
			}
			walk(v.Field(f.Index), path+key, pattern+key, f.Enum, visit)
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			walk(v.Index(i), path+"["+strconv.Itoa(i)+"]", pattern+"[]", enum, visit)
		}
	case reflect.Map:
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
		for _, k := range keys {
			p := path + "[" + strconv.Quote(fmt.Sprint(k)) + "]"
			walk(k, p, pattern+"[key]", nil, visit)
			walk(v.MapIndex(k), p, pattern+"[]", enum, visit)
		}
	}
}

func isAddr(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Zone() == ""
}

func isPrefix(s string) bool {
	_, err := netip.ParsePrefix(s)
	return err == nil
}

// isDNSName reports whether s is labels of letters, digits and inner '-'
// joined by dots, at most 253 characters. spec/rules.go has the same rule;
// it is written again here on purpose: this check is the line of defence
// that holds when validation's rules are wrong, so it shares none of them.
func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !dnsLabelRE().MatchString(l) {
			return false
		}
	}
	return true
}
