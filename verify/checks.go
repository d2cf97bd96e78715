package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// check is one row of the smoke test: a name and a function returning the
// row's detail, or why it fails.
type check struct {
	name string
	run  func(context.Context, *run) (string, error)
}

// checks are the rows, in order: those of Kubernetes The Hard Way's smoke
// test, as they apply to a control plane without workers.
var checks = []check{
	{"etcd members healthy over TLS", checkEtcd},
	{"kube-apiserver /livez and /readyz", checkAPIServers},
	{"admin and super-admin kubeconfigs", checkAdmins},
	{"controller-manager and scheduler leaders", checkLeaders},
	{"Secrets encrypted at rest", checkEncryption},
	{"kubelet and kube-proxy identities", checkIdentities},
	{"bootstrap manifests (RBAC)", checkBootstrap},
	{"kubeadm certs check-expiration", checkKubeadm},
	{"kubernetes service endpoints", checkService},
}

// rowTimeout bounds one check.
const rowTimeout = 45 * time.Second

// permanentError ends a poll: waiting will not fix it.
type permanentError struct{ error }

// unlessRetryable marks an API error permanent unless it may heal by
// waiting (not found yet, server busy or unreachable for a moment).
func unlessRetryable(err error) error {
	if err == nil || apierrors.IsNotFound(err) || apierrors.IsServerTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsTimeout(err) {
		return err
	}
	return permanentError{err}
}

// runChecks runs every row and prints the table.
func (v *run) runChecks(ctx context.Context) {
	rows := checks
	if len(v.workers) > 0 {
		rows = append(slices.Clip(rows), workerChecks...)
	}
	for i, c := range rows {
		if ctx.Err() != nil {
			v.rep.Rows = append(v.rep.Rows, Row{N: i + 1, Name: c.name, Detail: "not run: interrupted"})
			continue
		}
		timeout := rowTimeout
		if i >= len(checks) {
			timeout = workerRowTimeout
			if len(v.containers) == 0 {
				v.rep.Rows = append(v.rep.Rows, Row{N: i + 1, Name: c.name, Detail: "not run: no worker booted"})
				continue
			}
		}
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, timeout)
		detail, err := c.run(rctx, v)
		cancel()
		row := Row{N: i + 1, Name: c.name, Pass: err == nil, Detail: detail, Took: time.Since(start)}
		if err != nil {
			row.Detail = err.Error()
		}
		v.rep.Rows = append(v.rep.Rows, row)
		v.log.Debug("check", "row", row.N, "pass", row.Pass, "detail", row.Detail)
	}
	fmt.Fprintln(v.o.Out)
	v.rep.WriteTable(v.o.Out)
	fmt.Fprintln(v.o.Out)
}

// poll calls f until it succeeds, fails for good (a permanent error) or ctx
// ends, and returns f's last error.
func poll(ctx context.Context, every time.Duration, f func() error) error {
	for {
		err := f()
		var p permanentError
		if err == nil {
			return nil
		}
		if errors.As(err, &p) {
			return p.error
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(every):
		}
	}
}
