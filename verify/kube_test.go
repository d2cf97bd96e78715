package verify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// TestKubeCodecs: the client's own codecs (not client-go's scheme of every
// group) send typed objects with their apiVersion and kind, decode typed
// answers and lists, and turn an API Status into apimachinery's errors.
func TestKubeCodecs(t *testing.T) {
	var posted map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodPost:
			body, _ := io.ReadAll(r.Body)
			json.Unmarshal(body, &posted)
			w.Write(body)
		case strings.HasSuffix(r.URL.Path, "/deployments/coredns"):
			w.Write([]byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"coredns"},"status":{"readyReplicas":2}}`))
		case strings.HasSuffix(r.URL.Path, "/nodes"):
			w.Write([]byte(`{"apiVersion":"v1","kind":"NodeList","items":[{"metadata":{"name":"w1"}},{"metadata":{"name":"w2"}}]}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"apiVersion":"v1","kind":"Status","status":"Failure","reason":"NotFound","code":404,"message":"nodes \"w9\" not found"}`))
		}
	}))
	defer srv.Close()
	k, err := newKube(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	in := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}, StringData: map[string]string{"k": "v"}}
	out := &corev1.Secret{}
	if err := k.create(ctx, "/api/v1/namespaces/default/secrets", in, out); err != nil {
		t.Fatal(err)
	}
	if posted["apiVersion"] != "v1" || posted["kind"] != "Secret" || out.Name != "s" || out.StringData["k"] != "v" {
		t.Errorf("posted %v, decoded %+v", posted, out)
	}
	dep := &appsv1.Deployment{}
	if err := k.get(ctx, "/apis/apps/v1/namespaces/kube-system/deployments/coredns", dep); err != nil || dep.Name != "coredns" || dep.Status.ReadyReplicas != 2 {
		t.Errorf("get: %v %+v", err, dep)
	}
	nodes := &corev1.NodeList{}
	if err := k.list(ctx, "/api/v1/nodes", "", nodes); err != nil || len(nodes.Items) != 2 || nodes.Items[1].Name != "w2" {
		t.Errorf("list: %v %+v", err, nodes)
	}
	err = k.get(ctx, "/api/v1/nodes/w9", &corev1.Node{})
	if !apierrors.IsNotFound(err) || err.Error() != `nodes "w9" not found` {
		t.Errorf("a 404 Status gave %v", err)
	}
}
