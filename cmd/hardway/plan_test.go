package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// dirState is everything under dir, directories and the lock file
// included: each entry's mode, mtime and, for a file, its bytes.
func dirState(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		s := st.Mode().String() + " " + st.ModTime().Format(time.RFC3339Nano)
		if st.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s += " " + string(b)
		}
		out[p] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPlan: plan writes nothing (every byte, mode and mtime under the
// output root stays, directories and the lock file included; a missing
// directory is not created), exits 0 when nothing would change and 3 when
// something would, and lists exactly the files that generate then writes
// or removes for the same spec: a worker added, a worker's memory changed,
// an lb removed. The first generate writes the rootfs/ trees, which plan
// and generate keep without being told: their files and symlinks are
// planned too.
func TestPlan(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "out")
	if o, code := hardway(t, "generate", "-f", seed, "--dir", out, "--rootfs"); code != 0 {
		t.Fatalf("generate: exit %d\n%s", code, o)
	}
	before := dirState(t, root)
	o, code := hardway(t, "plan", "-f", seed, "--dir", out)
	if code != 0 || !strings.Contains(o, "nothing would change") {
		t.Fatalf("plan of the generated spec: exit %d\n%s", code, o)
	}

	data, err := os.ReadFile(seed)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(data), "vmid: 231, cores: 8, memoryMiB: 16384", "vmid: 231, cores: 8, memoryMiB: 32768", 1)
	lines := strings.Split(s, "\n")
	lines = slices.DeleteFunc(lines, func(l string) bool { return strings.Contains(l, "{name: lb2,") })
	s = strings.Join(lines, "\n") + "    - {name: worker3, roles: [worker], target: lxc, address: 10.240.0.33/24, vmid: 233}\n"
	changed := filepath.Join(filepath.Dir(seed), "plan-test.yaml") // beside the seed: its relative paths hold
	if err := os.WriteFile(changed, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(changed) })

	o, code = hardway(t, "plan", "-f", changed, "--dir", out)
	if code != 3 {
		t.Fatalf("plan of a changed spec: exit %d, want 3\n%s", code, o)
	}
	if strings.Contains(o, "worker1: bake") {
		t.Errorf("plan re-bakes worker1, whose overlay did not change:\n%s", o)
	}
	for _, want := range []string{"node worker3:", "node lb2:", "gw: bake its LXC template again", "worker1: apply the changed nodes/worker1/proxmox.conf", "worker3: create its guest"} {
		if !strings.Contains(o, want) {
			t.Errorf("plan output lacks %q:\n%s", want, o)
		}
	}
	js, code := hardway(t, "plan", "-f", changed, "--dir", out, "-o", "json")
	if code != 3 {
		t.Fatalf("plan -o json: exit %d\n%s", code, js)
	}
	missing := filepath.Join(root, "missing")
	if o, code := hardway(t, "plan", "-f", changed, "--dir", missing); code != 3 || !strings.Contains(o, "0 changed, 0 removed") {
		t.Errorf("plan against a missing directory: exit %d\n%s", code, o)
	}
	after := dirState(t, root)
	for p, st := range before {
		if after[p] != st {
			t.Errorf("plan changed %s", p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("plan created %s", p)
		}
	}

	// What generate then does with the same spec.
	g, code := hardway(t, "generate", "-f", changed, "--dir", out, "-o", "json")
	if code != 0 {
		t.Fatalf("generate: exit %d\n%s", code, g)
	}
	var plan struct {
		Changes []struct{ Path, Change string }
	}
	var gen struct{ Changed []string }
	if err := json.Unmarshal([]byte(js[strings.Index(js, "{"):]), &plan); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	if err := json.Unmarshal([]byte(g[strings.Index(g, "{"):]), &gen); err != nil {
		t.Fatalf("%v\n%s", err, g)
	}
	// generate lists the symlinks it removes, not those it makes.
	var planned []string
	links := 0
	for _, c := range plan.Changes {
		p := c.Path
		if c.Change == "removed" {
			p += " (removed)"
		} else if st, err := os.Lstat(filepath.Join(out, "kublxc", p)); err == nil && st.Mode()&fs.ModeSymlink != 0 {
			links++
			continue
		}
		planned = append(planned, p)
	}
	if links == 0 {
		t.Error("plan lists none of worker3's symlinks")
	}
	slices.Sort(planned)
	slices.Sort(gen.Changed)
	if !slices.Equal(planned, gen.Changed) {
		t.Errorf("plan listed %d files, generate changed %d:\nplan %q\ngenerate %q", len(planned), len(gen.Changed), planned, gen.Changed)
	}
	if !slices.Contains(planned, "nodes/lb2/overlay.tar (removed)") || !slices.Contains(planned, "nodes/worker3/overlay.tar") {
		t.Errorf("plan lacks lb2's removal or worker3's addition: %q", planned)
	}

	// Without the rootfs/ trees, plan names the files that would change
	// inside an overlay.tar: worker3 enters the gateway's /etc/hosts.
	bare := filepath.Join(root, "bare")
	if o, code := hardway(t, "generate", "-f", seed, "--dir", bare); code != 0 {
		t.Fatalf("generate: exit %d\n%s", code, o)
	}
	if o, code := hardway(t, "plan", "-f", changed, "--dir", bare); code != 3 || !strings.Contains(o, "overlay-tar: 1 changed: overlay.tar (/etc/hosts changed)") || strings.Contains(o, "rootfs") {
		t.Errorf("plan without trees: exit %d, want gw's overlay.tar named with /etc/hosts changed, and no rootfs:\n%s", code, o)
	}
}
