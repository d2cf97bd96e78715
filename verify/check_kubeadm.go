package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// kubeadmNotOurs are the rows of `kubeadm certs check-expiration` that
// hardway's PKI does not hold under kubeadm's name: the kubeconfigs (kubeadm
// reads /etc/kubernetes/*.conf; ours are kubeconfigs/*.kubeconfig) and the
// single-member etcd certificates (ours are per member:
// etcd/server-<node>.crt, etcd/peer-<node>.crt).
var kubeadmNotOurs = []string{"admin.conf", "controller-manager.conf", "scheduler.conf", "super-admin.conf", "etcd-server", "etcd-peer"}

// checkKubeadm: the pinned kubeadm reads the generated PKI with only
// --cert-dir: every certificate kubeadm knows by a name hardway uses is
// present and valid, every CA too; the rows it reports missing are exactly
// kubeadmNotOurs.
func checkKubeadm(ctx context.Context, v *run) (string, error) {
	bin, err := v.binary("kubeadm")
	if err != nil {
		return "", err
	}
	pki := filepath.Join(v.o.Dir, "pki")
	cmd := exec.CommandContext(ctx, bin, "certs", "check-expiration", "--cert-dir", pki, "-o", "json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("kubeadm certs check-expiration --cert-dir %s: %v: %s", pki, err, firstLine(stderr.String()))
	}
	var info struct {
		Certificates []kubeadmCert `json:"certificates"`
		CAs          []kubeadmCert `json:"certificateAuthorities"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return "", fmt.Errorf("kubeadm output: %w", err)
	}
	var missing, read []string
	for _, c := range append(info.Certificates, info.CAs...) {
		switch {
		case c.Missing:
			missing = append(missing, c.Name)
		case c.ResidualTime <= 0:
			return "", fmt.Errorf("kubeadm: %s has expired", c.Name)
		default:
			read = append(read, c.Name)
		}
	}
	slices.Sort(missing)
	want := slices.Sorted(slices.Values(kubeadmNotOurs))
	if !slices.Equal(missing, want) {
		return "", fmt.Errorf("kubeadm reports missing %v; only %v are not in hardway's layout", missing, want)
	}
	note := ""
	if _, err := os.Stat("/etc/kubernetes"); err == nil {
		note = " (the .conf rows came from the build machine's /etc/kubernetes)"
	}
	return fmt.Sprintf("exit 0, read %s; missing as expected (kubeadm-only layout: our kubeconfigs are kubeconfigs/*.kubeconfig, etcd server/peer certs are per member): %s%s",
		strings.Join(read, ", "), strings.Join(missing, ", "), note), nil
}

// firstLine is the first line of s (kubeadm's error, before its hint about --v).
func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// kubeadmCert is one row of kubeadm's CertificateExpirationInfo.
type kubeadmCert struct {
	Name         string `json:"name"`
	ResidualTime int64  `json:"residualTime"` // seconds
	Missing      bool   `json:"missing"`
}
