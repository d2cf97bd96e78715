package verify

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	coordv1 "k8s.io/api/coordination/v1"

	"github.com/hardway-dev/hardway/spec"
)

// The failover rows of a booted cluster come last: each stops a node for
// good (as `pct shutdown` would) and measures how long the cluster takes to
// serve again without it.

// failoverTimeout bounds one failover row: the node's shutdown, then the
// lease or VIP moving (a lease lasts 15 s; keepalived moves the VIP within
// a few advertisement intervals).
const failoverTimeout = 4 * time.Minute

// apiReady polls readyz until it answers ok.
func (v *run) apiReady(ctx context.Context, addr netip.AddrPort) error {
	return poll(ctx, 250*time.Millisecond, func() error { return v.readyz(ctx, addr) })
}

// readyz GETs /readyz at addr from the hub once, verified with the bundle's
// CA: nil if it answers ok.
func (v *run) readyz(ctx context.Context, addr netip.AddrPort) error {
	cl, err := v.apiClient()
	if err != nil {
		return permanentError{err}
	}
	return answersOK(ctx, cl, addr, "/readyz")
}

// apiClient is an HTTPS client from the hub that trusts the bundle's CA.
func (v *run) apiClient() (*http.Client, error) {
	pool, err := certPool(filepath.Join(v.o.Dir, "pki", "ca.crt"))
	if err != nil {
		return nil, err
	}
	return httpClient(v.net.Hub, &tls.Config{RootCAs: pool}), nil
}

// answersOK GETs path at addr once with cl: nil if it answers 200 "ok".
func answersOK(ctx context.Context, cl *http.Client, addr netip.AddrPort, path string) error {
	url := "https://" + addr.String() + path
	code, body, err := get(ctx, cl, url)
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", url, err)
	case code != http.StatusOK || body != "ok":
		return fmt.Errorf("%s: %d %s", url, code, lastLine(body))
	}
	return nil
}

// checkVIPFailover: the lb holding the VIP shuts down; another lb takes
// the VIP (keepalived) and the API answers through it again. The detail
// has both times, from the shutdown's start.
func checkVIPFailover(ctx context.Context, v *run) (string, error) {
	lbs := v.guestsWith(spec.RoleLB)
	if v.c.Spec.APIServer.VIP == "" || len(lbs) < 2 {
		return fmt.Sprintf("not applicable: %d lb node(s), VIP %q: nothing to fail over to", len(lbs), v.c.Spec.APIServer.VIP), nil
	}
	old, err := v.vipHolder(ctx)
	if err != nil {
		return "", err
	}
	v.recordPeaks()
	start := time.Now()
	if err := old.poweroff(90 * time.Second); err != nil {
		return "", err
	}
	stopped := time.Since(start)
	holder, err := v.vipHolder(ctx)
	if err != nil {
		return "", fmt.Errorf("after %s stopped: %w", old.info().name, err)
	}
	moved := time.Since(start)
	if err := v.apiReady(ctx, v.endpoint); err != nil {
		return "", fmt.Errorf("VIP on %s, but the API through it: %w", holder.info().name, err)
	}
	return fmt.Sprintf("%s shut down (%s); VIP on %s after %s, API ready through it after %s",
		old.info().name, round(stopped), holder.info().name, round(moved), round(time.Since(start))), nil
}

// leaderLeases are the leases of the control plane's leader elections.
var leaderLeases = []string{"kube-controller-manager", "kube-scheduler"}

// leaseHolder reads a leader lease and returns its holder, or why it has
// none that renews.
func leaseHolder(ctx context.Context, cs *kube, name string) (string, error) {
	l := &coordv1.Lease{}
	if err := cs.get(ctx, "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/"+name, l); err != nil {
		return "", unlessRetryable(err)
	}
	if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" || l.Spec.RenewTime == nil {
		return "", fmt.Errorf("lease kube-system/%s has no holder", name)
	}
	d := 15 * time.Second
	if l.Spec.LeaseDurationSeconds != nil {
		d = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	if age := time.Since(l.Spec.RenewTime.Time); age > d {
		return "", fmt.Errorf("lease kube-system/%s held by %s, not renewed for %s", name, *l.Spec.HolderIdentity, age.Round(time.Second))
	}
	return *l.Spec.HolderIdentity, nil
}

// holderNode is the node of a lease holder identity, "<hostname>_<uuid>".
func holderNode(identity string) string {
	host, _, _ := strings.Cut(identity, "_")
	name, _, _ := strings.Cut(host, ".")
	return name
}

// checkControllerFailover: the controller leading kube-controller-manager
// shuts down; the API keeps answering at its endpoint (through the VIP, the
// lbs' health checks dropping the controller) and both leader leases move
// to controllers still up. It picks a controller whose etcd member, if it
// has one, the cluster can lose.
func checkControllerFailover(ctx context.Context, v *run) (string, error) {
	cps := v.guestsWith(spec.RoleController)
	if len(cps) < 2 {
		return fmt.Sprintf("not applicable: %d controller: nothing to fail over to", len(cps)), nil
	}
	etcdMembers := len(v.c.NodesWith(spec.RoleEtcd))
	canStop := func(g guest) bool {
		n, _ := v.c.Node(g.info().name)
		if !n.Has(spec.RoleEtcd) {
			return true
		}
		return etcdMembers-1 > etcdMembers/2 // quorum survives
	}
	// Speak to the API through its endpoint, or, without a VIP, through a
	// controller other than the one to stop.
	addrOf := func(g guest) netip.Addr { n, _ := v.c.Node(g.info().name); return n.IP() }
	endpointFor := func(stop guest) netip.AddrPort {
		if v.c.Spec.APIServer.VIP != "" {
			return v.endpoint
		}
		for _, g := range cps {
			if g != stop {
				return netip.AddrPortFrom(addrOf(g), v.endpoint.Port())
			}
		}
		return v.endpoint
	}
	cs, err := v.clientsetAt("super-admin", endpointFor(nil).Addr())
	if err != nil {
		return "", err
	}
	var leader string
	if err := poll(ctx, time.Second, func() (err error) {
		leader, err = leaseHolder(ctx, cs, leaderLeases[0])
		return err
	}); err != nil {
		return "", err
	}
	var stop guest
	for _, g := range cps {
		if canStop(g) && (stop == nil || g.info().name == holderNode(leader)) {
			stop = g
		}
	}
	if stop == nil {
		return fmt.Sprintf("not applicable: every controller is one of %d etcd members, and etcd would lose its quorum", etcdMembers), nil
	}
	ep := endpointFor(stop)
	if cs, err = v.clientsetAt("super-admin", ep.Addr()); err != nil {
		return "", err
	}
	gone := stop.info().name
	v.recordPeaks()
	start := time.Now()
	// The shutdown runs beside the checks: the API must answer while the
	// controller's units stop (its apiserver may take a minute to drain
	// its watches), not only once it is gone.
	done := make(chan error, 1)
	var stopTook time.Duration
	go func() {
		err := stop.poweroff(90 * time.Second)
		stopTook = time.Since(start)
		done <- err
	}()
	// Every way out waits for the shutdown: the guest is gone after the row.
	stopped := sync.OnceValue(func() error { return <-done })
	defer stopped()
	if err := v.apiReady(ctx, ep); err != nil {
		return "", fmt.Errorf("after %s began to shut down: %w", gone, err)
	}
	api := time.Since(start)
	var moved []string
	for _, name := range leaderLeases {
		var holder string
		err := poll(ctx, time.Second, func() (err error) {
			if holder, err = leaseHolder(ctx, cs, name); err == nil && holderNode(holder) == gone {
				err = fmt.Errorf("lease kube-system/%s still held by %s", name, holder)
			}
			return err
		})
		if err != nil {
			return "", err
		}
		if !slices.Contains(names(cps), holderNode(holder)) {
			return "", fmt.Errorf("lease kube-system/%s held by %s, not a controller", name, holder)
		}
		moved = append(moved, fmt.Sprintf("%s by %s after %s", name, holderNode(holder), round(time.Since(start))))
	}
	if err := stopped(); err != nil {
		return "", err
	}
	// By now the lbs' health checks have long dropped the stopped
	// controller: every request through the endpoint must succeed.
	const requests = 10
	for i := range requests {
		if err := v.readyz(ctx, ep); err != nil {
			return "", fmt.Errorf("request %d of %d at %s after %s stopped: %w", i+1, requests, ep, gone, err)
		}
	}
	return fmt.Sprintf("%s (led %s) shut down in %s; API ready at %s %s after the shutdown began; %s; then %d of %d requests ok",
		gone, holderNode(leader), round(stopTook), ep, round(api), strings.Join(moved, ", "), requests, requests), nil
}
