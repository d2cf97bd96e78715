package bake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/hardway-dev/hardway/output"
	"github.com/hardway-dev/hardway/rootfs"
)

// ManifestFile lists the artifacts of an output directory.
const ManifestFile = "bake-manifest.json"

// Modes of published files. An artifact that holds a secret of its node's
// tree (Stats.Secrets: private keys, kubeconfigs with a client key, the
// encryption configuration) is readable by its owner only: whoever reads
// it holds the node's credentials, and a controller's holds the cluster's
// CA keys. Other artifacts, and every .sha256 sidecar, are readable by all.
const (
	publicMode fs.FileMode = 0o644
	secretMode fs.FileMode = 0o600
)

// artifactMode is the mode of an artifact whose merged tree is st.
func artifactMode(st *rootfs.Stats) fs.FileMode {
	if st != nil && len(st.Secrets) > 0 {
		return secretMode
	}
	return publicMode
}

// writebackEvery is how much of an artifact is written before the kernel
// is asked to start writing that stretch to disk (sync_file_range,
// without waiting): publish's fsync then waits for the last stretch only,
// not for the whole file, and the disk works while the stream is still
// being made. A template's fsync went from 0.13-0.16 s to under 10 ms.
const writebackEvery = 32 << 20

// pending is an artifact being written: a temporary file next to its final
// name, removed unless publish renames it into place.
type pending struct {
	dir, name string
	f         *os.File
	sum       hash.Hash
	n         int64
	behind    int64 // bytes up to which writeback was started
	done      bool
	// writeback starts writing back n bytes from off; nil is
	// sync_file_range(2).
	writeback func(off, n int64)
}

// create starts writing dir/name.
func create(dir, name string) (*pending, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return nil, err
	}
	return &pending{dir: dir, name: name, f: f, sum: sha256.New()}, nil
}

// Write writes to the temporary file and the running checksum.
func (p *pending) Write(b []byte) (int, error) {
	n, err := p.f.Write(b)
	p.sum.Write(b[:n])
	p.n += int64(n)
	if p.n-p.behind >= writebackEvery {
		p.startWriteback()
	}
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		err = fmt.Errorf("write %s: %w", filepath.Join(p.dir, p.name), err)
	}
	return n, err
}

// startWriteback asks the kernel to start writing what was written since
// the last call. An error is not one: publish's fsync reports any.
func (p *pending) startWriteback() {
	off, n := p.behind, p.n-p.behind
	p.behind = p.n
	if p.writeback != nil {
		p.writeback(off, n)
		return
	}
	if rc, err := p.f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			_ = unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
		})
	}
}

// reset empties the temporary file, to write it again.
func (p *pending) reset() error {
	if p.n == 0 {
		return nil
	}
	if err := p.f.Truncate(0); err != nil {
		return err
	}
	if _, err := p.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	p.sum.Reset()
	p.n, p.behind = 0, 0
	return nil
}

// abort removes the temporary file; after publish it does nothing.
func (p *pending) abort() {
	if p.done {
		return
	}
	p.f.Close()
	os.Remove(p.f.Name())
}

// SHA256 is the hex checksum of what was written.
func (p *pending) SHA256() string { return hex.EncodeToString(p.sum.Sum(nil)) }

// publish makes the file durable, with mode, and renames it into place
// with its sha256sum(1) sidecar <name>.sha256 (publicMode). Both are
// written completely before either is renamed, so a full disk leaves
// neither behind. Until then the file is its owner's only (os.CreateTemp).
func (p *pending) publish(mode fs.FileMode) (string, error) {
	if err := p.finish(mode); err != nil {
		return "", err
	}
	sum := p.SHA256()
	side, err := create(p.dir, p.name+".sha256")
	if err != nil {
		return "", err
	}
	defer side.abort()
	if _, err := fmt.Fprintf(side, "%s  %s\n", sum, p.name); err != nil {
		return "", fmt.Errorf("write %s: %w", side.name, err)
	}
	if err := side.finish(publicMode); err != nil {
		return "", err
	}
	if err := p.rename(); err != nil {
		return "", err
	}
	if err := side.rename(); err != nil {
		return "", err
	}
	syncDir(p.dir)
	return sum, nil
}

// finish gives the temporary file its mode, flushes and closes it.
func (p *pending) finish(mode fs.FileMode) error {
	if err := p.f.Chmod(mode); err != nil {
		return err
	}
	if err := p.f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", p.name, err)
	}
	if err := p.f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", p.name, err)
	}
	return nil
}

// rename moves the finished temporary file to its name.
func (p *pending) rename() error {
	if err := os.Rename(p.f.Name(), filepath.Join(p.dir, p.name)); err != nil {
		return err
	}
	p.done = true
	return nil
}

// syncDir makes renames in dir durable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// manifest is the JSON document of ManifestFile, the same shape as
// generate's manifest.json.
type manifest struct {
	Artifacts []artifact `json:"artifacts"`
}

// artifact is one artifact of ManifestFile: generate's fields, and whether
// it holds secrets (then its mode is secretMode), with their paths in it.
type artifact struct {
	output.Artifact
	Secret  bool     `json:"secret"`
	Secrets []string `json:"secrets,omitempty"`
}

// recordArtifacts adds arts to dir's bake manifest under the directory's
// lock, replacing entries with the same path and dropping entries whose file
// is gone, so that bakes into one directory (also by other processes)
// accumulate in one manifest.
func recordArtifacts(dir string, arts []artifact) error {
	unlock, err := output.Lock(dir, nil)
	if err != nil {
		return err
	}
	defer unlock()
	file := filepath.Join(dir, ManifestFile)
	var m manifest
	if data, err := os.ReadFile(file); err == nil {
		if err := json.Unmarshal(data, &m); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	byPath := map[string]artifact{}
	for _, a := range m.Artifacts {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(a.Path))); err == nil {
			byPath[a.Path] = a
		}
	}
	for _, a := range arts {
		byPath[a.Path] = a
	}
	m.Artifacts = m.Artifacts[:0]
	for _, a := range byPath {
		m.Artifacts = append(m.Artifacts, a)
	}
	sort.Slice(m.Artifacts, func(i, j int) bool { return m.Artifacts[i].Path < m.Artifacts[j].Path })
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	_, err = output.WriteFileAtomic(file, append(data, '\n'), 0o644)
	return err
}

// hashFile feeds p's whole file into its checksum (the file was written by
// offsets or by another program, not through p.Write).
func hashFile(ctx context.Context, p *pending) (err error) {
	// Flush the file to disk meanwhile: publish's fsync then finds little
	// left to write.
	synced := make(chan error, 1)
	go func() { synced <- p.f.Sync() }()
	defer func() {
		if serr := <-synced; err == nil && serr != nil {
			err = fmt.Errorf("write %s: %w", p.name, serr)
		}
	}()
	f, err := os.Open(p.f.Name())
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := f.Read(buf)
		p.sum.Write(buf[:n])
		p.n += int64(n)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
