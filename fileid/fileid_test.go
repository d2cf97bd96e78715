package fileid

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestID: a write, a rename over the name and a chmod each give another
// ID; reading the file does not.
func TestID(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := func() ID {
		t.Helper()
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		got, err := Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	first := id()
	if _, err := os.ReadFile(p); err != nil {
		t.Fatal(err)
	}
	if id() != first {
		t.Fatal("reading the file changed its ID")
	}
	changes := []struct {
		what string
		do   func() error
	}{
		{"a write of the same size", func() error { return os.WriteFile(p, []byte("two"), 0o644) }},
		{"a chmod", func() error { return os.Chmod(p, 0o600) }},
		{"a rename over it", func() error {
			q := filepath.Join(dir, "g")
			if err := os.WriteFile(q, []byte("two"), 0o600); err != nil {
				return err
			}
			return os.Rename(q, p)
		}},
	}
	prev := first
	for _, c := range changes {
		if err := c.do(); err != nil {
			t.Fatal(err)
		}
		if now := id(); now == prev {
			t.Errorf("%s kept the ID", c.what)
		} else {
			prev = now
		}
	}
}

func TestSettled(t *testing.T) {
	at := time.Unix(100, 0)
	id := ID{Mtime: at.UnixNano(), Ctime: at.UnixNano()}
	for _, c := range []struct {
		t      time.Time
		racy   time.Duration
		settle bool
	}{
		{at, 0, false},                     // changed at t: a change in the same tick would not show
		{at.Add(time.Nanosecond), 0, true}, // changed before t
		{at.Add(time.Second), 2 * time.Second, false},
		{at.Add(3 * time.Second), 2 * time.Second, true},
	} {
		if got := id.Settled(c.t, c.racy); got != c.settle {
			t.Errorf("Settled(%v, %v) = %v, want %v", c.t.Sub(at), c.racy, got, c.settle)
		}
	}
	if (ID{Mtime: at.Add(time.Hour).UnixNano(), Ctime: at.UnixNano()}).Settled(at.Add(time.Minute), 0) {
		t.Error("an mtime set into the future counted as settled")
	}
}
