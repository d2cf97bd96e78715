package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hardway-dev/hardway/output"
)

// TestRandomKills SIGKILLs `hardway generate` at random moments, on fresh
// and existing output, alternating the seed and a variant of it (worker1's
// memory doubled: files of the same size with other bytes; one lb node
// more). After every series of kills a normal run must leave a directory
// whose manifest is the truth: every listed file on disk with its sha256
// and mode, every key 0600, no temporary file of ours, and CA certificates
// that never changed once they existed.
func TestRandomKills(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes repeatedly")
	}
	const wantKills = 60
	start := time.Now()
	seedN := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seedN, 0x6b696c6c))
	dir := t.TempDir()
	specs := [2]string{seed, filepath.Join(dir, "variant.yaml")}
	writeVariant(t, specs[1])
	out := filepath.Join(dir, "out")
	cluster := filepath.Join(out, "kublxc")

	// A kill lands uniformly within the recent median time of a run that
	// switches specs (the machine's load changes it), plus a quarter.
	var runs []time.Duration
	window := func() time.Duration {
		r := slices.Clone(runs[max(0, len(runs)-9):])
		slices.Sort(r)
		return r[len(r)/2] * 5 / 4
	}
	last := 0 // the spec of the last complete run
	normalRun := func(i int) {
		t.Helper()
		t0 := time.Now()
		if o, code := hardway(t, "generate", "-f", specs[i], "--dir", out); code != 0 {
			t.Fatalf("the run after kills failed (seed %d):\n%s", seedN, o)
		}
		if i != last {
			runs = append(runs, time.Since(t0))
		}
		last = i
	}
	for _, i := range []int{0, 1, 0, 1} {
		normalRun(i)
	}

	var (
		kills, finished, changed, inconsistent, stale, temps, keyOnly, fresh, normal int
		cas                                                                          = map[string]string{}
	)
	before := snapshot(t, cluster)
	for round := 0; kills < wantKills; round++ {
		if round%7 == 3 {
			os.RemoveAll(out)
			clear(cas)
			before = nil
			fresh++
		}
		for range 1 + rng.IntN(3) {
			// Mostly the other spec, so that the killed run has files to write.
			i := 1 - last
			if rng.IntN(4) == 0 {
				i = last
			}
			cmd := exec.Command(binary, "generate", "-f", specs[i], "--dir", out)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Duration(rng.Int64N(int64(window()))))
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			if ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus); ws.Signaled() {
				kills++
			} else {
				finished++ // it was done before the signal
				last = i
			}
			after := snapshot(t, cluster)
			if !maps.Equal(before, after) {
				changed++
			}
			before = after
			s := inspect(t, cluster)
			if s.stale+len(s.temps)+len(s.keyOnly) > 0 {
				inconsistent++
			}
			stale += s.stale
			temps += len(s.temps)
			keyOnly += len(s.keyOnly)
			sameCAs(t, cluster, cas)
		}
		normal++
		normalRun(rng.IntN(2))
		s := inspect(t, cluster)
		if s.stale > 0 || len(s.temps) > 0 || len(s.keyOnly) > 0 || len(s.badKeys) > 0 {
			t.Fatalf("round %d (seed %d): after a normal run: %d files differ from the manifest, temporary files %v, CA keys without certificate %v, keys not 0600 %v",
				round, seedN, s.stale, s.temps, s.keyOnly, s.badKeys)
		}
		sameCAs(t, cluster, cas)
		checkManifest(t, cluster)
		if t.Failed() {
			t.Fatalf("round %d (seed %d)", round, seedN)
		}
		before = snapshot(t, cluster)
	}
	if o, code := hardway(t, "certs", "check", "-f", seed, "--dir", out); code != 0 {
		t.Errorf("certs check after the kills:\n%s", o)
	}
	t.Logf("%d SIGKILLs within %s of a run's start (%d more runs finished before their signal), %d fresh starts, %d normal runs; seed %d",
		kills, window().Round(time.Millisecond), finished, fresh, normal, seedN)
	t.Logf("%d kills landed after the run's first write; %d left the directory inconsistent: %d files differing from the manifest, %d temporary files, %d CA keys without certificate; the next normal run repaired every one",
		changed, inconsistent, stale, temps, keyOnly)
	t.Logf("runtime %s", time.Since(start).Round(time.Millisecond))
}

// snapshot is tree, or nil when dir does not exist (yet).
func snapshot(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	if _, err := os.Stat(dir); err != nil {
		return nil
	}
	return tree(t, dir)
}

// writeVariant writes the seed with worker1's memory doubled (the same
// number of digits) and an lb3 node.
func writeVariant(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(seed)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(data), "vmid: 231, cores: 8, memoryMiB: 16384", "vmid: 231, cores: 8, memoryMiB: 32768", 1)
	s += "    - {name: lb3, roles: [lb], target: lxc, address: 10.240.0.43/24, vmid: 243, cores: 1, memoryMiB: 512}\n"
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// state is what a kill left in the cluster directory.
type state struct {
	stale   int      // files the manifest lists whose bytes or mode differ from it
	temps   []string // temporary files of ours
	keyOnly []string // CA keys without their certificate
	badKeys []string // private keys not 0600
}

func inspect(t *testing.T, dir string) state {
	t.Helper()
	var s state
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case output.IsTemp(d.Name()):
			s.temps = append(s.temps, rel)
		case strings.HasSuffix(p, ".key") && d.Type().IsRegular():
			if fi, err := d.Info(); err == nil && fi.Mode().Perm() != 0o600 {
				s.badKeys = append(s.badKeys, rel)
			}
		}
		return nil
	})
	for _, ca := range []string{"ca", "etcd/ca", "front-proxy-ca"} {
		_, kerr := os.Stat(filepath.Join(dir, "pki", ca+".key"))
		_, cerr := os.Stat(filepath.Join(dir, "pki", ca+".crt"))
		if kerr == nil && cerr != nil {
			s.keyOnly = append(s.keyOnly, ca)
		}
	}
	entries, ok := readManifest(t, dir)
	if !ok {
		return s // killed before its first manifest
	}
	for _, a := range entries {
		if differs(dir, a) != "" {
			s.stale++
		}
	}
	return s
}

// modeName is a file's mode as manifest.json writes it.
func modeName(m fs.FileMode) string {
	if m&fs.ModeSymlink != 0 {
		return "symlink"
	}
	return fmt.Sprintf("%04o", m.Perm())
}

// sameCAs fails the test if a CA certificate seen before has changed.
func sameCAs(t *testing.T, dir string, seen map[string]string) {
	t.Helper()
	for _, ca := range []string{"ca", "etcd/ca", "front-proxy-ca"} {
		data, err := os.ReadFile(filepath.Join(dir, "pki", ca+".crt"))
		if err != nil {
			if seen[ca] != "" {
				t.Fatalf("%s.crt is gone: %v", ca, err)
			}
			continue
		}
		sum := sha256.Sum256(data)
		h := hex.EncodeToString(sum[:])
		if seen[ca] != "" && seen[ca] != h {
			t.Fatalf("%s.crt changed: a CA was replaced", ca)
		}
		seen[ca] = h
	}
}

// TestKilledBetweenCAKeyAndCert: a first run killed between the renames of
// the CA keys and of the CA certificates (reproduced by removing what came
// after) leaves the keys alone; the next run completes the PKI from them.
func TestKilledBetweenCAKeyAndCert(t *testing.T) {
	out := t.TempDir()
	if o, code := hardway(t, "generate", "-f", seed, "--dir", out); code != 0 {
		t.Fatal(o)
	}
	pkiDir := filepath.Join(out, "kublxc", "pki")
	keys := map[string]string{}
	filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == output.LockFile {
			return err
		}
		if ca := strings.TrimSuffix(strings.TrimPrefix(p, pkiDir+"/"), ".key"); ca == "ca" || ca == "etcd/ca" || ca == "front-proxy-ca" {
			data, _ := os.ReadFile(p)
			keys[ca] = string(data)
			return nil
		}
		return os.Remove(p)
	})
	if len(keys) != 3 {
		t.Fatalf("CA keys: %d", len(keys))
	}
	o, code := hardway(t, "generate", "-f", seed, "--dir", out)
	if code != 0 || !strings.Contains(o, "issued again from the existing ca.key") {
		t.Fatalf("rerun: %d\n%s", code, o)
	}
	for ca, key := range keys {
		if data, _ := os.ReadFile(filepath.Join(pkiDir, ca+".key")); string(data) != key {
			t.Errorf("%s.key was replaced", ca)
		}
	}
	if o, code := hardway(t, "certs", "check", "-f", seed, "--dir", out); code != 0 {
		t.Errorf("certs check:\n%s", o)
	}
	checkManifest(t, filepath.Join(out, "kublxc"))
}
