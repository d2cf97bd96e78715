package bytesize

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]int64{"4G": 4 << 30, "4GiB": 4 << 30, "512M": 512 << 20, "1048576B": 1 << 20, "2t": 2 << 40, "100k": 100 << 10} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "B", "-1G", "4X", "1.5G", "0G", "iB"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) succeeded", in)
		}
	}
	// A bare number means MiB to the qemu builder and bytes to others: refused,
	// with the units to choose from.
	if _, err := Parse("4096"); err == nil || !strings.Contains(err.Error(), "4096M") {
		t.Errorf(`Parse("4096") = %v, want an error suggesting 4096M`, err)
	}
}
