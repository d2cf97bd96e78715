//go:generate packer-sdc struct-markdown

// Package bakeconfig is what the bake builders (hardway-lxc and hardway-kvm)
// share: their configuration (which spec, which nodes, which base, where
// outputs go) and its checks, the run of `hardway generate` and bake, and the
// artifact with the generated data the builders expose to post-processors.
package bakeconfig

// Config selects what a bake builder bakes and from what.
type Config struct {
	// The cluster spec (a hardway.dev/v1alpha1 Cluster file), for example
	// `examples/seed-lxc.yaml`. It is checked as `hardway validate` checks
	// it; every problem is reported at once.
	Spec string `mapstructure:"spec" required:"true"`
	// The node to bake. Its file tree is baked in, so that the artifact
	// boots into that node with no further input. Its target must be the
	// builder's (`lxc` for hardway-lxc, `kvm` for hardway-kvm). Set `node`
	// or `role`, not both.
	Node string `mapstructure:"node"`
	// Bake for a role instead of one node: hardway-lxc bakes one template
	// for each node of target `lxc` with this role, hardway-kvm one image
	// for the role. Set `node` or `role`, not both.
	Role string `mapstructure:"role"`
	// The base root file system: a tarball (plain, gzip, xz, zstd or bzip2)
	// with systemd, a `/sbin` entry and an `/etc/os-release` ID, such as
	// the Debian base `hack/base.sh` builds.
	BaseRootfs string `mapstructure:"base_rootfs" required:"true"`
	// hardway's output root, as `hardway bake --dir` and `hardway generate
	// -o` take it. The build first runs `hardway generate` into
	// `<output_directory>/<cluster>/`, which creates or keeps the PKI state
	// in its `pki/` directory. Defaults to `out`.
	OutputDirectory string `mapstructure:"output_directory"`
	// Where the artifacts and their `.sha256` files are written, as
	// `hardway bake --artifact-dir`. Defaults to `<output_directory>/<cluster>/bake`.
	ArtifactDirectory string `mapstructure:"artifact_directory"`
}
