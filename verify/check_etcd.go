package verify

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hardway-dev/hardway/generators/controller"
	"github.com/hardway-dev/hardway/generators/etcd"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/unitfile"
)

// etcdTLS trusts the generated etcd CA and, with withCert, presents the
// generated healthcheck client certificate (pki/etcd/healthcheck-client).
func (v *run) etcdTLS(withCert bool) (*tls.Config, error) {
	pool, err := certPool(filepath.Join(v.o.Dir, "pki", "etcd", "ca.crt"))
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{RootCAs: pool}
	if withCert {
		pair, err := tls.LoadX509KeyPair(filepath.Join(v.o.Dir, "pki", "etcd", "healthcheck-client.crt"),
			filepath.Join(v.o.Dir, "pki", "etcd", "healthcheck-client.key"))
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// certPool reads a PEM CA bundle.
func certPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s: no certificate", path)
	}
	return pool, nil
}

// etcdPost calls one JSON endpoint of etcd's gRPC gateway (/v3/...).
func etcdPost(ctx context.Context, c *http.Client, base, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %d %s", path, resp.StatusCode, bytes.TrimSpace(data))
	}
	return json.Unmarshal(data, out)
}

// etcdMembers returns the etcd nodes and their client URLs.
func (v *run) etcdMembers() ([]*node, []string, error) {
	var nodes []*node
	var urls []string
	for _, n := range v.c.NodesWith(spec.RoleEtcd) {
		nd := v.byName[n.Name]
		u, err := etcdClientURL(nd.argv[etcd.Unit])
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", n.Name, err)
		}
		nodes = append(nodes, nd)
		urls = append(urls, u)
	}
	if len(nodes) == 0 {
		return nil, nil, errors.New("the spec has no etcd member")
	}
	return nodes, urls, nil
}

// checkEtcd: every member healthy over TLS with the healthcheck client
// certificate, the member list equals the spec, a client without a
// certificate is refused.
func checkEtcd(ctx context.Context, v *run) (string, error) {
	nodes, urls, err := v.etcdMembers()
	if err != nil {
		return "", err
	}
	tc, err := v.etcdTLS(true)
	if err != nil {
		return "", err
	}
	cl := httpClient(v.net.Hub, tc)
	for i, u := range urls {
		code, body, err := get(ctx, cl, u+"/health")
		if err != nil {
			return "", fmt.Errorf("%s: %w", nodes[i].spec.Name, err)
		}
		if code != http.StatusOK || !strings.Contains(body, `"health":"true"`) {
			return "", fmt.Errorf("%s /health: %d %s", nodes[i].spec.Name, code, body)
		}
	}
	got, err := memberList(ctx, cl, urls[0])
	if err != nil {
		return "", err
	}
	var want []string
	for _, nd := range nodes {
		want = append(want, nd.spec.Name+"@"+nd.spec.IP().String())
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		return "", fmt.Errorf("member list %v, spec %v", got, want)
	}
	refused, err := refusedWithoutCert(ctx, v, urls[0])
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d/%d healthy with healthcheck-client; members %s = spec; no client cert: %s",
		len(urls), len(urls), strings.Join(got, ", "), refused), nil
}

// memberList returns "name@peer-host" of every member, sorted.
func memberList(ctx context.Context, cl *http.Client, base string) ([]string, error) {
	var ml struct {
		Members []struct {
			Name     string   `json:"name"`
			PeerURLs []string `json:"peerURLs"`
		} `json:"members"`
	}
	if err := etcdPost(ctx, cl, base, "/v3/cluster/member/list", struct{}{}, &ml); err != nil {
		return nil, err
	}
	var got []string
	for _, m := range ml.Members {
		host := "?"
		if len(m.PeerURLs) > 0 {
			if u, err := url.Parse(m.PeerURLs[0]); err == nil {
				host = u.Hostname()
			}
		}
		got = append(got, m.Name+"@"+host)
	}
	slices.Sort(got)
	return got, nil
}

// refusedWithoutCert asks a member for its member list without a client
// certificate and returns the refusal; being served is an error.
func refusedWithoutCert(ctx context.Context, v *run, base string) (string, error) {
	tc, err := v.etcdTLS(false)
	if err != nil {
		return "", err
	}
	_, err = memberList(ctx, httpClient(v.net.Hub, tc), base)
	switch {
	case err == nil:
		return "", errors.New("a client without a certificate was served")
	case strings.Contains(err.Error(), "certificate"):
		return lastColon(err.Error()), nil
	default:
		return "", fmt.Errorf("client without a certificate: unexpected error: %w", err)
	}
}

// lastColon keeps the end of a wrapped error message.
func lastColon(s string) string {
	parts := strings.Split(s, ": ")
	if len(parts) > 2 {
		parts = parts[len(parts)-2:]
	}
	return strings.Join(parts, ": ")
}

// checkEncryption: a Secret's raw value in etcd starts with
// k8s:enc:<provider>:v1: (the provider of the spec).
func checkEncryption(ctx context.Context, v *run) (string, error) {
	cs, err := v.clientset("super-admin")
	if err != nil {
		return "", err
	}
	const plain = "hardway-verify-plaintext"
	in := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "hardway-verify-"},
		StringData: map[string]string{"value": plain},
	}
	sec := &corev1.Secret{}
	if err := cs.create(ctx, "/api/v1/namespaces/default/secrets", in, sec); err != nil {
		return "", fmt.Errorf("create Secret: %w", err)
	}
	defer cs.remove(context.WithoutCancel(ctx), "/api/v1/namespaces/default/secrets/"+sec.Name)
	prefix := "/registry"
	if p, ok := unitfile.Flag(v.firstController().argv[controller.APIServerUnit], "etcd-prefix"); ok {
		prefix = p
	}
	key := prefix + "/secrets/default/" + sec.Name
	raw, err := v.etcdGet(ctx, key)
	if err != nil {
		return "", err
	}
	want := "k8s:enc:" + v.c.Spec.Encryption.Provider + ":v1:"
	if !bytes.HasPrefix(raw, []byte(want)) || bytes.Contains(raw, []byte(plain)) {
		return "", fmt.Errorf("%s is stored as %s…, want prefix %s", key, printable(raw, 24), want)
	}
	keyName, _, _ := strings.Cut(strings.TrimPrefix(string(raw), want), ":")
	return fmt.Sprintf("%s is %s%s:…, no plaintext", key, want, printable([]byte(keyName), 16)), nil
}

// etcdGet reads one key's raw value from the first etcd member.
func (v *run) etcdGet(ctx context.Context, key string) ([]byte, error) {
	_, urls, err := v.etcdMembers()
	if err != nil {
		return nil, err
	}
	tc, err := v.etcdTLS(true)
	if err != nil {
		return nil, err
	}
	var rr struct {
		Kvs []struct {
			Value []byte `json:"value"` // base64 in JSON
		} `json:"kvs"`
	}
	in := map[string]string{"key": base64.StdEncoding.EncodeToString([]byte(key))}
	if err := etcdPost(ctx, httpClient(v.net.Hub, tc), urls[0], "/v3/kv/range", in, &rr); err != nil {
		return nil, err
	}
	if len(rr.Kvs) != 1 {
		return nil, fmt.Errorf("etcd has no key %s", key)
	}
	return rr.Kvs[0].Value, nil
}

// printable shows the first n bytes of b with non-printable bytes escaped.
func printable(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	s := fmt.Sprintf("%q", b)
	return s[1 : len(s)-1]
}
