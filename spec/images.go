package spec

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// The images every cluster with workers runs, at the references of the
// Kubernetes release this hardway makes files for (kubeadm v1.34.2's
// cmd/kubeadm/app/constants PauseVersion and CoreDNSVersion). A node pulls
// nothing it does not have to: an air-gapped site lists their archives in
// spec.images (make images builds them from source).
const (
	// PauseImage is every pod sandbox's image, pinned in containerd's
	// configuration (containerd chooses it, not the kubelet).
	PauseImage = "registry.k8s.io/pause:3.10.1"
	// CoreDNSImage is the cluster DNS of the bootstrap manifests.
	CoreDNSImage = "registry.k8s.io/coredns/coredns:v1.12.1"
)

// RequiredImages are the references a cluster with workers needs.
var RequiredImages = []string{PauseImage, CoreDNSImage}

// maxIndexSize bounds the index.json or manifest.json read from an archive.
const maxIndexSize = 4 << 20

// ArchiveRefs returns the image references an image archive names, as
// `ctr images import` reads them: an OCI image layout's index.json
// (io.containerd.image.name, else org.opencontainers.image.ref.name when it
// is a full reference) or a `docker save` archive's manifest.json RepoTags.
func ArchiveRefs(file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var refs []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("not a tar archive: %w", err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		if name != "index.json" && name != "manifest.json" {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(tr, maxIndexSize+1))
		if err != nil {
			return nil, err
		}
		if len(data) > maxIndexSize {
			return nil, fmt.Errorf("%s is larger than %d bytes", name, maxIndexSize)
		}
		got, err := parseRefs(name, data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		refs = append(refs, got...)
	}
	slices.Sort(refs)
	return slices.Compact(refs), nil
}

// parseRefs reads the references of an OCI index.json or a docker
// manifest.json.
func parseRefs(name string, data []byte) ([]string, error) {
	var refs []string
	if name == "manifest.json" {
		var m []struct{ RepoTags []string }
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, err
		}
		for _, e := range m {
			refs = append(refs, e.RepoTags...)
		}
		return refs, nil
	}
	var idx struct {
		Manifests []struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, err
	}
	for _, m := range idx.Manifests {
		if r := m.Annotations["io.containerd.image.name"]; r != "" {
			refs = append(refs, r)
		} else if r := m.Annotations["org.opencontainers.image.ref.name"]; strings.Contains(r, "/") {
			refs = append(refs, r)
		}
	}
	return refs, nil
}

// requiredImages warns when a cluster with workers does not provide the
// images every worker runs: it lists no archive, or, when every archive was
// read (known), none names one of RequiredImages (refs are those they name).
func (v *validator) requiredImages(refs map[string]bool, known bool) {
	if len(v.d.Cluster.NodesWith(RoleWorker)) == 0 || len(v.d.Cluster.Spec.Images) > 0 && !known {
		return
	}
	missing := slices.DeleteFunc(slices.Clone(RequiredImages), func(r string) bool { return refs[r] })
	if len(missing) == 0 {
		return
	}
	them := "them"
	if len(missing) == 1 {
		them = "it"
	}
	v.warn(WarnNoImages, "spec.images", "no archive provides %s: the workers' containerd would pull %s from the registry, which an air-gapped site does not reach (`make images` builds the archives; list them here)",
		strings.Join(missing, " and "), them)
}
