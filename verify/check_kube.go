package verify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hardway-dev/hardway/generators/controller"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/unitfile"
)

// firstController is the first controller of the spec.
func (v *run) firstController() *node {
	return v.byName[v.c.NodesWith(spec.RoleController)[0].Name]
}

// controllers are the controller nodes, in spec order.
func (v *run) controllers() []*node {
	var out []*node
	for _, n := range v.c.NodesWith(spec.RoleController) {
		out = append(out, v.byName[n.Name])
	}
	return out
}

// restConfig loads kubeconfigs/<name>.kubeconfig for use from the hub. A
// server on 127.0.0.1 (the controller's own apiserver) becomes host; only
// that host changes.
func (v *run) restConfig(name string, host netip.Addr) (*rest.Config, error) {
	path := filepath.Join(v.o.Dir, "kubeconfigs", name+".kubeconfig")
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return nil, err
	}
	for _, cl := range cfg.Clusters {
		u, err := url.Parse(cl.Server)
		if err == nil && u.Hostname() == "127.0.0.1" {
			u.Host = net.JoinHostPort(host.String(), u.Port())
			cl.Server = u.String()
		}
	}
	rc, err := clientcmd.NewDefaultClientConfig(*cfg, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	v.dialFromHub(rc)
	return rc, nil
}

// dialFromHub makes a client config connect from the hub namespace.
func (v *run) dialFromHub(rc *rest.Config) {
	rc.Dial = v.net.Hub.DialContext
	rc.Timeout = 15 * time.Second
	rc.WarningHandler = rest.NoWarnings{}
	rc.QPS, rc.Burst = 50, 100
}

// clientset is a client for kubeconfigs/<name>.kubeconfig, against the first
// controller when the kubeconfig names the local apiserver.
func (v *run) clientset(name string) (*kube, error) {
	return v.clientsetAt(name, v.firstController().spec.IP())
}

func (v *run) clientsetAt(name string, host netip.Addr) (*kube, error) {
	rc, err := v.restConfig(name, host)
	if err != nil {
		return nil, err
	}
	return newKube(rc)
}

// checkAPIServers: /livez and /readyz of every apiserver, and of the VIP,
// over TLS verified against the generated cluster CA. An apiserver whose
// unit is active may still be running its post-start hooks (/livez 500,
// seen with a booted controller under load): each endpoint is asked until
// it answers ok within the row's bound, and the detail says who was
// waited for.
func checkAPIServers(ctx context.Context, v *run) (string, error) {
	cl, err := v.apiClient()
	if err != nil {
		return "", err
	}
	var targets []netip.AddrPort
	for _, nd := range v.controllers() {
		targets = append(targets, netip.AddrPortFrom(nd.spec.IP(), v.apiPort(nd)))
	}
	if v.c.Spec.APIServer.VIP != "" {
		targets = append(targets, v.endpoint)
	}
	paths := []string{"/livez", "/readyz"}
	var ok []string
	for _, t := range targets {
		start, tries := time.Now(), 0
		for _, path := range paths {
			err := poll(ctx, 250*time.Millisecond, func() error {
				tries++
				return answersOK(ctx, cl, t, path)
			})
			if err != nil {
				return "", err
			}
		}
		if tries > len(paths) {
			ok = append(ok, fmt.Sprintf("%s (ok after %s)", t, round(time.Since(start))))
		} else {
			ok = append(ok, t.String())
		}
	}
	detail := "ok, verified with pki/ca.crt, on " + strings.Join(ok, ", ")
	if v.c.Spec.APIServer.VIP != "" {
		detail += " (VIP " + v.vipVia + ")"
	}
	return detail, nil
}

// checkAdmins: admin and super-admin list namespaces on every controller and
// create and delete one; an unauthenticated request is refused.
//
// admin's rights come from the kubeadm:cluster-admins binding that the
// bootstrap unit applies; each apiserver's RBAC authorizer sees it through
// its own informer, so a Forbidden right after the bootstrap may be that
// informer's lag (seen under load: the first list 403, the binding there).
// Like kubeadm after creating that binding, the row retries a Forbidden
// until the row's bound; a binding that never comes still fails it.
func checkAdmins(ctx context.Context, v *run) (string, error) {
	names := []string{"admin", "super-admin"}
	start := time.Now()
	var waited []string
	for _, name := range names {
		for _, nd := range v.controllers() {
			cs, err := v.clientsetAt(name, nd.spec.IP())
			if err != nil {
				return "", err
			}
			forbidden := false
			err = poll(ctx, 500*time.Millisecond, func() error {
				err := cs.list(ctx, "/api/v1/namespaces", "", &corev1.NamespaceList{})
				if err != nil && !apierrors.IsForbidden(err) {
					return permanentError{err}
				}
				forbidden = forbidden || err != nil
				return err
			})
			if err != nil {
				return "", fmt.Errorf("%s on %s: list namespaces: %w", name, nd.spec.Name, err)
			}
			if forbidden {
				waited = append(waited, fmt.Sprintf("%s on %s", name, nd.spec.Name))
			}
		}
		cs, err := v.clientset(name)
		if err != nil {
			return "", err
		}
		ns := &corev1.Namespace{}
		in := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "hardway-verify-"}}
		if err := cs.create(ctx, "/api/v1/namespaces", in, ns); err != nil {
			return "", fmt.Errorf("%s: create namespace: %w", name, err)
		}
		if err := cs.remove(ctx, "/api/v1/namespaces/"+ns.Name); err != nil {
			return "", fmt.Errorf("%s: delete namespace %s: %w", name, ns.Name, err)
		}
	}
	refusal, err := v.anonymousRefused(ctx)
	if err != nil {
		return "", err
	}
	detail := fmt.Sprintf("%s listed namespaces on %d controllers (server 127.0.0.1 → each controller), created and deleted one; unauthenticated: %s",
		strings.Join(names, " and "), len(v.controllers()), refusal)
	if len(waited) > 0 {
		detail += fmt.Sprintf("; RBAC reached the authorizer late for %s (Forbidden first, allowed within %s)",
			strings.Join(waited, ", "), time.Since(start).Round(time.Millisecond))
	}
	return detail, nil
}

// anonymousRefused lists namespaces with no credentials; it must get 401 or 403.
func (v *run) anonymousRefused(ctx context.Context) (string, error) {
	rc := &rest.Config{
		Host:            "https://" + netip.AddrPortFrom(v.firstController().spec.IP(), v.apiPort(v.firstController())).String(),
		TLSClientConfig: rest.TLSClientConfig{CAFile: filepath.Join(v.o.Dir, "pki", "ca.crt")},
	}
	v.dialFromHub(rc)
	cs, err := newKube(rc)
	if err != nil {
		return "", err
	}
	err = cs.list(ctx, "/api/v1/namespaces", "", &corev1.NamespaceList{})
	switch {
	case err == nil:
		return "", errors.New("an unauthenticated client listed namespaces")
	case apierrors.IsUnauthorized(err):
		return "401 Unauthorized", nil
	case apierrors.IsForbidden(err):
		return "403 Forbidden", nil
	default:
		return "", fmt.Errorf("unauthenticated request: want 401 or 403, got %w", err)
	}
}

// checkLeaders: the kube-controller-manager and kube-scheduler Leases in
// kube-system are held and renewed, and every instance's /healthz answers.
func checkLeaders(ctx context.Context, v *run) (string, error) {
	cs, err := v.clientset("super-admin")
	if err != nil {
		return "", err
	}
	var holders []string
	for _, name := range leaderLeases {
		var holder string
		err := poll(ctx, 500*time.Millisecond, func() (err error) {
			holder, err = leaseHolder(ctx, cs, name)
			return err
		})
		if err != nil {
			return "", err
		}
		holders = append(holders, fmt.Sprintf("%s by %s", name, holder))
	}
	urls := map[string]int{}
	for _, nd := range v.controllers() {
		for _, c := range []struct {
			unit string
			port int
		}{{controller.ControllerManagerUnit, 10257}, {controller.SchedulerUnit, 10259}} {
			u := healthzURL(nd.argv[c.unit], c.port)
			code, body, err := get(ctx, httpClient(nd.ns, &tls.Config{InsecureSkipVerify: true}), u)
			if err != nil {
				return "", fmt.Errorf("%s %s: %w", nd.spec.Name, u, err)
			}
			if code != http.StatusOK {
				return "", fmt.Errorf("%s %s: %d %s", nd.spec.Name, u, code, lastLine(body))
			}
			urls[strings.TrimSuffix(strings.TrimPrefix(u, "https://"), "/healthz")]++
		}
	}
	var at []string
	for u, n := range urls {
		at = append(at, fmt.Sprintf("%d×%s", n, u))
	}
	slices.Sort(at)
	return fmt.Sprintf("leases held: %s; /healthz ok at %s (--bind-address/--secure-port, in the node's namespace)",
		strings.Join(holders, ", "), strings.Join(at, ", ")), nil
}

// checkIdentities: each kubelet creates and updates its own Node and may
// not touch another's (Node authorizer and NodeRestriction); kube-proxy lists
// Services and EndpointSlices.
func checkIdentities(ctx context.Context, v *run) (string, error) {
	workers := v.c.NodesWith(spec.RoleWorker)
	clients := map[string]*kube{}
	for _, w := range workers {
		cs, err := v.clientset("kubelet-" + w.Name)
		if err != nil {
			return "", err
		}
		clients[w.Name] = cs
		if err := ownNode(ctx, cs, w.Name); err != nil {
			return "", fmt.Errorf("kubelet-%s: %w", w.Name, err)
		}
	}
	for i, w := range workers {
		other := "hardway-verify-other"
		if len(workers) > 1 {
			other = workers[(i+1)%len(workers)].Name
		}
		if err := othersNode(ctx, clients[w.Name], other); err != nil {
			return "", fmt.Errorf("kubelet-%s: %w", w.Name, err)
		}
	}
	kp, err := v.clientset("kube-proxy")
	if err != nil {
		return "", err
	}
	if err := kp.list(ctx, "/api/v1/services", "", &corev1.ServiceList{}); err != nil {
		return "", fmt.Errorf("kube-proxy: list Services: %w", err)
	}
	if err := kp.list(ctx, "/apis/discovery.k8s.io/v1/endpointslices", "", &discoveryv1.EndpointSliceList{}); err != nil {
		return "", fmt.Errorf("kube-proxy: list EndpointSlices: %w", err)
	}
	return fmt.Sprintf("%d kubelets created their own Node and patched its labels, and were forbidden another's; kube-proxy listed Services and EndpointSlices", len(workers)), nil
}

// ownNode creates and updates the kubelet's own Node object.
func ownNode(ctx context.Context, cs *kube, name string) error {
	in := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"hardway.dev/verify": "created"}}}
	if err := cs.create(ctx, "/api/v1/nodes", in, &corev1.Node{}); err != nil {
		return fmt.Errorf("create own Node: %w", err)
	}
	// A patch of the label only: kube-controller-manager taints a new Node
	// at once, and a full update racing it would drop the taint, which
	// NodeRestriction forbids a kubelet.
	patch := []byte(`{"metadata":{"labels":{"hardway.dev/verify":"updated"}}}`)
	if err := cs.mergePatch(ctx, "/api/v1/nodes/"+name, patch, &corev1.Node{}); err != nil {
		return fmt.Errorf("update own Node: %w", err)
	}
	return nil
}

// othersNode tries to create (or, when it exists, update) another node's
// Node object; it must be forbidden.
func othersNode(ctx context.Context, cs *kube, other string) error {
	err := cs.get(ctx, "/api/v1/nodes/"+other, &corev1.Node{})
	switch {
	case err == nil:
		patch := []byte(`{"metadata":{"labels":{"hardway.dev/verify":"hijacked"}}}`)
		err = cs.mergePatch(ctx, "/api/v1/nodes/"+other, patch, &corev1.Node{})
	case apierrors.IsNotFound(err) || apierrors.IsForbidden(err):
		in := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: other}}
		err = cs.create(ctx, "/api/v1/nodes", in, &corev1.Node{})
	}
	if err == nil {
		return fmt.Errorf("allowed to write Node %s", other)
	}
	if !apierrors.IsForbidden(err) {
		return fmt.Errorf("writing Node %s: want Forbidden, got %w", other, err)
	}
	return nil
}

// checkBootstrap: the bootstrap unit applied manifests/; the apiserver's
// kubelet-client identity may use the kubelet API; admin is cluster-admin
// through kubeadm:cluster-admins, not system:masters.
func checkBootstrap(ctx context.Context, v *run) (string, error) {
	if v.bootstrapped != nil {
		return "", fmt.Errorf("bootstrap: %w", v.bootstrapped)
	}
	same, err := v.sameManifests()
	if err != nil {
		return "", err
	}
	cs, err := v.clientset("super-admin")
	if err != nil {
		return "", err
	}
	user, err := v.kubeletClientUser()
	if err != nil {
		return "", err
	}
	if err := kubeletClientRBAC(ctx, cs, user); err != nil {
		return "", err
	}
	admin, err := v.clientset("admin")
	if err != nil {
		return "", err
	}
	groups, err := clusterAdmin(ctx, admin)
	if err != nil {
		return "", fmt.Errorf("admin: %w", err)
	}
	return fmt.Sprintf("%s's %s ran `%s` (%s); system:kube-apiserver-to-kubelet bound to User %s (CN of --kubelet-client-certificate), who may get nodes/proxy; admin (%s) may do * on *",
		v.firstController().spec.Name, controller.BootstrapUnit, v.bootstrapCmd, same, user, strings.Join(groups, ", ")), nil
}

// sameManifests compares the cluster's manifests/ with the first
// controller's copy that the bootstrap unit applies.
func (v *run) sameManifests() (string, error) {
	dir := filepath.Join(v.o.Dir, "manifests")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	nodeDir, err := v.nodeTree(v.firstController().spec.Name, "var", "lib", "kubernetes", "manifests")
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		a, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return "", err
		}
		b, err := os.ReadFile(filepath.Join(nodeDir, e.Name()))
		if err != nil || string(a) != string(b) {
			return "", fmt.Errorf("manifests/%s differs from the first controller's copy in /var/lib/kubernetes/manifests", e.Name())
		}
	}
	return fmt.Sprintf("its %d files = manifests/", len(entries)), nil
}

// kubeletClientUser is the CN of the first apiserver's --kubelet-client-certificate.
func (v *run) kubeletClientUser() (string, error) {
	p, ok := unitfile.Flag(v.firstController().argv[controller.APIServerUnit], "kubelet-client-certificate")
	if !ok {
		return "", errors.New("kube-apiserver has no --kubelet-client-certificate")
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return "", fmt.Errorf("%s: no PEM certificate", p)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return "", err
	}
	return c.Subject.CommonName, nil
}

// kubeletClientRBAC checks the ClusterRole, its binding to user and the
// resulting permission.
func kubeletClientRBAC(ctx context.Context, cs *kube, user string) error {
	const role = "system:kube-apiserver-to-kubelet"
	const rbac = "/apis/rbac.authorization.k8s.io/v1/"
	if err := cs.get(ctx, rbac+"clusterroles/"+role, &rbacv1.ClusterRole{}); err != nil {
		return fmt.Errorf("ClusterRole %s: %w", role, err)
	}
	crbs := &rbacv1.ClusterRoleBindingList{}
	if err := cs.list(ctx, rbac+"clusterrolebindings", "", crbs); err != nil {
		return err
	}
	bound := false
	for _, b := range crbs.Items {
		if b.RoleRef.Kind != "ClusterRole" || b.RoleRef.Name != role {
			continue
		}
		for _, s := range b.Subjects {
			bound = bound || (s.Kind == "User" && s.Name == user)
		}
	}
	if !bound {
		return fmt.Errorf("no ClusterRoleBinding binds %s to User %s", role, user)
	}
	sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User:               user,
		ResourceAttributes: &authzv1.ResourceAttributes{Verb: "get", Resource: "nodes", Subresource: "proxy"},
	}}
	if err := cs.create(ctx, "/apis/authorization.k8s.io/v1/subjectaccessreviews", sar, sar); err != nil {
		return err
	}
	if !sar.Status.Allowed {
		return fmt.Errorf("User %s may not get nodes/proxy: %s", user, sar.Status.Reason)
	}
	return nil
}

// clusterAdmin checks that the client is cluster-admin by RBAC and not by
// system:masters; it returns the client's groups.
func clusterAdmin(ctx context.Context, cs *kube) ([]string, error) {
	ssr := &authnv1.SelfSubjectReview{}
	if err := cs.create(ctx, "/apis/authentication.k8s.io/v1/selfsubjectreviews", ssr, ssr); err != nil {
		return nil, err
	}
	groups := ssr.Status.UserInfo.Groups
	if !slices.Contains(groups, "kubeadm:cluster-admins") || slices.Contains(groups, "system:masters") {
		return nil, fmt.Errorf("groups %v: want kubeadm:cluster-admins and not system:masters", groups)
	}
	ssar := &authzv1.SelfSubjectAccessReview{Spec: authzv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authzv1.ResourceAttributes{Verb: "*", Group: "*", Resource: "*"},
	}}
	if err := cs.create(ctx, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", ssar, ssar); err != nil {
		return nil, err
	}
	if !ssar.Status.Allowed {
		return nil, fmt.Errorf("may not do * on *: %s", ssar.Status.Reason)
	}
	return groups, nil
}

// checkService: the kubernetes Service has the first service IP and the
// controllers' addresses as EndpointSlice endpoints.
func checkService(ctx context.Context, v *run) (string, error) {
	cs, err := v.clientset("super-admin")
	if err != nil {
		return "", err
	}
	svc := &corev1.Service{}
	if err := cs.get(ctx, "/api/v1/namespaces/default/services/kubernetes", svc); err != nil {
		return "", err
	}
	if want := v.c.FirstServiceIP().String(); svc.Spec.ClusterIP != want {
		return "", fmt.Errorf("service kubernetes has ClusterIP %s, want %s", svc.Spec.ClusterIP, want)
	}
	var want []string
	for _, nd := range v.controllers() {
		want = append(want, netip.AddrPortFrom(nd.spec.IP(), v.apiPort(nd)).String())
	}
	slices.Sort(want)
	var got []string
	err = poll(ctx, time.Second, func() error {
		got, err = endpoints(ctx, cs)
		if err != nil {
			return unlessRetryable(err)
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("EndpointSlices of service kubernetes: %v, want %v", got, want)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("ClusterIP %s; EndpointSlice endpoints %s", svc.Spec.ClusterIP, strings.Join(got, ", ")), nil
}

// endpoints lists the ready addresses:ports of the kubernetes service's EndpointSlices.
func endpoints(ctx context.Context, cs *kube) ([]string, error) {
	sl := &discoveryv1.EndpointSliceList{}
	if err := cs.list(ctx, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", "kubernetes.io/service-name=kubernetes", sl); err != nil {
		return nil, err
	}
	var got []string
	for _, s := range sl.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			for _, a := range e.Addresses {
				for _, p := range s.Ports {
					if p.Port != nil {
						got = append(got, net.JoinHostPort(a, fmt.Sprint(*p.Port)))
					}
				}
			}
		}
	}
	slices.Sort(got)
	return slices.Compact(got), nil
}
