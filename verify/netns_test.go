package verify

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestHelperListen is not a test: TestNetwork runs the test binary with
// VERIFY_HELPER_LISTEN set inside a namespace, as a server answering "hello".
func TestHelperListen(t *testing.T) {
	addr := os.Getenv("VERIFY_HELPER_LISTEN")
	if addr == "" {
		t.Skip("helper process for TestNetwork")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("listening")
	for {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(c, "hello from "+addr)
		c.Close()
	}
}

func hostInterfaces(t *testing.T) []string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	return names
}

// TestNetwork: node namespaces reach each other and the hub through the
// bridge at the addresses asked for, the host's interfaces do not change, and
// Close removes every namespace.
func TestNetwork(t *testing.T) {
	needRoot(t)
	before := hostInterfaces(t)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	members := []Member{
		{Node: "a", Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24")}},
		{Node: "b", Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.2/24"), netip.MustParsePrefix("192.0.2.10/24")}},
	}
	n, err := NewNetwork(ctx, log, runPrefix(), netip.MustParsePrefix("192.0.2.254/24"), members)
	if err != nil {
		t.Fatal(err)
	}
	names := n.Names()
	ps := NewProcs(log, time.Second)
	defer func() {
		if err := ps.StopAll(); err != nil {
			t.Error(err)
		}
		if err := n.Close(); err != nil {
			t.Error(err)
		}
		left, err := ListNamespaces()
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			if slices.Contains(left, name) {
				t.Errorf("namespace %s left behind", name)
			}
		}
		for _, p := range ps.List() {
			if Alive(p.PID) {
				t.Errorf("pid %d left behind", p.PID)
			}
		}
	}()
	if after := hostInterfaces(t); !slices.Equal(before, after) {
		t.Errorf("host interfaces changed: %v → %v", before, after)
	}
	cmd := n.Nodes["b"].Command(os.Args[0], "-test.run=^TestHelperListen$")
	cmd.Env = append(os.Environ(), "VERIFY_HELPER_LISTEN=192.0.2.10:7000")
	p, err := ps.Start("b/helper", StageEtcd, cmd, filepath.Join(t.TempDir(), "helper.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, from := range []*NS{n.Hub, n.Nodes["a"]} {
		var got string
		err := poll(ctxTimeout(t, 10*time.Second), 100*time.Millisecond, func() error {
			c, err := from.DialContext(ctx, "tcp", "192.0.2.10:7000") // refused until the helper listens
			if err != nil {
				return err
			}
			defer c.Close()
			b, err := io.ReadAll(c)
			got = string(b)
			return err
		})
		if err != nil || got != "hello from 192.0.2.10:7000" {
			t.Errorf("from %s: %q, %v (helper log: %s)", from.Name, got, err, Tail(p.Log, 5))
		}
	}
	// The build machine's own namespace does not have these addresses.
	if c, err := (&net.Dialer{Timeout: time.Second}).Dial("tcp", "192.0.2.10:7000"); err == nil {
		c.Close()
		t.Error("192.0.2.10 reachable from the host namespace")
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestCleanStale removes the namespaces of a dead verify run and keeps those
// of live ones.
func TestCleanStale(t *testing.T) {
	needRoot(t)
	dead := 0
	for pid := 4194000; pid > 4000000; pid-- {
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			dead = pid
			break
		}
	}
	if dead == 0 {
		t.Skip("no free pid found")
	}
	stale := nsPrefix + strconv.Itoa(dead) + "x1.hub"
	live := runPrefix() + ".hub"
	for _, name := range []string{stale, live} {
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	}
	removed, err := CleanStale(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(removed, stale) || slices.Contains(removed, live) {
		t.Errorf("removed %v; want %s and not %s", removed, stale, live)
	}
	if pid, ok := stalePID("hwv123x4-node"); !ok || pid != 123 {
		t.Errorf("stalePID = %d, %v", pid, ok)
	}
	if _, ok := stalePID("hwbake-man-cl"); ok {
		t.Error("stalePID parsed a foreign namespace")
	}
}
