// Command e2e prepares a spec for `make e2e`: a copy in -dir with the
// pinned binaries of -bin-dir and the image archives listed in -images
// (bake.PinnedCopy), whose path it prints, authorizing a throwaway SSH key
// whose private half is -dir/ssh/id_ed25519 (for verify --ssh-identity).
// The spec itself is only read.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hardway-dev/hardway/bake"
	"github.com/hardway-dev/hardway/verify"
)

type dirs []string

func (d *dirs) String() string     { return strings.Join(*d, ",") }
func (d *dirs) Set(v string) error { *d = append(*d, v); return nil }

func main() {
	specFile := flag.String("spec", "", "the spec to copy")
	dir := flag.String("dir", "", "where the copy, its binaries and archives go")
	images := flag.String("images", "", "a file listing image archives, one path a line (make images)")
	var bins dirs
	flag.Var(&bins, "bin-dir", "a directory of pinned binaries (repeatable)")
	flag.Parse()
	if *specFile == "" || *dir == "" || *images == "" || len(bins) == 0 {
		fmt.Fprintln(os.Stderr, "usage: e2e -spec SPEC -dir DIR -bin-dir DIR... -images LIST")
		os.Exit(2)
	}
	err := run(*specFile, *dir, *images, bins)
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "e2e:", err)
	os.Exit(1)
}

func run(specFile, dir, images string, bins []string) error {
	archives, err := bake.ArchiveList(images)
	if err != nil {
		return err
	}
	keys := filepath.Join(dir, "ssh")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		return err
	}
	key, _, err := verify.ThrowawayKey(keys)
	if err != nil {
		return err
	}
	copied, err := bake.PinnedCopy(specFile, dir, bins, archives, key)
	if err != nil {
		return err
	}
	fmt.Println(copied)
	return nil
}
