package manifests_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/hardway-dev/hardway/generators/manifests"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/pki"
	"github.com/hardway-dev/hardway/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// load returns a context for ../../examples/<name>. The manifests read only
// the spec and the PKI plan (subjects), never key material, so no PKI is issued.
func load(t *testing.T, name string) *nodegen.Context {
	t.Helper()
	doc, err := spec.LoadFile("../../examples/" + name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	if errs := doc.Validate(spec.Options{}).Errors(); len(errs) > 0 {
		t.Fatalf("validate %s: %v", name, errs)
	}
	return nodegen.New(doc.Cluster, &pki.Bundle{Plan: pki.Plan(doc.Cluster)})
}

// objects is every object of a cluster's manifests, decoded strictly into
// its k8s.io/api type, keyed by "Kind/namespace/name".
type objects map[string]any

// newObject returns an empty typed object for a kind the manifests may hold.
func newObject(kind string) any {
	switch kind {
	case "ClusterRole":
		return &rbacv1.ClusterRole{}
	case "ClusterRoleBinding":
		return &rbacv1.ClusterRoleBinding{}
	case "ServiceAccount":
		return &corev1.ServiceAccount{}
	case "ConfigMap":
		return &corev1.ConfigMap{}
	case "Service":
		return &corev1.Service{}
	case "Deployment":
		return &appsv1.Deployment{}
	}
	return nil
}

func decode(t *testing.T, x *nodegen.Context) objects {
	t.Helper()
	files, err := manifests.Files(x)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	out := objects{}
	for _, f := range files {
		names = append(names, f.Path)
		if f.Mode != 0o644 || f.Kind != "manifest" || f.Node != "" {
			t.Errorf("%s: mode %04o kind %q node %q, want 0644 manifest for no node", f.Path, f.Mode, f.Kind, f.Node)
		}
		for i, doc := range bytes.Split(f.Data, []byte("\n---\n")) {
			var meta struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Metadata   struct {
					Name      string `json:"name"`
					Namespace string `json:"namespace"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal(doc, &meta); err != nil {
				t.Fatalf("%s #%d: %v", f.Path, i, err)
			}
			obj := newObject(meta.Kind)
			if obj == nil {
				t.Fatalf("%s #%d: unexpected kind %q", f.Path, i, meta.Kind)
			}
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Errorf("%s #%d (%s %s): %v", f.Path, i, meta.Kind, meta.Metadata.Name, err)
			}
			key := meta.Kind + "/" + meta.Metadata.Namespace + "/" + meta.Metadata.Name
			if _, dup := out[key]; dup {
				t.Errorf("%s defined twice", key)
			}
			out[key] = obj
		}
	}
	want := []string{"manifests/00-apiserver-to-kubelet.yaml", "manifests/01-cluster-admins.yaml", "manifests/10-coredns.yaml"}
	if !slices.Equal(names, want) {
		t.Errorf("files %q, want %q", names, want)
	}
	return out
}

func get[T any](t *testing.T, o objects, key string) T {
	t.Helper()
	v, ok := o[key]
	if !ok {
		t.Fatalf("no %s", key)
	}
	return v.(T)
}

func TestAPIServerToKubelet(t *testing.T) {
	o := decode(t, load(t, "seed-lxc.yaml"))
	cr := get[*rbacv1.ClusterRole](t, o, "ClusterRole//system:kube-apiserver-to-kubelet")
	if len(cr.Rules) != 1 {
		t.Fatalf("rules %+v", cr.Rules)
	}
	r := cr.Rules[0]
	res := slices.Clone(r.Resources)
	slices.Sort(res)
	if !slices.Equal(res, []string{"nodes/log", "nodes/metrics", "nodes/proxy", "nodes/spec", "nodes/stats"}) || !slices.Equal(r.APIGroups, []string{""}) || !slices.Equal(r.Verbs, []string{"*"}) {
		t.Errorf("rule %+v", r)
	}
	crb := get[*rbacv1.ClusterRoleBinding](t, o, "ClusterRoleBinding//system:kube-apiserver-to-kubelet")
	// The CN of the apiserver's kubelet client certificate, as kubeadm names it.
	wantSubj := []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "kube-apiserver-kubelet-client"}}
	if !slices.Equal(crb.Subjects, wantSubj) || crb.RoleRef.Kind != "ClusterRole" || crb.RoleRef.Name != "system:kube-apiserver-to-kubelet" {
		t.Errorf("binding %+v → %+v", crb.Subjects, crb.RoleRef)
	}
}

func TestClusterAdmins(t *testing.T) {
	o := decode(t, load(t, "mixed.yaml"))
	crb := get[*rbacv1.ClusterRoleBinding](t, o, "ClusterRoleBinding//kubeadm:cluster-admins")
	wantSubj := []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "Group", Name: "kubeadm:cluster-admins"}}
	if !slices.Equal(crb.Subjects, wantSubj) || crb.RoleRef.Kind != "ClusterRole" || crb.RoleRef.Name != "cluster-admin" {
		t.Errorf("binding %+v → %+v", crb.Subjects, crb.RoleRef)
	}
}

// TestCoreDNS checks the CoreDNS objects against the specs, by hand.
func TestCoreDNS(t *testing.T) {
	for _, c := range []struct {
		spec, clusterIP, domain, upstream string
	}{
		{"seed-lxc.yaml", "10.32.0.10", "cluster.local", "10.240.0.2"},
		// mixed sets no clusterDNS: the 10th address of 10.96.0.0/16.
		{"mixed.yaml", "10.96.0.10", "k8s.internal", "192.168.50.1"},
	} {
		t.Run(c.spec, func(t *testing.T) {
			o := decode(t, load(t, c.spec))
			svc := get[*corev1.Service](t, o, "Service/kube-system/kube-dns")
			if svc.Spec.ClusterIP != c.clusterIP {
				t.Errorf("kube-dns clusterIP %s, want %s", svc.Spec.ClusterIP, c.clusterIP)
			}
			if svc.Spec.Selector["k8s-app"] != "kube-dns" {
				t.Errorf("selector %v", svc.Spec.Selector)
			}
			var ports []string
			for _, p := range svc.Spec.Ports {
				ports = append(ports, fmt.Sprintf("%s %s/%d", p.Name, p.Protocol, p.Port))
			}
			slices.Sort(ports)
			if !slices.Equal(ports, []string{"dns UDP/53", "dns-tcp TCP/53", "metrics TCP/9153"}) {
				t.Errorf("ports %v", ports)
			}

			cm := get[*corev1.ConfigMap](t, o, "ConfigMap/kube-system/coredns")
			cf := cm.Data["Corefile"]
			for _, line := range []string{"kubernetes " + c.domain + " in-addr.arpa ip6.arpa {", "forward . " + c.upstream + " {", "ready", "health {"} {
				if !strings.Contains(cf, "\n    "+line+"\n") {
					t.Errorf("Corefile lacks %q:\n%s", line, cf)
				}
			}

			d := get[*appsv1.Deployment](t, o, "Deployment/kube-system/coredns")
			ps := d.Spec.Template.Spec
			if len(ps.Containers) != 1 {
				t.Fatalf("%d containers", len(ps.Containers))
			}
			ct := ps.Containers[0]
			if ct.Image != "registry.k8s.io/coredns/coredns:v1.12.1" || ct.ImagePullPolicy != corev1.PullIfNotPresent {
				t.Errorf("image %s pull %s", ct.Image, ct.ImagePullPolicy)
			}
			if ps.ServiceAccountName != "coredns" || ps.DNSPolicy != corev1.DNSDefault {
				t.Errorf("serviceAccount %q dnsPolicy %q", ps.ServiceAccountName, ps.DNSPolicy)
			}
			if d.Spec.Selector.MatchLabels["k8s-app"] != "kube-dns" || d.Spec.Template.Labels["k8s-app"] != "kube-dns" {
				t.Error("the Deployment's pods do not carry the Service's selector")
			}
			if len(ps.Volumes) != 1 || ps.Volumes[0].ConfigMap == nil || ps.Volumes[0].ConfigMap.Name != "coredns" {
				t.Errorf("volumes %+v", ps.Volumes)
			}
			if ct.Args[len(ct.Args)-1] != "/etc/coredns/Corefile" || ct.VolumeMounts[0].MountPath != "/etc/coredns" {
				t.Errorf("args %v mounts %+v", ct.Args, ct.VolumeMounts)
			}
			get[*corev1.ServiceAccount](t, o, "ServiceAccount/kube-system/coredns")
			crb := get[*rbacv1.ClusterRoleBinding](t, o, "ClusterRoleBinding//system:coredns")
			if crb.RoleRef.Name != "system:coredns" || len(crb.Subjects) != 1 || crb.Subjects[0].Name != "coredns" || crb.Subjects[0].Namespace != "kube-system" {
				t.Errorf("binding %+v → %+v", crb.Subjects, crb.RoleRef)
			}
			get[*rbacv1.ClusterRole](t, o, "ClusterRole//system:coredns")
		})
	}
}

// TestGolden compares seed-lxc's manifests with testdata/golden; update
// with `go test -update`.
func TestGolden(t *testing.T) {
	files, err := manifests.Files(load(t, "seed-lxc.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		g := filepath.Join("testdata", "golden", filepath.Base(f.Path))
		if *update {
			if err := os.MkdirAll(filepath.Dir(g), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(g, f.Data, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(g)
		if err != nil {
			t.Fatalf("%v (run go test -update to create it)", err)
		}
		if string(f.Data) != string(want) {
			t.Errorf("%s differs from %s (run go test -update and review the diff):\n%s", f.Path, g, f.Data)
		}
	}
}
