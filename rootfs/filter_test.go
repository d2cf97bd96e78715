package rootfs

import (
	"math/rand/v2"
	"path"
	"strings"
	"testing"
)

// filterPlan is a plan with the Remove patterns of an LXC template (the
// kernel, services, SSH host keys, cloud-init state) and layer entries, some
// of them files where the base has directories.
func filterPlan(t testing.TB) *Plan {
	p, err := NewPlan(&BaseInfo{},
		Layer{Name: "files", Entries: []Entry{
			Bytes("/etc/ssh", 0o644, 0, 0, []byte("a file where a directory was")),
			Bytes("/opt/x/y", 0o644, 0, 0, nil),
			Bytes("/usr/lib/modules", 0o644, 0, 0, nil),
		}},
		Layer{Name: "remove", Remove: []string{
			"/etc/ssh/ssh_host_*", "/var/lib/cloud/data", "/var/lib/cloud/instances",
			"/etc/systemd/system/*.wants/haproxy.service", "/etc/systemd/system/*.wants/chrony.service",
			"/boot/*", "/usr/lib/modules/*", "/lib/modules/*", "/vmlinuz", "/initrd.img.old",
			"/opt/[ab]?/c", `/opt/\*`, "/",
		}},
	)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// filterPaths are clean base member paths near and far from the patterns.
func filterPaths(n int) []string {
	parts := []string{"etc", "ssh", "ssh_host_rsa_key", "systemd", "system", "multi-user.target.wants",
		"haproxy.service", "chrony.service", "boot", "vmlinuz", "usr", "lib", "modules", "6.1.0", "kernel",
		"var", "cloud", "data", "instances", "opt", "a1", "bb", "c", "*", "x", "y", "initrd.img.old", "share", "doc"}
	r := rand.New(rand.NewPCG(1, 2))
	out := []string{"/", "/etc", "/etc/ssh", "/usr/lib/modules", "/opt/x/y/z", `/opt/*`, "/opt/a1/c", "/opt/a1/c/d"}
	for len(out) < n {
		var b strings.Builder
		if r.IntN(3) == 0 { // below a layer entry or a pattern's directory
			b.WriteString([]string{"/etc/ssh", "/usr/lib/modules", "/opt/x/y", "/etc/systemd/system"}[r.IntN(4)])
		}
		for range 1 + r.IntN(6) {
			b.WriteString("/" + parts[r.IntN(len(parts))])
		}
		out = append(out, b.String())
	}
	return out
}

// TestRemovedShadowed: the plan's filters give, for every path, what the
// definitions give: a path is removed when it or a directory above it
// matches a pattern (path.Match), shadowed when a directory above it is a
// layer entry that is not a directory.
func TestRemovedShadowed(t *testing.T) {
	p := filterPlan(t)
	patterns := []string{}
	for _, r := range p.remove {
		patterns = append(patterns, r.pattern)
	}
	var removed, shadowed int
	for _, q := range filterPaths(20000) {
		wantRemoved := false
		for a := q; a != "/" && !wantRemoved; a = path.Dir(a) {
			for _, pat := range patterns {
				if ok, _ := path.Match(pat, a); ok {
					wantRemoved = true
				}
			}
		}
		wantShadowed := false
		for d := path.Dir(q); d != "/"; d = path.Dir(d) {
			if e, ok := p.entries[d]; ok && !e.IsDir() {
				wantShadowed = true
			}
		}
		if got := p.removed(q); got != wantRemoved {
			t.Errorf("removed(%q) = %v, want %v", q, got, wantRemoved)
		}
		if got := p.shadowed(q); got != wantShadowed {
			t.Errorf("shadowed(%q) = %v, want %v", q, got, wantShadowed)
		}
		if wantRemoved {
			removed++
		}
		if wantShadowed {
			shadowed++
		}
	}
	if removed < 100 || shadowed < 100 {
		t.Errorf("only %d removed and %d shadowed paths: the test paths miss the patterns", removed, shadowed)
	}
}

// BenchmarkFate: the filters a merge runs on every base member.
func BenchmarkFate(b *testing.B) {
	p := filterPlan(b)
	qs := filterPaths(10000)
	for i := 0; b.Loop(); i++ {
		q := qs[i%len(qs)]
		_ = p.removed(q) || p.shadowed(q)
	}
}
