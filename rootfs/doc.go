// Package rootfs assembles root file systems as tar streams: it reads a base
// tarball (plain, gzip, xz, zstd or bzip2) as a stream, lays file trees over
// it (a role's binaries, a node's tree, sysprep) and writes one merged,
// reproducible tar stream, in memory that does not grow with the base.
//
// A bake reads the base twice: Scan verifies it end to end, refuses what
// cannot be extracted safely (hostile.go) and learns what placing the
// layers needs (its symlinks, os-release, systemd); NewPlan combines the
// layers on it; Merge streams it again into the result.
package rootfs
