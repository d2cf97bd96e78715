// Package images builds the OCI image archives that a hardway cluster
// imports at first boot instead of pulling from a registry: the pod sandbox
// (pause), CoreDNS and the smoke workload, each from source, linux/amd64,
// reproducible, named by the references the generated files use.
package images

import (
	"context"
	"fmt"
	"path"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hardway-dev/hardway/tools/images/oci"
)

// Image is one row of the catalog: an image with a single layer holding one
// static program and a few files.
type Image struct {
	Name string // short name; the archive is <Name>-<Tag>.tar
	Repo string // repository of the reference the cluster's files name
	Tag  string // tag of that reference
	// Program returns the image's static linux/amd64 program for Tag.
	Program func(ctx context.Context, o Options, tag string) ([]byte, error)
	Path    string            // where the program goes; the image's entrypoint
	Xattrs  map[string]string // on the program, e.g. file capabilities
	User    string            // numeric uid:gid the image runs as
	Ports   []string          // exposed ports, "53/udp"
	Files   []oci.File        // other files
}

// Ref is the image's full reference.
func (im Image) Ref() string { return im.Repo + ":" + im.Tag }

// Archive is the archive's file name.
func (im Image) Archive() string { return im.Name + "-" + im.Tag + ".tar" }

// Options are the inputs of a build, read from the environment by the caller.
type Options struct {
	ModuleDir string    // this module's directory: `go build` of the Go programs runs there
	CoreDNS   string    // the coredns binary (hack/tools.sh coredns)
	Created   time.Time // every timestamp in the images and archives
}

// Catalog is every image `make images` builds. The references are those the
// cluster's generated files name: kubeadm v1.34.2's PauseVersion (its
// cmd/kubeadm/app/constants) and the CoreDNS image of the addon manifest
// (generators/manifests), which is kubeadm v1.34.2's CoreDNSVersion too.
var Catalog = []Image{
	{
		Name: "pause", Repo: "registry.k8s.io/pause", Tag: "3.10.1",
		Program: goProgram("./cmd/pause"), Path: "/pause",
		User: "65535:65535", // as upstream's pause image
	},
	{
		Name: "coredns", Repo: "registry.k8s.io/coredns/coredns", Tag: "v1.12.1",
		Program: coreDNS, Path: "/coredns",
		// As upstream's image: a non-root user that binds port 53 through
		// the file capability, which the manifest's allowPrivilegeEscalation:
		// false (no_new_privs) still honours since the pod adds
		// NET_BIND_SERVICE to the bounding and permitted sets.
		Xattrs: map[string]string{"security.capability": capNetBindService},
		User:   "65532:65532",
		Ports:  []string{"53/tcp", "53/udp"},
		Files: []oci.File{
			{Path: "/etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
			{Path: "/etc/group", Mode: 0o644, Data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		},
	},
	{
		Name: "smoke", Repo: "hardway.dev/smoke", Tag: "v0.2.0",
		Program: goProgram("./cmd/smoke"), Path: "/smoke",
		User:  "65532:65532",
		Ports: []string{"8080/tcp"},
	},
}

// capNetBindService is the security.capability value of
// `setcap cap_net_bind_service=+ep`: struct vfs_cap_data, revision 2,
// effective flag, permitted bit 10 (CAP_NET_BIND_SERVICE), little-endian.
const capNetBindService = "\x01\x00\x00\x02" + "\x00\x04\x00\x00" + "\x00\x00\x00\x00" + "\x00\x00\x00\x00" + "\x00\x00\x00\x00"

// Build returns the image of im.
func Build(ctx context.Context, im Image, o Options) (v1.Image, error) {
	prog, err := im.Program(ctx, o, im.Tag)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", im.Ref(), err)
	}
	if err := checkStaticAMD64(prog); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", im.Ref(), im.Path, err)
	}
	files := append([]oci.File{{Path: im.Path, Mode: 0o755, Data: prog, Xattrs: im.Xattrs}}, im.Files...)
	tarball, err := oci.LayerTar(files, o.Created)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", im.Ref(), err)
	}
	layer, err := oci.Layer(tarball)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", im.Ref(), err)
	}

	cfg := &v1.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		Created:      v1.Time{Time: o.Created},
		RootFS:       v1.RootFS{Type: "layers"}, // Append adds the diff IDs
		Config: v1.Config{
			Entrypoint: []string{im.Path},
			Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			User:       im.User,
			WorkingDir: "/",
			Labels: map[string]string{
				"org.opencontainers.image.title":   im.Name,
				"org.opencontainers.image.version": im.Tag,
			},
		},
	}
	if len(im.Ports) > 0 {
		cfg.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range im.Ports {
			cfg.Config.ExposedPorts[p] = struct{}{}
		}
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: config: %w", im.Ref(), err)
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: o.Created},
			CreatedBy: "hardway make images: " + path.Base(im.Path) + " " + im.Tag,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("%s: layer: %w", im.Ref(), err)
	}
	return img, nil
}
