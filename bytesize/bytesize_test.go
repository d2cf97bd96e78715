package bytesize

import "testing"

func TestParse(t *testing.T) {
	for in, want := range map[string]int64{"4G": 4 << 30, "4GiB": 4 << 30, "512M": 512 << 20, "1048576": 1 << 20, "2t": 2 << 40, "100k": 100 << 10} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1G", "4X", "1.5G", "0"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) succeeded", in)
		}
	}
}
