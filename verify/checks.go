package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/hardway-dev/hardway/spec"
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

// unlessRetryable marks an API error permanent unless the object is not
// found yet, which a poll waits to appear. A server busy or unreachable for
// a moment the kube client has already waited out (retry) by the time its
// error gets here.
func unlessRetryable(err error) error {
	if err == nil || apierrors.IsNotFound(err) {
		return err
	}
	return permanentError{err}
}

// runChecks runs every row and prints the table: the control plane's, then
// the booted workers' (or, with every node booted, runBootRows).
func (v *run) runChecks(ctx context.Context) {
	if v.o.Boot {
		v.runBootRows(ctx)
	} else {
		v.runRows(ctx, checks, rowTimeout, "")
		if len(v.booting) > 0 {
			skip := ""
			if len(v.guests) == 0 {
				skip = "not run: no worker booted"
			}
			boot, row := v.workerTimeouts()
			v.runRows(ctx, workerChecks[:1], boot, skip)
			v.runRows(ctx, workerChecks[1:], row, skip)
		}
	}
	fmt.Fprintln(v.o.Out)
	v.rep.WriteTable(v.o.Out)
	fmt.Fprintln(v.o.Out)
}

// runRows runs rows, each within timeout, and adds them to the report;
// with skip set, or once ctx ends, a row is recorded as not run.
func (v *run) runRows(ctx context.Context, rows []check, timeout time.Duration, skip string) {
	for _, c := range rows {
		row := Row{N: len(v.rep.Rows) + 1, Name: c.name, Detail: skip}
		switch {
		case ctx.Err() != nil:
			row.Detail = "not run: interrupted"
		case v.o.FailFast && !v.rep.rowsOK():
			row.Detail = "not run: an earlier row failed (fail fast)"
		}
		if row.Detail == "" {
			start := time.Now()
			rctx, cancel := context.WithTimeout(ctx, timeout)
			detail, err := c.run(rctx, v)
			cancel()
			row.Pass, row.Detail, row.Took = err == nil, detail, time.Since(start)
			if err != nil {
				row.Detail = err.Error()
			}
			v.log.Debug("check", "row", row.N, "pass", row.Pass, "detail", row.Detail)
		}
		v.rep.Rows = append(v.rep.Rows, row)
	}
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

// workerTimeouts bound the first worker row, which includes the boot, and
// each of the others.
func (v *run) workerTimeouts() (boot, row time.Duration) {
	switch {
	case v.o.WorkerTimeout > 0:
		return v.o.WorkerTimeout, v.o.WorkerTimeout
	case slices.Contains(v.bootTargets(), spec.TargetKVM):
		return vmBootTimeout, vmRowTimeout
	}
	return workerRowTimeout, workerRowTimeout
}
