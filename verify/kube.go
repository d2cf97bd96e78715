package verify

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
)

// kube is a minimal typed client over client-go's REST client: the few
// calls the checks make, with k8s.io/api types and apimachinery's errors.
// (The generated clientset would need modules the root go.mod does not list.)
type kube struct{ rc *rest.RESTClient }

// codecs encode and decode the API groups the checks use, and the API's
// Status (errors). They are made on first use: client-go's
// kubernetes/scheme registers every group of the API in its package init,
// which every start of hardway paid for (~14 ms and 650 KB, and the init
// of ~50 k8s.io/api packages), whatever the command.
var codecs = sync.OnceValues(func() (serializer.CodecFactory, error) {
	s := runtime.NewScheme()
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, authnv1.AddToScheme, authzv1.AddToScheme,
		coordv1.AddToScheme, discoveryv1.AddToScheme, rbacv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			return serializer.CodecFactory{}, err
		}
	}
	return serializer.NewCodecFactory(s), nil
})

// newKube returns a client for cfg.
func newKube(cfg *rest.Config) (*kube, error) {
	cf, err := codecs()
	if err != nil {
		return nil, err
	}
	c := rest.CopyConfig(cfg)
	c.NegotiatedSerializer = cf.WithoutConversion()
	rc, err := rest.UnversionedRESTClientFor(c)
	if err != nil {
		return nil, err
	}
	return &kube{rc}, nil
}

// get reads the object at an API path (e.g. /api/v1/namespaces/default/services/kubernetes).
func (k *kube) get(ctx context.Context, path string, out runtime.Object) error {
	return retry(ctx, true, func() error { return k.rc.Get().AbsPath(path).Do(ctx).Into(out) })
}

// list reads a collection, optionally filtered by a label selector.
func (k *kube) list(ctx context.Context, path, selector string, out runtime.Object) error {
	return retry(ctx, true, func() error {
		r := k.rc.Get().AbsPath(path)
		if selector != "" {
			r = r.Param("labelSelector", selector)
		}
		return r.Do(ctx).Into(out)
	})
}

// create posts in to a collection path and decodes the result into out.
// It is retried only when the request never reached the API server: a
// create that did may have made an object (one named by generateName
// would be made twice).
func (k *kube) create(ctx context.Context, path string, in, out runtime.Object) error {
	return retry(ctx, false, func() error { return k.rc.Post().AbsPath(path).Body(in).Do(ctx).Into(out) })
}

// mergePatch applies a JSON merge patch to the object at path.
func (k *kube) mergePatch(ctx context.Context, path string, patch []byte, out runtime.Object) error {
	return retry(ctx, true, func() error {
		return k.rc.Patch(types.MergePatchType).AbsPath(path).Body(patch).Do(ctx).Into(out)
	})
}

// remove deletes the object at path.
func (k *kube) remove(ctx context.Context, path string) error {
	return retry(ctx, true, func() error { return k.rc.Delete().AbsPath(path).Do(ctx).Error() })
}

// retry polls an API call until it succeeds, fails for a reason waiting
// will not change, or ctx ends. A check asks what the cluster serves, not
// whether one connection to it got through: an API server of a 1-vCPU VM
// under emulation lets TLS handshakes time out and, restarted by systemd,
// refuses connections for seconds (CI's TestBootSeedKVM failed a NodePort
// row on one "TLS handshake timeout"). Idempotent calls are retried on any
// transient error; others only when the request was not sent (unsent).
func retry(ctx context.Context, idempotent bool, call func() error) error {
	return poll(ctx, 500*time.Millisecond, func() error {
		err := call()
		if err != nil && !unsent(err) && !(idempotent && transient(err)) {
			return permanentError{err}
		}
		return err
	})
}

// unsent reports whether err ended a request before its body could reach
// the API server: no connection, or no TLS session on it.
func unsent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	// net/http's error type for it is unexported; its text is stable.
	return strings.Contains(err.Error(), "TLS handshake timeout")
}

// transient reports whether err may heal by waiting: the API server busy,
// timing out, or unreachable for a moment. An error the server decided
// (not found, forbidden, invalid, conflict) is not.
func transient(err error) bool {
	if errors.As(err, new(apierrors.APIStatus)) {
		return apierrors.IsServerTimeout(err) || apierrors.IsTooManyRequests(err) ||
			apierrors.IsServiceUnavailable(err) || apierrors.IsTimeout(err)
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
