package verify

import (
	"context"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// kube is a minimal typed client over client-go's REST client: the few
// calls the checks make, with k8s.io/api types and apimachinery's errors.
// (The generated clientset would need modules the root go.mod does not list.)
type kube struct{ rc *rest.RESTClient }

// newKube returns a client for cfg.
func newKube(cfg *rest.Config) (*kube, error) {
	c := rest.CopyConfig(cfg)
	c.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	rc, err := rest.UnversionedRESTClientFor(c)
	if err != nil {
		return nil, err
	}
	return &kube{rc}, nil
}

// get reads the object at an API path (e.g. /api/v1/namespaces/default/services/kubernetes).
func (k *kube) get(ctx context.Context, path string, out runtime.Object) error {
	return k.rc.Get().AbsPath(path).Do(ctx).Into(out)
}

// list reads a collection, optionally filtered by a label selector.
func (k *kube) list(ctx context.Context, path, selector string, out runtime.Object) error {
	r := k.rc.Get().AbsPath(path)
	if selector != "" {
		r = r.Param("labelSelector", selector)
	}
	return r.Do(ctx).Into(out)
}

// create posts in to a collection path and decodes the result into out.
func (k *kube) create(ctx context.Context, path string, in, out runtime.Object) error {
	return k.rc.Post().AbsPath(path).Body(in).Do(ctx).Into(out)
}

// mergePatch applies a JSON merge patch to the object at path.
func (k *kube) mergePatch(ctx context.Context, path string, patch []byte, out runtime.Object) error {
	return k.rc.Patch(types.MergePatchType).AbsPath(path).Body(patch).Do(ctx).Into(out)
}

// remove deletes the object at path.
func (k *kube) remove(ctx context.Context, path string) error {
	return k.rc.Delete().AbsPath(path).Do(ctx).Error()
}
