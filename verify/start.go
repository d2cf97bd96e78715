package verify

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hardway-dev/hardway/generators/controller"
	"github.com/hardway-dev/hardway/generators/lb"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/unitfile"
)

// readyFunc probes once whether a started component serves.
type readyFunc func(ctx context.Context, v *run, nd *node, argv []string) error

// start runs the start stages and the bootstrap; a failed stage skips the
// later ones (the checks still run and report what does not work).
func (v *run) start(ctx context.Context) {
	for _, s := range startStages {
		if v.failed || ctx.Err() != nil {
			v.skip(s.name, "an earlier phase failed or verify was interrupted")
			continue
		}
		if err := v.phase(s.name, func() (string, error) { return v.startStage(ctx, s.stage, s.timeout) }); err != nil {
			v.failed = true
		}
	}
	if v.failed || ctx.Err() != nil {
		v.bootstrapped = errors.New("not run: the control plane did not start")
		v.skip("bootstrap", "the control plane did not start")
		return
	}
	v.bootstrapped = v.phase("bootstrap", func() (string, error) { return v.bootstrap(ctx) })
}

// waiter is one started process and its readiness probe.
type waiter struct {
	nd    *node
	unit  string
	proc  *Proc
	ready readyFunc
}

// startStage starts every process of a stage and waits, up to timeout,
// until each is ready.
func (v *run) startStage(ctx context.Context, stage Stage, timeout time.Duration) (string, error) {
	var ws []waiter
	for _, nd := range v.nodes {
		for _, c := range nd.comps {
			if c.stage != stage {
				continue
			}
			p, err := v.startUnit(nd, c.unit, stage)
			if err != nil {
				return "", err
			}
			ws = append(ws, waiter{nd, c.unit, p, c.ready})
		}
		// HAProxy starts once the apiservers are ready, so that its first
		// health checks pass and the VIP serves at once.
		if stage == StageControllers && nd == v.lb {
			p, err := v.startUnit(nd, lb.HAProxyUnit, stage)
			if err != nil {
				return "", err
			}
			ws = append(ws, waiter{nd, lb.HAProxyUnit, p, haproxyReady})
		}
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	errs := make([]error, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Go(func() { errs[i] = v.waitReady(sctx, w) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return "", fmt.Errorf("interrupted: %w", context.Cause(ctx))
	}
	var names []string
	for _, w := range ws {
		names = append(names, fmt.Sprintf("%s (pid %d)", w.proc.Name, w.proc.PID))
	}
	return strings.Join(names, ", ") + " ready", errors.Join(errs...)
}

// startUnit starts one unit's command in its node's namespace, from the
// node's root directory.
func (v *run) startUnit(nd *node, unit string, stage Stage) (*Proc, error) {
	argv := nd.argv[unit]
	cmd := nd.ns.Command(argv[0], argv[1:]...)
	cmd.Dir = nd.root.Dir
	env, err := v.env(nd, nd.units[unit])
	if err != nil {
		return nil, err
	}
	cmd.Env = env
	name := nd.spec.Name + "/" + logName(unit)
	return v.procs.Start(name, stage, cmd, v.logPath(nd.spec.Name, logName(unit)))
}

// logName is the name of a unit's log and process: the unit's, less ".service".
func logName(unit string) string { return strings.TrimSuffix(unit, ".service") }

// env is a service's environment as systemd gives it: a fixed PATH, HOME
// (under the node's root) and the unit's Environment= assignments.
func (v *run) env(nd *node, u *unitfile.Unit) ([]string, error) {
	home := nd.root.Path("/root")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + home, "LANG=C.UTF-8"}
	if u == nil {
		return env, nil
	}
	vars, err := u.Environment()
	if err != nil {
		return nil, err
	}
	for k, val := range vars {
		env = append(env, k+"="+val)
	}
	return env, nil
}

// waitReady polls a probe until it succeeds, the process exits or ctx ends;
// on failure the error carries the tail of the process's log.
func (v *run) waitReady(ctx context.Context, w waiter) error {
	var last error
	for {
		if done, werr := w.proc.Exited(); done {
			return v.procFailure(w.proc, fmt.Errorf("exited before it was ready: %v", werr))
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		last = w.ready(pctx, v, w.nd, w.nd.argv[w.unit])
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
				return v.procFailure(w.proc, fmt.Errorf("not ready: %v", last))
			}
			return ctx.Err() // interrupted: no log tails
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// procFailure prints a process's log tail and names its log.
func (v *run) procFailure(p *Proc, err error) error {
	fmt.Fprintf(v.o.Out, "--- %s (pid %d): %v; last lines of %s:\n%s\n---\n", p.Name, p.PID, err, p.Log, indent(Tail(p.Log, 25)))
	return fmt.Errorf("%s: %w (log %s)", p.Name, err, p.Log)
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }

// httpClient returns a client dialing from ns with the given TLS settings.
func httpClient(ns *NS, tc *tls.Config) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext:       ns.DialContext,
			TLSClientConfig:   tc,
			DisableKeepAlives: true,
		},
	}
}

// get fetches a URL and returns status and body.
func get(ctx context.Context, c *http.Client, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64*1024))
	return resp.StatusCode, strings.TrimSpace(string(body)), err
}

// etcdReady: /health answers over TLS. Only liveness matters here, so the
// server certificate is not verified; the etcd row verifies it.
func etcdReady(ctx context.Context, v *run, nd *node, argv []string) error {
	url, err := etcdClientURL(argv)
	if err != nil {
		return err
	}
	tc, err := v.etcdTLS(true)
	if err != nil {
		return err
	}
	tc.InsecureSkipVerify = true
	code, body, err := get(ctx, httpClient(v.net.Hub, tc), url+"/health")
	if err != nil {
		return err
	}
	var h struct{ Health string }
	if code != http.StatusOK || json.Unmarshal([]byte(body), &h) != nil || h.Health != "true" {
		return fmt.Errorf("/health: %d %s", code, body)
	}
	return nil
}

// apiserverReady: /readyz answers 200 (server certificate not verified here).
func apiserverReady(ctx context.Context, v *run, nd *node, argv []string) error {
	url := fmt.Sprintf("https://%s/readyz", netip.AddrPortFrom(nd.spec.IP(), v.apiPort(nd)))
	code, body, err := get(ctx, httpClient(v.net.Hub, &tls.Config{InsecureSkipVerify: true}), url)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("/readyz: %d %s", code, lastLine(body))
	}
	return nil
}

// healthzReady: /healthz of a controller component, dialled inside its node's
// namespace (they may bind loopback only).
func healthzReady(defaultPort int) readyFunc {
	return func(ctx context.Context, v *run, nd *node, argv []string) error {
		url := healthzURL(argv, defaultPort)
		code, body, err := get(ctx, httpClient(nd.ns, &tls.Config{InsecureSkipVerify: true}), url)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("%s: %d %s", url, code, lastLine(body))
		}
		return nil
	}
}

// haproxyReady: /readyz answers 200 through the VIP.
func haproxyReady(ctx context.Context, v *run, nd *node, argv []string) error {
	url := "https://" + v.endpoint.String() + "/readyz"
	code, body, err := get(ctx, httpClient(v.net.Hub, &tls.Config{InsecureSkipVerify: true}), url)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("%s: %d %s", url, code, lastLine(body))
	}
	return nil
}

// healthzURL is where a kube-controller-manager or kube-scheduler serves
// /healthz, from its --bind-address and --secure-port flags.
func healthzURL(argv []string, defaultPort int) string {
	host, _ := unitfile.Flag(argv, "bind-address")
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	port := strconv.Itoa(defaultPort)
	if p, ok := unitfile.Flag(argv, "secure-port"); ok {
		port = p
	}
	return "https://" + net.JoinHostPort(host, port) + "/healthz"
}

// etcdClientURL is the first of a member's --advertise-client-urls.
func etcdClientURL(argv []string) (string, error) {
	urls, ok := unitfile.Flag(argv, "advertise-client-urls")
	if !ok {
		return "", errors.New("etcd has no --advertise-client-urls")
	}
	return strings.Split(urls, ",")[0], nil
}

// apiPort is a controller's kube-apiserver --secure-port (else the spec's port).
func (v *run) apiPort(nd *node) uint16 {
	if p, ok := unitfile.Flag(nd.argv[controller.APIServerUnit], "secure-port"); ok {
		if n, err := strconv.ParseUint(p, 10, 16); err == nil {
			return uint16(n)
		}
	}
	return uint16(v.c.Spec.APIServer.Port)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// bootstrap applies the bootstrap manifests the way the first controller's
// hardway-bootstrap.service does: its ExecStartPre and ExecStart commands,
// parsed from the unit and run in that controller's namespace with its paths
// rewritten, retried as Restart=on-failure would.
func (v *run) bootstrap(ctx context.Context) (string, error) {
	nd := v.byName[v.c.NodesWith(spec.RoleController)[0].Name]
	p, err := v.bootstrapUnit(nd.spec.Name)
	if err != nil {
		return "", err
	}
	u, err := unitfile.Read(p)
	if err != nil {
		return "", fmt.Errorf("%s: %w", nd.spec.Name, err)
	}
	var cmds []unitfile.Command
	for _, key := range []string{"ExecStartPre", "ExecStart"} {
		cs, err := u.Exec(key)
		if err != nil {
			return "", err
		}
		cmds = append(cmds, cs...)
	}
	if len(cmds) == 0 {
		return "", fmt.Errorf("%s: %s has no ExecStart=", nd.spec.Name, controller.BootstrapUnit)
	}
	env, err := v.env(nd, u)
	if err != nil {
		return "", err
	}
	var shown []string
	for _, c := range cmds {
		shown = append(shown, strings.Join(c.Argv, " "))
		if filepath.Base(c.Argv[0]) == "kubectl" && slices.Contains(c.Argv, "apply") {
			v.bootstrapCmd = strings.Join(c.Argv, " ")
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for attempt := 1; ; attempt++ {
		err = v.runCommands(ctx, nd, cmds, env)
		if err == nil {
			return fmt.Sprintf("%s's %s, attempt %d: %s", nd.spec.Name, controller.BootstrapUnit, attempt, strings.Join(shown, "; ")), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%s: %w (log %s)", controller.BootstrapUnit, err, v.logPath(nd.spec.Name, logName(controller.BootstrapUnit)))
		case <-time.After(2 * time.Second):
		}
	}
}

// runCommands runs a oneshot unit's commands in order in the node's
// namespace; each is stopped by its PID if ctx ends.
func (v *run) runCommands(ctx context.Context, nd *node, cmds []unitfile.Command, env []string) error {
	logPath := v.logPath(nd.spec.Name, logName(controller.BootstrapUnit))
	for _, c := range cmds {
		argv, _, _, err := v.command(nd, c)
		if err != nil {
			return err
		}
		cmd := nd.ns.Command(argv[0], argv[1:]...)
		cmd.Dir, cmd.Env = nd.root.Dir, env
		p, err := v.procs.Start(nd.spec.Name+"/"+filepath.Base(argv[0]), StageBootstrap, cmd, logPath)
		if err != nil {
			return err
		}
		select {
		case <-p.done:
		case <-ctx.Done():
			_ = v.procs.stop(p)
			return ctx.Err()
		}
		if p.err != nil && !c.IgnoreFailure() {
			return fmt.Errorf("%s: %v: %s", strings.Join(c.Argv, " "), p.err, lastLine(Tail(logPath, 3)))
		}
	}
	return nil
}
