// Package verify runs a generated control plane for real on the build
// machine, in network namespaces at the spec's own addresses, and smoke-tests it.
//
// `hardway verify` starts every etcd member and every controller's
// kube-apiserver, kube-controller-manager and kube-scheduler with the command
// lines of the generated unit files (parsed, never rebuilt by hand), the node
// trees (their overlay.tar, extracted) copied to per-node root directories,
// then runs the smoke checks of Kubernetes The Hard Way and stops everything
// by PID.
//
// Networking: a hub namespace holds a bridge; every etcd, controller (and the
// first lb) node gets a namespace with its own address on a veth pair to that
// bridge. The bridge's own address, a free address of network.nodeCIDR, is the
// client the checks speak from: Go clients dial through NS.DialContext (setns
// on a locked OS thread), processes run by `ip netns exec`. Nothing on the
// host's interfaces changes, and only addresses inside these namespaces are
// contacted.
package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hardway-dev/hardway/spec"
)

// Options configure a run.
type Options struct {
	Cluster *spec.Cluster // validated, defaults applied
	Dir     string        // the generated cluster directory, <out>/<cluster>
	BinDirs []string      // where unit binaries are looked up by base name
	// WorkDir holds the node trees extracted from their overlay.tar, the
	// node roots, the booted guests and the process logs (its trees/,
	// nodes/, guests/ and logs/ are emptied first). Empty: a temp dir,
	// removed after a passing run and kept (and named) after a failing
	// one or with Keep.
	WorkDir string
	Out     io.Writer // progress and the result table
	Log     *slog.Logger
	// Grace is the time between SIGTERM and SIGKILL. Default 5s.
	Grace time.Duration
	// Artifacts boots workers: node name → its baked artifact, an LXC
	// template for target lxc (unpacked as pct does, started by
	// lxc-start) or a KVM image for target kvm (booted by qemu, with the
	// node's NoCloud seed), on the run's bridge once the control plane is
	// bootstrapped; the worker rows follow the control plane's (see
	// worker.go).
	Artifacts map[string]string
	// FailFast records the rows after a failing one as not run, instead
	// of running each to its timeout.
	FailFast bool
	// WorkerTimeout bounds each worker row and, for the first, the boot:
	// default 4 min, 20 and 8 min with a VM among them (see check_worker.go).
	WorkerTimeout time.Duration
	// Boot boots every node of the spec from its artifact (Artifacts must
	// name one for each) instead of starting the control plane as
	// processes: the pre-flight check of what ships (see boot.go).
	Boot bool
	// Skipped names, with Boot, the nodes that cannot boot here at all
	// (node → why): they have no artifact, are left out and said so.
	Skipped map[string]string
	// Keep leaves the cluster up after the rows, printing how to enter
	// its nodes, until ctx ends (Ctrl-C); then it tears down as always and
	// keeps the work directory.
	Keep bool
	// SSHIdentity is an OpenSSH private key whose public half the spec's
	// ssh.authorizedKeys holds: the gateway row logs in with it. Empty:
	// that row checks the bastion's handshake only.
	SSHIdentity string
}

// Run starts the control plane, checks it, tears it down and returns the
// report. An error means verify could not run at all (not root, bad bundle
// layout, no binaries); failed checks are in the report.
func Run(ctx context.Context, o Options) (rep *Report, err error) {
	if err := preflight(); err != nil {
		return nil, err
	}
	if o.Dir, err = filepath.Abs(o.Dir); err != nil {
		return nil, err
	}
	v := newRun(o)
	if _, err := CleanStale(v.log); err != nil {
		v.log.Warn("could not remove stale namespaces", "err", err)
	}
	tempWork, err := v.workDir()
	if err != nil {
		return nil, err
	}
	defer func() {
		v.teardown()
		if tempWork && err == nil && v.rep.OK() {
			os.RemoveAll(v.work)
			v.rep.WorkDir = ""
		}
	}()
	fmt.Fprintf(o.Out, "verify %s: node roots and logs in %s\n", v.c.Metadata.Name, v.work)
	if err := v.phase("prepare", v.prepare); err != nil {
		return v.rep, err
	}
	if err := v.phase("network", func() (string, error) { return v.network(ctx) }); err != nil {
		return v.rep, err
	}
	if o.Boot {
		v.bootAll(ctx)
	} else {
		v.start(ctx)
		if len(v.booting) > 0 {
			v.startWorkers(ctx)
		}
	}
	v.runChecks(ctx)
	if !v.failed && !o.Boot {
		_ = v.phase("processes still running", v.stillRunning)
	}
	if len(v.guests) > 0 {
		_ = v.phase("peak memory of the booted nodes", v.peakMemory)
	}
	if o.Keep && ctx.Err() == nil {
		v.keep(ctx)
		tempWork = false
		return v.rep, nil
	}
	if ctx.Err() != nil {
		return v.rep, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	return v.rep, nil
}

// keep prints how to reach the cluster and waits until ctx ends.
func (v *run) keep(ctx context.Context) {
	w := v.o.Out
	fmt.Fprintf(w, "\n--keep: the cluster stays up until verify is interrupted (Ctrl-C, or kill -INT %d), which tears it down.\n", os.Getpid())
	if argv, err := v.kubectlArgv("get", "namespaces"); err == nil {
		ns, where := v.clientNS()
		fmt.Fprintf(w, "kubectl, from %s:\n  ip netns exec %s %s\n", where, ns.Name, strings.Join(argv, " "))
	}
	for _, g := range v.guests {
		n, _ := v.c.Node(g.info().name)
		fmt.Fprintf(w, "  %s at %s: %s\n", n.Name, n.IP(), g.enter())
	}
	for _, p := range v.procs.List() {
		fmt.Fprintf(w, "  %s: pid %d, log %s\n", p.Name, p.PID, p.Log)
	}
	fmt.Fprintf(w, "Node roots and logs: %s\n", v.work)
	<-ctx.Done()
	v.rep.Kept = true
}

// newRun fills in the defaults of o.
func newRun(o Options) *run {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Grace == 0 {
		o.Grace = 5 * time.Second
	}
	v := &run{o: o, c: o.Cluster, log: o.Log, rep: &Report{}, procs: NewProcs(o.Log, o.Grace), byName: map[string]*node{}}
	// etcd members stop one at a time: a leader hands over to a live member
	// instead of waiting for one that is stopping too.
	v.procs.Serial = map[Stage]bool{StageEtcd: true}
	return v
}

// workDir sets up the work dir and reports whether it is a temp dir.
func (v *run) workDir() (bool, error) {
	v.work = v.o.WorkDir
	temp := v.work == ""
	if temp {
		dir, err := os.MkdirTemp("", "hardway-verify-")
		if err != nil {
			return false, err
		}
		// Traversable: an unprivileged container's root (a host uid)
		// reaches its rootfs below; logs/ stays private.
		if err := os.Chmod(dir, 0o711); err != nil {
			return false, err
		}
		v.work = dir
	}
	for _, sub := range []string{"trees", "nodes", "logs", "guests"} {
		if err := os.RemoveAll(filepath.Join(v.work, sub)); err != nil {
			return false, err
		}
	}
	v.rep.WorkDir = v.work
	return temp, os.MkdirAll(filepath.Join(v.work, "logs"), 0o700)
}

// stillRunning checks that no control-plane process ended during the checks.
func (v *run) stillRunning() (string, error) {
	var errs []error
	n := 0
	for _, p := range v.procs.List() {
		if p.Stage > 2 {
			continue // the bootstrap's commands
		}
		n++
		if done, err := p.Exited(); done {
			errs = append(errs, v.procFailure(p, fmt.Errorf("exited during the checks: %v", err)))
		}
	}
	return fmt.Sprintf("all %d", n), errors.Join(errs...)
}

// preflight checks what a run needs from the build machine.
func preflight() error {
	if os.Geteuid() != 0 {
		return errors.New("verify needs root: it creates network namespaces (run it with sudo)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("verify needs ip(8) from iproute2 (apt-get install iproute2)")
	}
	return nil
}

// preflightGuests checks what booting nodes of the targets needs.
func preflightGuests(targets ...string) error {
	type need struct{ cmd, pkg string }
	needs := []need{{"nsenter", "util-linux"}}
	if slices.Contains(targets, spec.TargetLXC) {
		needs = append(needs, need{"lxc-start", "lxc"}, need{"tar", "tar"}, need{"zstd", "zstd"})
	}
	if slices.Contains(targets, spec.TargetKVM) {
		needs = append(needs, need{"qemu-system-x86_64", "qemu-system-x86"}, need{OVMFCode, "ovmf"})
	}
	for _, c := range needs {
		var err error
		if filepath.IsAbs(c.cmd) {
			_, err = os.Stat(c.cmd)
		} else {
			_, err = exec.LookPath(c.cmd)
		}
		if err != nil {
			return fmt.Errorf("booting %s nodes needs %s (apt-get install %s)", strings.Join(targets, " and "), c.cmd, c.pkg)
		}
	}
	return nil
}

// run is the state of one verify run.
type run struct {
	o      Options
	c      *spec.Cluster
	log    *slog.Logger
	work   string
	nodes  []*node // the nodes that run something, in spec order
	byName map[string]*node
	net    *Network
	procs  *Procs
	rep    *Report
	trees  overlayTrees // the nodes' extracted overlay.tar (nodeTree)

	lb       *node          // the lb node running haproxy, if any
	vipVia   string         // who serves the VIP, for the rows
	endpoint netip.AddrPort // the API endpoint: VIP, or the first controller
	failed   bool           // a start phase failed: later ones are skipped

	bootstrapped error // the bootstrap phase's result, for its row
	bootstrapCmd string

	booting []spec.Node       // the nodes of Options.Artifacts, to boot
	guests  []guest           // the booted nodes
	peaks   map[string]uint64 // guest → its peak memory so far (recordPeaks)
}

// phase runs one step, times it and prints its line.
func (v *run) phase(name string, f func() (string, error)) error {
	start := time.Now()
	detail, err := f()
	p := Phase{Name: name, Took: time.Since(start), Detail: detail, Err: err}
	v.rep.Phases = append(v.rep.Phases, p)
	p.Print(v.o.Out)
	return err
}

// skip records a phase that did not run.
func (v *run) skip(name, why string) {
	p := Phase{Name: name, Skipped: why}
	v.rep.Phases = append(v.rep.Phases, p)
	p.Print(v.o.Out)
}

// teardown stops every process by PID and deletes the namespaces.
func (v *run) teardown() {
	for _, p := range v.procs.List() {
		v.rep.PIDs = append(v.rep.PIDs, p.PID)
	}
	if v.net != nil {
		v.rep.Namespaces = v.net.Names()
	}
	_ = v.phase("teardown", func() (string, error) {
		var errs []error
		n := len(v.procs.List())
		errs = append(errs, v.stopGuests(), v.procs.StopAll())
		if v.net != nil {
			errs = append(errs, v.net.Close())
		}
		return fmt.Sprintf("%d processes stopped, %d namespaces deleted", n, len(v.rep.Namespaces)), errors.Join(errs...)
	})
}

// logPath is where a process's output goes.
func (v *run) logPath(node, name string) string {
	return filepath.Join(v.work, "logs", node+"."+name+".log")
}
