package verify

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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

// TestKubeRetry: a read is retried through a dropped connection and a 503
// until the server answers; a create is not retried once the server has
// it (a 503), but is when nothing listened yet; an error the server decided
// (403) ends a read at once; a read that never succeeds ends with its context.
func TestKubeRetry(t *testing.T) {
	var reads, creates, forbidden atomic.Int32
	unavailable := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"apiVersion":"v1","kind":"Status","status":"Failure","reason":"ServiceUnavailable","code":503}`))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/nodes/w1", func(w http.ResponseWriter, r *http.Request) {
		switch reads.Add(1) {
		case 1: // the connection dropped mid-request
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
		case 2:
			unavailable(w)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"apiVersion":"v1","kind":"Node","metadata":{"name":"w1"}}`))
		}
	})
	mux.HandleFunc("/api/v1/namespaces", func(w http.ResponseWriter, r *http.Request) {
		creates.Add(1)
		unavailable(w)
	})
	mux.HandleFunc("/api/v1/nodes/w3", func(w http.ResponseWriter, r *http.Request) { unavailable(w) })
	mux.HandleFunc("/api/v1/nodes/w2", func(w http.ResponseWriter, r *http.Request) {
		forbidden.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"apiVersion":"v1","kind":"Status","status":"Failure","reason":"Forbidden","code":403}`))
	})

	// Nothing listens on the address yet: the server starts after a moment.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	srv := &http.Server{Handler: mux}
	defer srv.Close()
	go func() {
		time.Sleep(600 * time.Millisecond)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Error(err)
			return
		}
		srv.Serve(l)
	}()
	k, err := newKube(&rest.Config{Host: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "x-"}}
	if err := k.create(ctx, "/api/v1/namespaces", ns, &corev1.Namespace{}); !apierrors.IsServiceUnavailable(err) || creates.Load() != 1 {
		t.Errorf("a create refused, then answered 503: %v after %d requests, want the 503 after 1", err, creates.Load())
	}
	node := &corev1.Node{}
	if err := k.get(ctx, "/api/v1/nodes/w1", node); err != nil || node.Name != "w1" || reads.Load() < 3 {
		t.Errorf("a read through a dropped connection and a 503: %v, %q, after %d requests", err, node.Name, reads.Load())
	}
	if err := k.get(ctx, "/api/v1/nodes/w2", node); !apierrors.IsForbidden(err) || forbidden.Load() != 1 {
		t.Errorf("a read answered 403: %v after %d requests, want the 403 after 1", err, forbidden.Load())
	}
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	start := time.Now()
	if err := k.get(short, "/api/v1/nodes/w3", node); !apierrors.IsServiceUnavailable(err) || time.Since(start) > 5*time.Second {
		t.Errorf("a read that never succeeds: %v after %s, want an error when its context ends", err, time.Since(start))
	}
}
