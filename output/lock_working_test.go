package output

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWorkingSweepsOnlyWhenAlone: the first writer sweeps an interrupted
// writer's temporary files; a writer that starts while another is at work
// leaves that one's temporary files alone.
func TestWorkingSweepsOnlyWhenAlone(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, ".w1.tar.zst.tmp-123")
	work := filepath.Join(dir, ".w1.work-456")
	keep := filepath.Join(dir, "w1.tar.zst")
	for _, p := range []string{stale, keep} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(work, "etc"), 0o555); err != nil {
		t.Fatal(err)
	}
	release, swept, err := Working(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(swept) != 2 {
		t.Errorf("swept %v, want the temp file and the work directory", swept)
	}
	for _, p := range []string{stale, work} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s survived the sweep: %v", p, err)
		}
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("an artifact was swept: %v", err)
	}

	// A second writer while the first is at work: its temp file is live.
	live := filepath.Join(dir, ".w2.tar.zst.tmp-789")
	if err := os.WriteFile(live, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	release2, swept2, err := Working(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(swept2) != 0 {
		t.Errorf("a writer started beside another swept %v", swept2)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("a live temp file was removed: %v", err)
	}
	release2()
	release()
}
