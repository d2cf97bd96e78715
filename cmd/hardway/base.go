package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hardway-dev/hardway/bake"
)

func newBase() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "base",
		Short: "Prepare a base root file system tarball for bake",
		Args:  cobra.NoArgs,
	}
	var out string
	index := &cobra.Command{
		Use:   "index BASE",
		Short: "Rewrite a base tarball as indexed zstd frames, so bakes skip what templates drop",
		Long: `index rewrites the base tarball BASE (tar, gzip, xz, zstd or bzip2) as an
indexed base: the same tar stream, byte for byte, as independent zstd
frames (level 3, with checksums), preceded by an index of the paths each
frame holds in a zstd skippable frame. It is still a valid .tar.zst:
zstd, GNU tar and pct read it as any other.

bake passes over, without decoding them, the frames whose every member
the templates it bakes together remove: an LXC
template leaves out the kernel, the initrd and the modules, which are 40%
of a base made for KVM images too, and decoding them was a fifth of an
LXC bake's CPU. Templates and images come out byte for byte the same from
the indexed base as from the original.

The index vouches for exact bytes: each frame's CRC-32C and sizes are
checked as it is read, and a base changed after it was indexed is refused.
Index it again after any change. With --to the indexed base goes there,
otherwise BASE is replaced; either way atomically (an interrupted run
leaves the previous file).`,
		Example: `  hardway base index debian-12-base.tar.zst
  hardway base index rootfs.tar.xz --to rootfs.tar.zst`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dst := out
			if dst == "" {
				dst = args[0]
			}
			x, err := bake.IndexBase(cmd.Context(), args[0], dst)
			if err != nil {
				return err
			}
			var size, content, named int64
			for _, f := range x.Frames {
				size += f.Size
				content += f.Content
				if f.Named() {
					named++
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d frames, %s of tar in %s (%d frames name the directories they hold)\n",
				dst, len(x.Frames), mib(content), mib(size), named)
			return nil
		},
	}
	index.Flags().StringVar(&out, "to", "", "write the indexed base to this file instead of replacing BASE")
	cmd.AddCommand(index)
	return cmd
}
