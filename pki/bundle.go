package pki

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hardway-dev/hardway/spec"
)

// Store is where the pki state lives; paths are relative to the pki directory.
// ReadFile returns an error satisfying errors.Is(err, fs.ErrNotExist) for a missing file.
// Ensure calls ReadFile, and then WriteFile, from several goroutines at once
// (never a ReadFile beside a WriteFile).
type Store interface {
	ReadFile(name string) ([]byte, error)
	WriteFile(name string, data []byte, perm fs.FileMode) error
}

// File modes, as kubeadm writes them.
const (
	KeyMode  fs.FileMode = 0o600
	CertMode fs.FileMode = 0o644
)

// Pair is an issued certificate with its key.
type Pair struct {
	Cert    Cert
	CertPEM []byte
	KeyPEM  []byte // empty for an external CA
	// X509 and key are a CA's, which signs: a leaf keeps its PEM only
	// (the parsed forms are ~3 KB a leaf, 30 MB for 10,000 workers).
	X509 *x509.Certificate
	key  crypto.Signer
}

// Change records a certificate or key that a run created or replaced.
type Change struct {
	Name   string
	Reason string
}

// Bundle is the cluster's complete PKI state.
type Bundle struct {
	Plan          []Cert
	Pairs         map[string]*Pair
	SAKeyPEM      []byte
	SAPubPEM      []byte
	EncryptionKey []byte // 32 random bytes, the secret of the EncryptionConfiguration
	Changes       []Change
}

// Get returns the pair called name; the plan guarantees it exists.
func (b *Bundle) Get(name string) *Pair {
	p, ok := b.Pairs[name]
	if !ok {
		panic("pki: no pair " + name)
	}
	return p
}

// Options tune Ensure.
type Options struct {
	// Renew lists leaf names to re-issue (new key, same CA) even if they are valid.
	Renew []string
	// Now is the clock; zero means time.Now.
	Now time.Time
}

// Ensure loads the PKI state from st and creates or re-issues whatever the
// spec needs: missing CAs and keys are created, leaves whose identity
// (subject, SANs, usages, signer, key algorithm) no longer matches the plan,
// or that have expired, are re-issued with the same CA. Nothing else changes.
func Ensure(c *spec.Cluster, st Store, o Options) (*Bundle, error) {
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	algo, err := parseKeyAlgo(c.Spec.PKI.Algorithm)
	if err != nil {
		return nil, err
	}
	caValidity, _ := time.ParseDuration(c.Spec.PKI.CAValidity)
	leafValidity, _ := time.ParseDuration(c.Spec.PKI.CertValidity)

	b := &Bundle{Plan: Plan(c), Pairs: map[string]*Pair{}}
	for _, name := range o.Renew {
		row, err := Find(b.Plan, name)
		if err != nil {
			return nil, err
		}
		if row.IsCA() {
			return nil, fmt.Errorf("%s is a CA; CAs are not renewed (delete %s.crt and %s.key to replace it and every certificate it signed)", name, name, name)
		}
	}

	var leaves []Cert
	for _, row := range b.Plan {
		if row.IsCA() {
			p, err := ensureCA(st, row, algo, caValidity, now, b)
			if err != nil {
				return nil, err
			}
			b.Pairs[row.Name] = p
			continue
		}
		leaves = append(leaves, row)
	}

	// Load every leaf there is (reading, parsing and checking the
	// signature of each is most of a run that issues nothing), decide
	// which to (re)issue, then issue those; both in parallel.
	loaded := make([]*Pair, len(leaves))
	reasons := make([]string, len(leaves))
	inParallel(len(leaves), func(i int) {
		loaded[i], reasons[i] = loadLeaf(st, leaves[i], b.Pairs[leaves[i].CA].X509, algo, now)
	})
	type job struct {
		row    Cert
		reason string
	}
	var jobs []job
	for i, row := range leaves {
		p, reason := loaded[i], reasons[i]
		if slices.Contains(o.Renew, row.Name) && reason == "" {
			reason = "renewed on request"
		}
		if reason == "" {
			b.Pairs[row.Name] = p
			continue
		}
		if ca := b.Pairs[row.CA]; ca.key == nil {
			return nil, fmt.Errorf("%s must be issued (%s) but %s.key is missing: the %s CA is managed externally; issue %s.crt/.key with it", row.Name, reason, row.CA, row.CA, row.Name)
		}
		jobs = append(jobs, job{row, reason})
	}
	// Each leaf is issued and written on one goroutine: creating files is
	// most of a first run, and files are created in parallel too.
	results := make([]*Pair, len(jobs))
	errs := make([]error, len(jobs))
	inParallel(len(jobs), func(i int) {
		results[i], errs[i] = issueLeaf(st, b.Pairs[jobs[i].row.CA], jobs[i].row, algo, leafValidity, now)
	})
	for i, j := range jobs {
		if errs[i] != nil {
			return nil, errs[i]
		}
		b.Pairs[j.row.Name] = results[i]
		b.Changes = append(b.Changes, Change{j.row.Name, j.reason})
	}

	if err := ensureSA(st, algo, b); err != nil {
		return nil, err
	}
	if err := ensureEncryptionKey(st, b); err != nil {
		return nil, err
	}
	return b, nil
}

// issueLeaf issues row with ca and writes its key and certificate to st.
func issueLeaf(st Store, ca *Pair, row Cert, k keyAlgo, validity time.Duration, now time.Time) (*Pair, error) {
	p, err := newLeaf(ca, row, k, validity, now)
	if err != nil {
		return nil, fmt.Errorf("issue %s: %w", row.Name, err)
	}
	// Key first: a run killed between the two writes leaves a cert that
	// does not match its key, which the next run detects and re-issues.
	if err := st.WriteFile(row.Name+".key", p.KeyPEM, KeyMode); err != nil {
		return nil, err
	}
	if err := st.WriteFile(row.Name+".crt", p.CertPEM, CertMode); err != nil {
		return nil, err
	}
	return p, nil
}

// inParallel calls f(0) ... f(n-1) on one goroutine per processor.
func inParallel(n int, f func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(n, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for i := range next {
				f(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

func read(st Store, name string) ([]byte, bool, error) {
	data, err := st.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return data, true, nil
}

func ensureCA(st Store, row Cert, k keyAlgo, validity time.Duration, now time.Time, b *Bundle) (*Pair, error) {
	certPEM, haveCert, err := read(st, row.Name+".crt")
	if err != nil {
		return nil, err
	}
	keyPEM, haveKey, err := read(st, row.Name+".key")
	if err != nil {
		return nil, err
	}
	switch {
	case haveCert:
		cert, err := parseCertPEM(certPEM)
		if err != nil {
			return nil, fmt.Errorf("%s.crt: %w (fix or delete it; deleting a CA re-issues everything it signed)", row.Name, err)
		}
		if !cert.IsCA {
			return nil, fmt.Errorf("%s.crt is not a CA certificate", row.Name)
		}
		p := &Pair{Cert: row, CertPEM: certPEM, X509: cert}
		if haveKey {
			key, err := parseKeyPEM(keyPEM)
			if err != nil {
				return nil, fmt.Errorf("%s.key: %w", row.Name, err)
			}
			if !publicKeyEqual(key.Public(), cert.PublicKey) {
				return nil, fmt.Errorf("%s.key does not belong to %s.crt; restore the matching key (a CA is never replaced silently)", row.Name, row.Name)
			}
			p.KeyPEM, p.key = keyPEM, key
		}
		return p, nil
	case haveKey:
		// A CA key without its certificate: a run was killed between the
		// two renames below (the key goes first, so that a certificate is
		// never left without its key, which would read as an external
		// CA), or the certificate was deleted by hand. The certificate is
		// issued again from this key, not a new CA made: if the key was
		// never used, both are the same; if the certificate was lost,
		// every certificate and kubeconfig signed by this key still
		// verifies against the new one (same subject, same key), whereas
		// a new key would silently replace the CA.
		key, err := parseKeyPEM(keyPEM)
		if err != nil {
			return nil, fmt.Errorf("%s.key exists without %s.crt and cannot be read (%w); restore the certificate, or delete the key to create a new CA", row.Name, row.Name, err)
		}
		certPEM, cert, err := newCA(row, key, validity, now)
		if err != nil {
			return nil, fmt.Errorf("issue CA %s from its existing key: %w", row.Name, err)
		}
		if err := st.WriteFile(row.Name+".crt", certPEM, CertMode); err != nil {
			return nil, err
		}
		b.Changes = append(b.Changes, Change{row.Name, "CA certificate issued again from the existing " + row.Name + ".key"})
		return &Pair{Cert: row, CertPEM: certPEM, KeyPEM: keyPEM, X509: cert, key: key}, nil
	}
	key, keyPEM, err := newKey(k)
	if err != nil {
		return nil, fmt.Errorf("create CA %s: %w", row.Name, err)
	}
	certPEM, cert, err := newCA(row, key, validity, now)
	if err != nil {
		return nil, fmt.Errorf("create CA %s: %w", row.Name, err)
	}
	if err := st.WriteFile(row.Name+".key", keyPEM, KeyMode); err != nil {
		return nil, err
	}
	if err := st.WriteFile(row.Name+".crt", certPEM, CertMode); err != nil {
		return nil, err
	}
	b.Changes = append(b.Changes, Change{row.Name, "new CA"})
	return &Pair{Cert: row, CertPEM: certPEM, KeyPEM: keyPEM, X509: cert, key: key}, nil
}

// loadLeaf loads an existing leaf and returns why it must be re-issued, or "".
func loadLeaf(st Store, row Cert, ca *x509.Certificate, k keyAlgo, now time.Time) (*Pair, string) {
	certPEM, haveCert, err := read(st, row.Name+".crt")
	if err != nil || !haveCert {
		return nil, "missing"
	}
	keyPEM, haveKey, err := read(st, row.Name+".key")
	if err != nil || !haveKey {
		return nil, "key missing"
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, "unreadable certificate"
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, "unreadable key"
	}
	if !publicKeyEqual(key.Public(), cert.PublicKey) {
		return nil, "key does not match certificate"
	}
	if !k.matches(cert.PublicKey) {
		return nil, "key algorithm changed"
	}
	if cert.CheckSignatureFrom(ca) != nil {
		return nil, "signed by another CA"
	}
	if d := Diff(row, cert); d != "" {
		return nil, d
	}
	if now.After(cert.NotAfter) {
		return nil, "expired"
	}
	return &Pair{Cert: row, CertPEM: certPEM, KeyPEM: keyPEM}, ""
}

// Diff compares a certificate with its plan row and describes the first
// difference in identity, or returns "" when they agree.
func Diff(row Cert, cert *x509.Certificate) string {
	if cert.Subject.CommonName != row.CN {
		return fmt.Sprintf("CN changed (%s → %s)", cert.Subject.CommonName, row.CN)
	}
	if !sameSet(cert.Subject.Organization, row.O) {
		return fmt.Sprintf("O changed (%v → %v)", cert.Subject.Organization, row.O)
	}
	var ips []string
	for _, ip := range cert.IPAddresses {
		if a, ok := netip.AddrFromSlice(ip); ok {
			ips = append(ips, a.Unmap().String())
		}
	}
	var want []string
	for _, a := range row.IPs {
		want = append(want, a.String())
	}
	if d := setDiff(append(ips, cert.DNSNames...), append(want, row.DNS...)); d != "" {
		return "SANs changed (" + d + ")"
	}
	var usages []x509.ExtKeyUsage
	if row.Server {
		usages = append(usages, x509.ExtKeyUsageServerAuth)
	}
	if row.Client {
		usages = append(usages, x509.ExtKeyUsageClientAuth)
	}
	if !sameSet(cert.ExtKeyUsage, usages) {
		return "key usages changed"
	}
	return ""
}

func sameSet[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			return false
		}
	}
	return true
}

// setDiff describes b relative to a as "+added -removed".
func setDiff(a, b []string) string {
	var parts []string
	for _, x := range b {
		if !slices.Contains(a, x) {
			parts = append(parts, "+"+x)
		}
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			parts = append(parts, "-"+x)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// ensureSA keeps or creates the service-account key pair; sa.pub is always derived from sa.key.
func ensureSA(st Store, k keyAlgo, b *Bundle) error {
	keyPEM, ok, err := read(st, SAKey+".key")
	if err != nil {
		return err
	}
	var key crypto.Signer
	if ok {
		key, err = parseKeyPEM(keyPEM)
		if err != nil {
			return fmt.Errorf("%s.key: %w (delete it to create a new service-account key; existing tokens become invalid)", SAKey, err)
		}
	} else {
		key, keyPEM, err = newKey(k)
		if err != nil {
			return err
		}
		if err := st.WriteFile(SAKey+".key", keyPEM, KeyMode); err != nil {
			return err
		}
		b.Changes = append(b.Changes, Change{SAKey, "new service-account key"})
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return err
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	old, _, err := read(st, SAKey+".pub")
	if err != nil {
		return err
	}
	if !bytes.Equal(old, pubPEM) {
		if err := st.WriteFile(SAKey+".pub", pubPEM, CertMode); err != nil {
			return err
		}
	}
	b.SAKeyPEM, b.SAPubPEM = keyPEM, pubPEM
	return nil
}

// EncryptionKeyFile holds the base64 secret of the EncryptionConfiguration.
const EncryptionKeyFile = "encryption.key"

func ensureEncryptionKey(st Store, b *Bundle) error {
	data, ok, err := read(st, EncryptionKeyFile)
	if err != nil {
		return err
	}
	if ok {
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
		if err != nil || len(key) != 32 {
			return fmt.Errorf("%s must hold 32 bytes in base64; restore it (it decrypts the cluster's Secrets)", EncryptionKeyFile)
		}
		b.EncryptionKey = key
		return nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	if err := st.WriteFile(EncryptionKeyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), KeyMode); err != nil {
		return err
	}
	b.EncryptionKey = key
	b.Changes = append(b.Changes, Change{EncryptionKeyFile, "new encryption-at-rest key"})
	return nil
}
