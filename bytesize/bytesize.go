// Package bytesize parses the sizes users write (4G, 512M, a number of
// bytes): the hardway CLI's --disk-size and the Packer plugin's disk_size.
package bytesize

import (
	"fmt"
	"strconv"
	"strings"
)

// Parse parses a size: bytes, or a number with a K, M, G or T suffix
// (powers of 1024, an optional trailing "iB" or "B").
func Parse(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
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
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<50)/mult {
		return 0, fmt.Errorf("bad size %q: want a positive number with an optional K, M, G or T suffix, e.g. 4G", s)
	}
	return n * mult, nil
}
