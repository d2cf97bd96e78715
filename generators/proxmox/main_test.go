package proxmox

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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
var stubTools = []string{"pct", "qm", "pvesm", "pvesh", "install"}

// stub appends [tool, args...] as one JSON line to dir/calls, then answers
// as Proxmox would from the files of dir:
//   - pvesh get /cluster/resources --type T --output-format json: prints dir/T.json;
//   - pvesh create /nodes/N/TYPE/ID/status/start: starts a guest on node N;
//   - pvesh get /nodes/N/storage/S/content --content TYPE --output-format json:
//     the volumes of dir/content (a JSON list of volids) in S:TYPE/;
//   - pvesm path VOLUME: prints stubVolume(dir, VOLUME);
//   - pct create ID: creates $CT_CONF_DIR/ID.conf, as Proxmox would;
//   - qm create ID: writes dir/qemu/ID.conf with a 4 GiB scsi0 (the image's size);
//   - qm config ID: prints dir/qemu/ID.conf; qm resize ID scsi0 NG rewrites its size;
//   - pct|qm start ID;
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
	qemuConf := func(id string) string { return filepath.Join(dir, "qemu", id+".conf") }
	switch {
	case tool == "pvesh" && len(args) == 6 && args[0] == "get" && args[1] == "/cluster/resources" && args[2] == "--type" && args[4] == "--output-format" && args[5] == "json":
		data, err := os.ReadFile(filepath.Join(dir, args[3]+".json"))
		if err != nil {
			return 0, err
		}
		_, err = os.Stdout.Write(data)
		return 0, err
	case tool == "pvesh" && len(args) == 2 && args[0] == "create" && strings.HasSuffix(args[1], "/status/start"):
	case tool == "pvesh" && len(args) == 6 && args[0] == "get" && strings.HasSuffix(args[1], "/content") && args[2] == "--content" && args[4] == "--output-format":
		var vols []string // dir/content: the volids uploaded, in JSON
		data, err := os.ReadFile(filepath.Join(dir, "content"))
		if err == nil {
			err = json.Unmarshal(data, &vols)
		}
		if err != nil {
			return 0, err
		}
		type volume struct {
			Volid   string `json:"volid"`
			Content string `json:"content"`
		}
		var list []volume
		for _, v := range vols {
			if storage := strings.Split(args[1], "/")[4]; strings.HasPrefix(v, storage+":"+args[3]+"/") {
				list = append(list, volume{v, args[3]})
			}
		}
		return 0, json.NewEncoder(os.Stdout).Encode(list)
	case tool == "pvesm" && len(args) == 2 && args[0] == "path":
		fmt.Println(stubVolume(dir, args[1]))
	case tool == "pct" && len(args) > 1 && args[0] == "create":
		return 0, os.WriteFile(filepath.Join(os.Getenv("CT_CONF_DIR"), args[1]+".conf"), nil, 0o644)
	case tool == "qm" && len(args) > 1 && args[0] == "create":
		if err := os.MkdirAll(filepath.Join(dir, "qemu"), 0o755); err != nil {
			return 0, err
		}
		return 0, os.WriteFile(qemuConf(args[1]), []byte("scsi0: x:vm-"+args[1]+"-disk-1,size=4G\n"), 0o644)
	case tool == "qm" && len(args) == 2 && args[0] == "config":
		data, err := os.ReadFile(qemuConf(args[1]))
		if err != nil {
			fmt.Fprintf(os.Stderr, "Configuration file 'nodes/pve1/qemu-server/%s.conf' does not exist\n", args[1])
			return 2, nil
		}
		_, err = os.Stdout.Write(data)
		return 0, err
	case tool == "qm" && len(args) == 4 && args[0] == "resize" && args[2] == "scsi0":
		return 0, os.WriteFile(qemuConf(args[1]), []byte("scsi0: x:vm-"+args[1]+"-disk-1,size="+args[3]+"\n"), 0o644)
	case (tool == "pct" || tool == "qm") && len(args) == 2 && args[0] == "start":
	case tool == "install" && len(args) == 5 && args[0] == "-D" && args[1] == "-m" && args[2] == "0600":
		data, err := os.ReadFile(args[3])
		if err != nil {
			return 0, err
		}
		if err := os.MkdirAll(filepath.Dir(args[4]), 0o755); err != nil {
			return 0, err
		}
		return 0, os.WriteFile(args[4], data, 0o600)
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
