package spec

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// SetPins returns the spec file data with spec.binaries.sha256 set to pins
// (file name → SHA-256), for `hardway pin --write`. It edits the text, not a
// re-encoded document, so that the rest of the file (comments, flow-style
// node lists, blank lines) stays byte for byte: an existing sha256 mapping
// is replaced by a block mapping of pins in name order; without one, the
// mapping is added as the first key of binaries (or binaries, as the first
// key of spec). The result is parsed again and must hold exactly pins.
func SetPins(name string, data []byte, pins map[string]string) ([]byte, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: not a cluster spec (a YAML mapping)", name)
	}
	specKey, specVal := mapGet(root.Content[0], "spec")
	if specVal == nil || specVal.Kind != yaml.MappingNode || specVal.Style&yaml.FlowStyle != 0 || len(specVal.Content) == 0 {
		return nil, fmt.Errorf("%s: no block mapping spec", name)
	}
	lines := strings.SplitAfter(string(data), "\n")
	block := func(indent int, key string) []string {
		pad := strings.Repeat(" ", indent)
		out := []string{pad + key + ":\n"}
		for _, k := range slices.Sorted(maps.Keys(pins)) {
			out = append(out, fmt.Sprintf("%s  %s: %q\n", pad, k, pins[k]))
		}
		return out
	}
	var from, to int // replace lines[from:to] (0-based) with the new lines
	var add []string
	binKey, binVal := mapGet(specVal, "binaries")
	switch {
	case binKey == nil:
		indent := specVal.Content[0].Column - 1
		from, to = specKey.Line, specKey.Line
		add = append([]string{strings.Repeat(" ", indent) + "binaries:\n"}, block(indent+2, "sha256")...)
	case binVal.Kind == yaml.ScalarNode && binVal.Tag == "!!null":
		from, to = binKey.Line, binKey.Line
		add = block(binKey.Column-1+2, "sha256")
	case binVal.Kind == yaml.MappingNode && binVal.Style&yaml.FlowStyle == 0:
		indent := binVal.Content[0].Column - 1
		if k, v := mapGet(binVal, "sha256"); k != nil {
			from, to = k.Line-1, lastLine(v)
		} else {
			from, to = binKey.Line, binKey.Line
		}
		add = block(indent, "sha256")
	default:
		return nil, fmt.Errorf("%s: spec.binaries is not a block mapping: write binaries.sha256 by hand", name)
	}
	out := []byte(strings.Join(slices.Concat(lines[:from], add, lines[to:]), ""))
	doc, err := Parse(name, "", out)
	if err != nil {
		return nil, fmt.Errorf("%s after setting the pins: %w", name, err)
	}
	if got := doc.Cluster.Spec.Binaries.SHA256; !maps.Equal(got, pins) {
		return nil, fmt.Errorf("%s: the edited file holds pins %v, not %v", name, got, pins)
	}
	return out, nil
}

// mapGet returns the key and value nodes of key in mapping m, or nils.
func mapGet(m *yaml.Node, key string) (*yaml.Node, *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

// lastLine is the last line (1-based) a node's text reaches.
func lastLine(n *yaml.Node) int {
	l := n.Line
	for _, c := range n.Content {
		l = max(l, lastLine(c))
	}
	return l
}
