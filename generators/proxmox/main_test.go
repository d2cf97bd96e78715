package proxmox

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestMain also lets this test binary stand in for the Proxmox tools that
// create-nodes.sh runs (see stubs): run as pct, qm, pvesm or install with
// STUB_DIR set, it records its argv and acts as the tool would.
func TestMain(m *testing.M) {
	if dir := os.Getenv("STUB_DIR"); dir != "" {
		exit, err := stub(dir, filepath.Base(os.Args[0]), os.Args[1:])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			exit = 3
		}
		os.Exit(exit)
	}
	os.Exit(m.Run())
}

// stubTools are the programs the stubs replace.
var stubTools = []string{"pct", "qm", "pvesm", "install"}

// stub appends [tool, args...] as one JSON line to dir/calls, then:
//   - pct|qm config ID: succeeds if ID is a line of dir/exists, else exits 2;
//   - pct create ID: creates $CT_CONF_DIR/ID.conf, as Proxmox would;
//   - pvesm path VOLUME: prints stubVolume(dir, VOLUME);
//   - install -D -m MODE SRC DEST: copies SRC to DEST with MODE.
func stub(dir, tool string, args []string) (exit int, err error) {
	line, err := json.Marshal(append([]string{tool}, args...))
	if err != nil {
		return 0, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "calls"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return 0, err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	switch {
	case (tool == "pct" || tool == "qm") && len(args) == 2 && args[0] == "config":
		exists, _ := os.ReadFile(filepath.Join(dir, "exists"))
		if !slices.Contains(strings.Split(string(exists), "\n"), args[1]) {
			return 2, nil
		}
	case tool == "pct" && len(args) > 1 && args[0] == "create":
		return 0, os.WriteFile(filepath.Join(os.Getenv("CT_CONF_DIR"), args[1]+".conf"), nil, 0o644)
	case tool == "pvesm" && len(args) == 2 && args[0] == "path":
		fmt.Println(stubVolume(dir, args[1]))
	case tool == "install" && len(args) == 5 && args[0] == "-D" && args[1] == "-m" && args[2] == "0600":
		data, err := os.ReadFile(args[3])
		if err != nil {
			return 0, err
		}
		if err := os.MkdirAll(filepath.Dir(args[4]), 0o755); err != nil {
			return 0, err
		}
		return 0, os.WriteFile(args[4], data, 0o600)
	case tool == "qm":
	default:
		return 0, fmt.Errorf("stub %s: unexpected arguments %q", tool, args)
	}
	return 0, nil
}

// stubVolume is where the pvesm stub says a storage volume is: a file in
// dir/volumes named after the volume's digest.
func stubVolume(dir, volume string) string {
	sum := sha256.Sum256([]byte(volume))
	return filepath.Join(dir, "volumes", hex.EncodeToString(sum[:8]))
}

// stubs makes dir/bin hold the stand-ins (links to this test binary) and
// returns it.
func stubs(t *testing.T, dir string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tool := range stubTools {
		if err := os.Symlink(self, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	return bin
}

// calls returns the argv of every stub call, in order.
func calls(t *testing.T, dir string) [][]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "calls"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out [][]string
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if l == "" {
			continue
		}
		var argv []string
		if err := json.Unmarshal([]byte(l), &argv); err != nil {
			t.Fatalf("calls: %q: %v", l, err)
		}
		out = append(out, argv)
	}
	return out
}
