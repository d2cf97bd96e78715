package spec

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestSchemaDefaults (issue 16, point 9): every default the schema states
// is what ApplyDefaults gives a spec that leaves the field out, and every
// field the reference documents a fixed default of has one in the schema;
// the values validate refuses (vmid below 100, a bad name or version) are
// refused by the schema's minimum and patterns too.
func TestSchemaDefaults(t *testing.T) {
	data, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	doc := loadBase(t)
	ApplyDefaults(doc.Cluster)
	n := 0
	var walk func(s map[string]any, v reflect.Value, path string)
	walk = func(s map[string]any, v reflect.Value, path string) {
		props, _ := s["properties"].(map[string]any)
		for _, f := range Fields(v.Type()) {
			p, _ := props[f.Key].(map[string]any)
			fp := join(path, f.Key)
			if def, ok := p["default"]; ok {
				n++
				got, _ := json.Marshal(v.Field(f.Index).Interface())
				want, _ := json.Marshal(def)
				if !doc.Has(fp) && string(got) != string(want) {
					t.Errorf("%s: the schema's default is %s, ApplyDefaults gives %s", fp, want, got)
				}
			} else if strings.Contains(f.Doc, "Default ") && !strings.Contains(f.Doc, "Default:") && !strings.Contains(f.Doc, "(") && f.Type.Kind() != reflect.Struct {
				t.Errorf("%s: the reference states a default (%q), the schema has none", fp, f.Doc)
			}
			if f.Type.Kind() == reflect.Struct {
				walk(p, v.Field(f.Index), fp)
			}
		}
	}
	walk(root, reflect.ValueOf(doc.Cluster).Elem(), "")
	if n < 15 {
		t.Errorf("only %d defaults in the schema", n)
	}

	node := root["properties"].(map[string]any)["spec"].(map[string]any)["properties"].(map[string]any)["nodes"].(map[string]any)["items"].(map[string]any)["properties"].(map[string]any)
	if vmid := node["vmid"].(map[string]any); fmt.Sprintf("%.0f %.0f", vmid["minimum"], vmid["maximum"]) != "100 999999999" {
		t.Errorf("vmid: minimum %v, maximum %v", vmid["minimum"], vmid["maximum"])
	}
	if name := node["name"].(map[string]any); name["pattern"] != dnsLabelRE.String() {
		t.Errorf("node name pattern %v", name["pattern"])
	}
}

// loadBase parses testdata/base.yaml, a minimal valid spec.
func loadBase(t *testing.T) *Document {
	t.Helper()
	data, err := os.ReadFile("testdata/base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := Parse("base.yaml", "testdata", data)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}
