// Package bytesize parses the sizes users write (4G, 512M): the hardway
// CLI's --disk-size and the Packer plugin's disk_size.
package bytesize

import (
	"fmt"
	"strconv"
	"strings"
)

// Parse parses a size: a number with a unit, K, M, G or T (powers of 1024,
// an optional trailing "iB" or "B"), or B for bytes. A bare number is
// refused: the qemu builder reads one as MiB and other tools as bytes, so
// that 4096 would be 4 GiB to one reader and 4 KiB to another.
func Parse(s string) (int64, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	t := strings.TrimSuffix(strings.TrimSuffix(u, "B"), "I")
	unit := t != u
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t, unit = t[:len(t)-1], true
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	switch {
	case err == nil && !unit:
		return 0, fmt.Errorf("size %q has no unit: add one, as in %sM (MiB); the units are K, M, G, T (powers of 1024) and B (bytes)", s, t)
	case err != nil || n <= 0 || n > (1<<50)/mult:
		return 0, fmt.Errorf("bad size %q: want a positive number with a unit K, M, G, T (powers of 1024) or B, e.g. 4G", s)
	}
	return n * mult, nil
}
