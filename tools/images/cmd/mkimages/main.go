// Command mkimages builds the OCI image archives of tools/images (pause,
// CoreDNS, the smoke workload) into a cache directory and prints their
// absolute paths, one per line. `make images` runs it.
//
//	mkimages -coredns "$(hack/tools.sh coredns)/coredns" [-dir DIR]
//
// DIR defaults to ${HARDWAY_CACHE:-$HOME/.cache/hardway}/images. Every
// timestamp is SOURCE_DATE_EPOCH when set, else the Unix epoch.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/hardway-dev/hardway/tools/images"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mkimages:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", "", "directory of the archives (default ${HARDWAY_CACHE:-$HOME/.cache/hardway}/images)")
	coredns := flag.String("coredns", "", "the CoreDNS binary to pack (hack/tools.sh coredns)")
	module := flag.String("module", ".", "the tools/images module directory, where the Go programs are built")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}

	if *dir == "" {
		cache := os.Getenv("HARDWAY_CACHE")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return err
			}
			cache = filepath.Join(home, ".cache", "hardway")
		}
		*dir = filepath.Join(cache, "images")
	}
	created, err := sourceDateEpoch(os.Getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		return err
	}
	moduleDir, err := filepath.Abs(*module)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	paths, err := images.Write(ctx, *dir, images.Options{
		ModuleDir: moduleDir,
		CoreDNS:   *coredns,
		Created:   created,
	}, log)
	if err != nil {
		return err
	}
	for _, p := range paths {
		fmt.Println(p)
	}
	return nil
}

// sourceDateEpoch is the images' timestamp: SOURCE_DATE_EPOCH (seconds since
// the Unix epoch) when set, else the epoch itself.
func sourceDateEpoch(v string) (time.Time, error) {
	if v == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	s, err := strconv.ParseInt(v, 10, 64)
	if err != nil || s < 0 {
		return time.Time{}, errors.New("SOURCE_DATE_EPOCH: want a non-negative number of seconds, got " + strconv.Quote(v))
	}
	return time.Unix(s, 0).UTC(), nil
}
