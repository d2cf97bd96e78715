package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// nsPrefix starts the name of every namespace verify creates:
// hwv<pid>x<run>.hub for the hub, hwv<pid>x<run>-<node> for a node.
const nsPrefix = "hwv"

var runCounter atomic.Int64

// runPrefix names this run's namespaces; the PID lets a later run find and
// remove namespaces left by a run that was killed (CleanStale).
func runPrefix() string {
	return fmt.Sprintf("%s%dx%d", nsPrefix, os.Getpid(), runCounter.Add(1))
}

// NS is one network namespace created by verify.
type NS struct {
	Name  string
	Addrs []netip.Prefix
	f     *os.File // /run/netns/<name>, for setns
}

// Member asks for one node namespace holding addrs (the first is primary).
type Member struct {
	Node  string
	Addrs []netip.Prefix
}

// Network is the namespaces of one run: a hub namespace holding the bridge
// (whose own address is the client address the checks use) and one namespace
// per member, linked to the bridge by a veth pair. Every link is created
// inside the namespaces (ip -n), so the host's interfaces never change.
type Network struct {
	Hub   *NS
	Nodes map[string]*NS
	all   []*NS
	log   *slog.Logger
}

// NewNetwork creates the hub with client as the bridge address and one
// namespace per member. On error, whatever was created is removed.
func NewNetwork(ctx context.Context, log *slog.Logger, prefix string, client netip.Prefix, members []Member) (_ *Network, err error) {
	n := &Network{Nodes: map[string]*NS{}, log: log}
	defer func() {
		if err != nil {
			err = errors.Join(err, n.Close())
		}
	}()
	if n.Hub, err = n.add(prefix+".hub", client); err != nil {
		return nil, err
	}
	hub := n.Hub.Name
	steps := [][]string{
		{"-n", hub, "link", "add", "br0", "type", "bridge"},
		{"-n", hub, "addr", "add", client.String(), "dev", "br0"},
		{"-n", hub, "link", "set", "br0", "up"},
	}
	if err := ipAll(ctx, steps); err != nil {
		return nil, err
	}
	for i, m := range members {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ns, err := n.add(prefix+"-"+m.Node, m.Addrs...)
		if err != nil {
			return nil, err
		}
		n.Nodes[m.Node] = ns
		veth := fmt.Sprintf("v%d", i)
		steps := [][]string{
			{"-n", hub, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns.Name},
			{"-n", hub, "link", "set", veth, "master", "br0", "up"},
		}
		for _, a := range m.Addrs {
			steps = append(steps, []string{"-n", ns.Name, "addr", "add", a.String(), "dev", "eth0"})
		}
		steps = append(steps, []string{"-n", ns.Name, "link", "set", "eth0", "up"})
		if err := ipAll(ctx, steps); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// add creates a namespace with its loopback up and opens it for setns.
func (n *Network) add(name string, addrs ...netip.Prefix) (*NS, error) {
	if err := ip(context.Background(), "netns", "add", name); err != nil {
		return nil, err
	}
	ns := &NS{Name: name, Addrs: addrs}
	n.all = append(n.all, ns)
	f, err := os.Open("/run/netns/" + name)
	if err != nil {
		return nil, err
	}
	ns.f = f
	n.log.Debug("netns", "created", name, "addrs", addrs)
	return ns, ip(context.Background(), "-n", name, "link", "set", "lo", "up")
}

// Names lists the namespaces of the run.
func (n *Network) Names() []string {
	var out []string
	for _, ns := range n.all {
		out = append(out, ns.Name)
	}
	return out
}

// Close deletes every namespace, last created first; the veth pairs and the
// bridge go with them.
func (n *Network) Close() error {
	var errs []error
	for i := len(n.all) - 1; i >= 0; i-- {
		ns := n.all[i]
		if ns.f != nil {
			ns.f.Close()
		}
		if err := ip(context.Background(), "netns", "del", ns.Name); err != nil {
			errs = append(errs, err)
		}
	}
	n.all = nil
	return errors.Join(errs...)
}

// DialContext dials from inside the namespace: the socket is created by a
// goroutine locked to its OS thread while that thread is switched into the
// namespace (setns), which is all a socket's namespace depends on. Go clients
// (net/http, client-go) use it as their dialer.
func (ns *NS) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() (err error) {
		c, err = (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Do runs f on an OS thread switched into the namespace (setns): sockets it
// creates, and the files under /proc/sys/net it opens, are the namespace's.
func (ns *NS) Do(f func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			ch <- err
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(ns.f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- fmt.Errorf("setns %s: %w", ns.Name, err)
			return
		}
		err = f()
		// Back to the original namespace; if that fails the thread stays
		// locked and the runtime discards it when this goroutine ends.
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- err
	}()
	return <-ch
}

// nsCommand returns a command run in the namespace's network namespace
// only (nsenter --net; its mounts stay the host's, unlike `ip netns exec`,
// which mounts a new /sys), execed in place; ctx kills it.
func nsCommand(ctx context.Context, ns *NS, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=/run/netns/" + ns.Name, "--", name}, args...)...)
}

// Command returns a command run inside the namespace by `ip netns exec`,
// which execs it in place: the command's PID is the process's PID.
func (ns *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// ip runs one ip(8) command.
func ip(ctx context.Context, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func ipAll(ctx context.Context, steps [][]string) error {
	for _, s := range steps {
		if err := ip(ctx, s...); err != nil {
			return err
		}
	}
	return nil
}

// ListNamespaces returns the names of the named network namespaces (ip netns list).
func ListNamespaces() ([]string, error) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("ip netns list: %w", err)
	}
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// CleanStale deletes namespaces left by verify runs whose process no longer
// exists (a run killed with SIGKILL cannot clean up; its processes died with
// it, by their parent-death signal). It returns the names removed.
func CleanStale(log *slog.Logger) ([]string, error) {
	names, err := ListNamespaces()
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, name := range names {
		pid, ok := stalePID(name)
		if !ok || pid == os.Getpid() || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		if err := ip(context.Background(), "netns", "del", name); err != nil {
			return removed, err
		}
		log.Info("removed a namespace left by a killed verify run", "netns", name)
		removed = append(removed, name)
	}
	return removed, nil
}

// stalePID parses the PID out of a verify namespace name.
func stalePID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, nsPrefix)
	if !ok {
		return 0, false
	}
	digits, _, ok := strings.Cut(rest, "x")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(digits)
	return pid, err == nil && pid > 0
}
