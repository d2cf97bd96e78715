package spec

import (
	"encoding/json"
	"reflect"
)

// Schema returns a JSON Schema (draft 2020-12) of the Cluster document,
// generated from the Go types and their tags, for yaml-language-server.
func Schema() ([]byte, error) {
	s := schemaOf(reflect.TypeOf(Cluster{}), "", schemaDefaults())
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["$id"] = "https://hardway.dev/schemas/v1alpha1/cluster.json"
	s["title"] = "hardway Cluster (" + APIVersion + ")"
	out, err := json.MarshalIndent(s, "", "  ")
	return append(out, '\n'), err
}

// schemaOf is the schema of a value of type t at document path path (in
// fieldRules' notation), whose rules' patterns and defaults (by path) it
// carries.
func schemaOf(t reflect.Type, path string, defaults map[string]any) map[string]any {
	switch t.Kind() {
	case reflect.Struct:
		props := map[string]any{}
		var required []string
		for _, f := range Fields(t) {
			p := schemaOf(f.Type, join(path, f.Key), defaults)
			if f.Doc != "" {
				p["description"] = f.Doc
			}
			if d, ok := defaults[join(path, f.Key)]; ok {
				p["default"] = d
			}
			if len(f.Enum) > 0 {
				target := p
				if f.Type.Kind() == reflect.Slice {
					target = p["items"].(map[string]any)
				}
				target["enum"] = f.Enum
			}
			if f.Range {
				p["minimum"], p["maximum"] = f.Min, f.Max
			}
			props[f.Key] = p
			if f.Required {
				required = append(required, f.Key)
			}
		}
		s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if len(required) > 0 {
			s["required"] = required
		}
		return s
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem(), path+"[]", defaults)}
	case reflect.Map:
		s := map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem(), path+".*", defaults)}
		if r, ok := fieldRules[path+".(key)"]; ok && r.pattern != "" {
			s["propertyNames"] = map[string]any{"pattern": r.pattern}
		}
		return s
	case reflect.Int:
		return map[string]any{"type": "integer"}
	default:
		s := map[string]any{"type": "string"}
		if r, ok := fieldRules[path]; ok && r.pattern != "" {
			s["pattern"] = r.pattern
		}
		return s
	}
}

// schemaDefaults are the defaults ApplyDefaults gives a field whatever the
// rest of the spec says, by path: it fills in specs that differ in
// everything a default derives from (nodeCIDR: the gateway and DNS;
// serviceCIDR: the cluster DNS address; a node's roles and target: its
// size and boot), and keeps the values it filled in alike every time.
func schemaDefaults() map[string]any {
	fill := func(nodeCIDR, serviceCIDR string) reflect.Value {
		c := &Cluster{}
		c.Spec.Network.NodeCIDR, c.Spec.Network.ServiceCIDR = nodeCIDR, serviceCIDR
		c.Spec.Nodes = []Node{
			{Roles: []string{RoleWorker}, Target: TargetLXC},
			{Roles: []string{RoleController}, Target: TargetKVM},
			{Roles: []string{RoleEtcd}, Target: TargetKVM, Boot: BootIgnition},
		}
		ApplyDefaults(c)
		return reflect.ValueOf(c).Elem()
	}
	base := fill("10.240.0.0/24", "")
	out := map[string]any{}
	constantDefaults(base, nil, "", out)
	delete(out, "spec.network.nodeCIDR") // required: an input, not a default
	// Each variant sets one input (not compared there) and changes what
	// derives from it.
	for _, variant := range []struct {
		input string
		v     reflect.Value
	}{
		{"spec.network.nodeCIDR", fill("192.168.0.0/16", "")},
		{"spec.network.serviceCIDR", fill("10.240.0.0/24", "10.96.0.0/12")},
	} {
		same := map[string]any{}
		constantDefaults(base, []reflect.Value{variant.v}, "", same)
		for k := range out {
			if _, ok := same[k]; !ok && k != variant.input {
				delete(out, k)
			}
		}
	}
	return out
}

// constantDefaults adds to out, by path, every non-zero value of v that is
// the same in each of others; the items of a list must agree among
// themselves too.
func constantDefaults(v reflect.Value, others []reflect.Value, path string, out map[string]any) {
	switch v.Kind() {
	case reflect.Struct:
		for _, f := range Fields(v.Type()) {
			var fo []reflect.Value
			for _, o := range others {
				fo = append(fo, o.Field(f.Index))
			}
			constantDefaults(v.Field(f.Index), fo, join(path, f.Key), out)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.Struct {
			if v.Len() > 0 && allEqual(v, others) {
				out[path] = v.Interface()
			}
			return
		}
		var items []reflect.Value
		for _, o := range append([]reflect.Value{v}, others...) {
			for i := range o.Len() {
				items = append(items, o.Index(i))
			}
		}
		if len(items) > 0 {
			constantDefaults(items[0], items[1:], path+"[]", out)
		}
	case reflect.String, reflect.Int:
		if !v.IsZero() && allEqual(v, others) {
			out[path] = v.Interface()
		}
	}
}

func allEqual(v reflect.Value, others []reflect.Value) bool {
	for _, o := range others {
		if !reflect.DeepEqual(v.Interface(), o.Interface()) {
			return false
		}
	}
	return true
}
