package kubeconfig

import (
	"slices"
	"testing"

	"github.com/hardway-dev/hardway/spec"
)

// TestAdminAPI: admin's kubeconfig for use off the controllers reaches the
// API through the VIP, or the first controller without one, with admin's
// certificate; admin itself stays on the controller's loopback.
func TestAdminAPI(t *testing.T) {
	for _, c := range []struct{ example, want string }{
		{"../examples/mixed.yaml", "https://192.168.50.10:6443"},
		{"../examples/seed-kvm.yaml", ""},
	} {
		doc, err := spec.LoadFile(c.example)
		if err != nil {
			t.Fatal(err)
		}
		doc.Validate(spec.Options{})
		cl := doc.Cluster
		set := Set(cl)
		i := slices.IndexFunc(set, func(k Kubeconfig) bool { return k.Name == "admin-api" })
		if i < 0 {
			t.Fatalf("%s: no admin-api kubeconfig", c.example)
		}
		want := c.want
		if want == "" {
			cp := cl.NodesWith(spec.RoleController)[0]
			want = "https://" + cp.IP().String() + ":6443"
		}
		if got := set[i].URL(cl); got != want || set[i].Cert != "admin" {
			t.Errorf("%s: admin-api is %s with %s, want %s with admin", c.example, got, set[i].Cert, want)
		}
		if set[0].Name != "admin" || set[0].URL(cl) != "https://127.0.0.1:6443" {
			t.Errorf("%s: admin is %s", c.example, set[0].URL(cl))
		}
	}
}
