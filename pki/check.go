package pki

import (
	"fmt"
	"io/fs"
	"strconv"
	"time"

	"github.com/hardway-dev/hardway/spec"
)

// Status is the state of one plan row on disk, as `hardway certs check` reports it.
type Status struct {
	Name      string    `json:"name"`
	CN        string    `json:"cn"`
	CA        string    `json:"ca,omitempty"`
	Node      string    `json:"node,omitempty"`
	NotAfter  time.Time `json:"notAfter,omitzero"`
	Residual  string    `json:"residual,omitempty"`
	State     string    `json:"state"` // ok, expiring, expired, missing, mismatch, insecure (key readable by others)
	Reason    string    `json:"reason,omitempty"`
	External  bool      `json:"externallyManaged,omitempty"`
	Algorithm string    `json:"algorithm,omitempty"`
}

// ModeStore is a Store that can also report a file's mode, as output.Sub
// does; Check then reports a private key that others can read.
type ModeStore interface {
	Store
	Mode(name string) (fs.FileMode, error)
}

// ExpiringWithin is when check starts to warn.
const ExpiringWithin = 30 * 24 * time.Hour

// Check reports every plan row without changing anything.
func Check(c *spec.Cluster, st Store, now time.Time) []Status {
	k, _ := parseKeyAlgo(c.Spec.PKI.Algorithm)
	plan := Plan(c)
	cas := map[string]*Pair{}
	var out []Status
	for _, row := range plan {
		s := Status{Name: row.Name, CN: row.CN, CA: row.CA, Node: row.Node}
		certPEM, ok, err := read(st, row.Name+".crt")
		if err != nil || !ok {
			s.State, s.Reason = "missing", "run hardway generate"
			out = append(out, s)
			continue
		}
		cert, err := parseCertPEM(certPEM)
		if err != nil {
			s.State, s.Reason = "mismatch", "unreadable certificate"
			out = append(out, s)
			continue
		}
		s.NotAfter = cert.NotAfter.UTC()
		s.Algorithm = cert.PublicKeyAlgorithm.String()
		if row.IsCA() {
			cas[row.Name] = &Pair{Cert: row, X509: cert}
			if _, ok, _ := read(st, row.Name+".key"); !ok {
				s.External = true
			}
		} else {
			reason := ""
			if ca := cas[row.CA]; ca != nil {
				_, reason = loadLeaf(st, row, ca.X509, k, now)
			}
			if reason != "" && reason != "expired" {
				s.State, s.Reason = "mismatch", reason+"; hardway generate re-issues it"
			}
		}
		if s.State == "" {
			left := cert.NotAfter.Sub(now)
			switch {
			case left <= 0:
				s.State = "expired"
			case left < ExpiringWithin:
				s.State = "expiring"
			default:
				s.State = "ok"
			}
			s.Residual = residual(left)
		}
		if bad := keyMode(st, row.Name+".key"); bad != "" {
			if s.State == "ok" || s.State == "expiring" {
				s.State, s.Reason = "insecure", bad
			} else {
				s.Reason += "; " + bad
			}
		}
		out = append(out, s)
	}
	return out
}

// keyMode describes what is wrong with the mode of key file name, or
// returns "" (also when there is no key, or st cannot tell modes).
func keyMode(st Store, name string) string {
	ms, ok := st.(ModeStore)
	if !ok {
		return ""
	}
	m, err := ms.Mode(name)
	if err != nil || m.Perm() == KeyMode {
		return ""
	}
	if !m.IsRegular() {
		return fmt.Sprintf("%s is not a regular file (%s)", name, m.Type())
	}
	return fmt.Sprintf("%s has mode %04o, not %04o: others can read it; hardway generate sets %04o", name, m.Perm(), KeyMode, KeyMode)
}

// residual prints a duration the way kubeadm does: 364d or 9y.
func residual(d time.Duration) string {
	if d <= 0 {
		return "<invalid>"
	}
	days := int(d.Hours() / 24)
	switch {
	case days >= 365*2:
		return strconv.Itoa(days/365) + "y"
	case days >= 1:
		return strconv.Itoa(days) + "d"
	default:
		return strconv.Itoa(int(d.Hours())) + "h"
	}
}
