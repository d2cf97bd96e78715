package pki

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	cfconfig "github.com/cloudflare/cfssl/config"
	"github.com/cloudflare/cfssl/csr"
	"github.com/cloudflare/cfssl/helpers"
	"github.com/cloudflare/cfssl/initca"
	cflog "github.com/cloudflare/cfssl/log"
	"github.com/cloudflare/cfssl/signer"
	"github.com/cloudflare/cfssl/signer/local"

	"github.com/hardway-dev/hardway/spec"
)

// TestSameAsCfssl: every certificate Ensure issues is, as `openssl x509
// -text` shows it, the one cfssl v1.6.5 issues for the same row (initca
// for a CA; the local signer, with the signing profiles hardway used until
// it dropped cfssl, for a leaf): the same version, signature algorithm,
// issuer, subject, key type and size, extensions in the same order with
// the same criticality and values, and validity. What differs by nature
// is replaced before comparing, after being checked: the serial (positive,
// at most 20 bytes), the dates (the minute, 5 minutes back; the same
// length), the key identifiers (the SHA-1 of the public key, which openssl
// computes as the "public key OCSP hash", for the subject's and for its
// issuer's), and key and signature bytes.
func TestSameAsCfssl(t *testing.T) {
	cflog.Level = cflog.LevelFatal
	algos := []string{"ecdsa-p256", "ecdsa-p384"}
	if !testing.Short() {
		algos = append(algos, "rsa-2048", "rsa-3072", "rsa-4096")
	}
	for _, algo := range algos {
		t.Run(algo, func(t *testing.T) {
			c := load(t, "../examples/seed-lxc.yaml", func(c *spec.Cluster) { c.Spec.PKI.Algorithm = algo })
			dir := t.TempDir()
			start := time.Now()
			b := ensure(t, c, dir, Options{})
			ref := cfsslIssue(t, c, b.Plan, filepath.Join(dir, "cfssl"))
			var paths []string
			for _, d := range []string{filepath.Join(dir, "pki"), ref} {
				for _, row := range b.Plan {
					paths = append(paths, filepath.Join(d, row.Name+".crt"))
				}
			}
			texts := opensslText(t, paths)
			for _, row := range b.Plan {
				caName := row.CA
				if row.IsCA() {
					caName = row.Name
				}
				view := func(d string) string {
					return opensslView(t, texts[filepath.Join(d, row.Name+".crt")], texts[filepath.Join(d, caName+".crt")], start)
				}
				if got, want := view(filepath.Join(dir, "pki")), view(ref); got != want {
					t.Errorf("%s differs from cfssl's:\n--- hardway\n%s\n--- cfssl\n%s", row.Name, got, want)
				}
			}
		})
	}
}

// cfsslIssue issues plan with cfssl's library into dir, as hardway did
// up to December 2026, and returns dir.
func cfsslIssue(t *testing.T, c *spec.Cluster, plan []Cert, dir string) string {
	t.Helper()
	a, bits, _ := strings.Cut(c.Spec.PKI.Algorithm, "-")
	kr := &csr.KeyRequest{A: a}
	fmt.Sscanf(strings.TrimPrefix(bits, "p"), "%d", &kr.S)
	caValidity, _ := time.ParseDuration(c.Spec.PKI.CAValidity)
	leafValidity, _ := time.ParseDuration(c.Spec.PKI.CertValidity)
	if err := os.MkdirAll(filepath.Join(dir, "etcd"), 0o755); err != nil {
		t.Fatal(err)
	}
	signers := map[string]*local.Signer{}
	write := func(name string, certPEM []byte) {
		if err := os.WriteFile(filepath.Join(dir, name+".crt"), certPEM, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, row := range plan {
		if row.IsCA() {
			certPEM, _, keyPEM, err := initca.New(&csr.CertificateRequest{CN: row.CN, KeyRequest: kr, CA: &csr.CAConfig{Expiry: caValidity.String()}})
			if err != nil {
				t.Fatal(err)
			}
			write(row.Name, certPEM)
			cert, _ := helpers.ParseCertificatePEM(certPEM)
			key, _ := helpers.ParsePrivateKeyPEM(keyPEM)
			usages := func(u ...string) *cfconfig.SigningProfile {
				p := &cfconfig.SigningProfile{Usage: append([]string{"digital signature", "key encipherment"}, u...), Expiry: leafValidity, ExpiryString: leafValidity.String()}
				if time.Now().Add(leafValidity).After(cert.NotAfter) {
					p.NotAfter = cert.NotAfter
				}
				return p
			}
			policy := &cfconfig.Signing{
				Profiles: map[string]*cfconfig.SigningProfile{
					"server": usages("server auth"),
					"client": usages("client auth"),
					"both":   usages("server auth", "client auth"),
				},
				Default: usages("client auth"),
			}
			s, err := local.NewSigner(key, cert, signer.DefaultSigAlgo(key), policy)
			if err != nil {
				t.Fatal(err)
			}
			signers[row.Name] = s
			continue
		}
		req := &csr.CertificateRequest{CN: row.CN, KeyRequest: kr}
		for _, o := range row.O {
			req.Names = append(req.Names, csr.Name{O: o})
		}
		var hosts []string
		for _, ip := range row.IPs {
			hosts = append(hosts, ip.String())
		}
		hosts = append(hosts, row.DNS...)
		csrPEM, _, err := csr.ParseRequest(req)
		if err != nil {
			t.Fatal(err)
		}
		profile := "client"
		switch {
		case row.Server && row.Client:
			profile = "both"
		case row.Server:
			profile = "server"
		}
		certPEM, err := signers[row.CA].Sign(signer.SignRequest{Request: string(csrPEM), Hosts: hosts, Profile: profile})
		if err != nil {
			t.Fatal(err)
		}
		write(row.Name, certPEM)
	}
	return dir
}

var (
	opensslSerial  = regexp.MustCompile(`(?m)^( +Serial Number:)\n +([0-9a-f:]+)$`)
	opensslDates   = regexp.MustCompile(`(?m)^( +Not Before: )(.+)\n( +Not After : )(.+)$`)
	opensslKeyID   = regexp.MustCompile(`(?m)^( +X509v3 (Subject|Authority) Key Identifier: *)\n +([0-9A-F:]+)$`)
	opensslPubHash = regexp.MustCompile(`(?m)^ *Public key OCSP hash: ([0-9A-F]+)\n`)
	opensslHexRun  = regexp.MustCompile(`(?m)(^ +([0-9a-f]{2}:)+([0-9a-f]{2})?\n)+`)
)

// opensslText runs `openssl x509 -text -ocspid` on every path, 8 at a
// time, and returns the outputs by path.
func opensslText(t *testing.T, paths []string) map[string]string {
	t.Helper()
	out := make([]string, len(paths))
	errs := make([]error, len(paths))
	var wg sync.WaitGroup
	limit := make(chan struct{}, 8)
	for i, p := range paths {
		wg.Go(func() {
			limit <- struct{}{}
			defer func() { <-limit }()
			b, err := exec.Command("openssl", "x509", "-noout", "-text", "-ocspid", "-in", p).CombinedOutput()
			out[i] = string(b)
			if err != nil {
				errs[i] = fmt.Errorf("openssl x509 %s: %v\n%s", p, err, b)
			}
		})
	}
	wg.Wait()
	texts := map[string]string{}
	for i, p := range paths {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		texts[p] = out[i]
	}
	return texts
}

// opensslView is text, openssl's view of a certificate, with the values
// that differ by nature checked and replaced by what they must be; issuer
// is its issuer's, and start a time before both were issued.
func opensslView(t *testing.T, text, issuer string, start time.Time) string {
	t.Helper()
	pubHash := func(text string) string {
		m := opensslPubHash.FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("no public key OCSP hash in\n%s", text)
		}
		return m[1]
	}
	own, issuers := pubHash(text), pubHash(issuer)
	text = opensslPubHash.ReplaceAllString(text, "")
	text = regexp.MustCompile(`(?m)^ *Subject OCSP hash: .*\n`).ReplaceAllString(text, "")
	text = opensslSerial.ReplaceAllStringFunc(text, func(s string) string {
		m := opensslSerial.FindStringSubmatch(s)
		// openssl prints a positive serial's magnitude (a negative one on
		// a line of its own); DER adds a 00 byte before one of 80 or more.
		b := strings.Split(m[2], ":")
		if len(b) > 20 || len(b) == 20 && b[0] >= "80" {
			return s // its DER is not 20 bytes or less: left to differ
		}
		return m[1] + " <positive, at most 20 bytes>"
	})
	text = opensslDates.ReplaceAllStringFunc(text, func(s string) string {
		m := opensslDates.FindStringSubmatch(s)
		const layout = "Jan _2 15:04:05 2006 MST"
		from, err1 := time.Parse(layout, m[2])
		to, err2 := time.Parse(layout, m[4])
		if err1 != nil || err2 != nil || from.Second() != 0 || from.Before(start.Add(-backdate-time.Minute)) || from.After(time.Now().Add(-backdate+time.Minute)) {
			return s
		}
		return fmt.Sprintf("%s<the minute, %s back>\n%s<Not Before + %s>", m[1], backdate, m[3], to.Sub(from))
	})
	text = opensslKeyID.ReplaceAllStringFunc(text, func(s string) string {
		m := opensslKeyID.FindStringSubmatch(s)
		id := strings.ReplaceAll(m[3], ":", "")
		switch {
		case m[2] == "Subject" && id == own:
			return m[1] + "<SHA-1 of the public key>"
		case m[2] == "Authority" && id == issuers:
			return m[1] + "<SHA-1 of the issuer's public key>"
		}
		return s
	})
	return opensslHexRun.ReplaceAllString(text, "<bytes>\n")
}
