package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"
)

// This file issues and reads certificates and keys with crypto/x509 alone.
// The certificates are the ones cfssl v1.6.5's initca and local signer
// made for the same rows until December 2026 (TestSameAsCfssl compares
// them field by field, as openssl prints them): the same subject, SANs,
// key usages, basic constraints, subject key ID (SHA-1 of the public key
// bits) and signature algorithm; a 20-byte random serial with the top bit
// clear; valid from the minute, rounded, less 5 minutes. cfssl linked
// ~300 packages (its database, linters and public suffix list) whose init
// work every hardway command paid for.

// keyAlgo is spec.PKI.Algorithm: ECDSA on a curve of Bits, or RSA of Bits.
type keyAlgo struct {
	Name string // ecdsa or rsa
	Bits int
}

func parseKeyAlgo(algorithm string) (keyAlgo, error) {
	a, size, ok := strings.Cut(algorithm, "-")
	k := keyAlgo{Name: a}
	switch {
	case ok && a == "ecdsa" && size == "p256":
		k.Bits = 256
	case ok && a == "ecdsa" && size == "p384":
		k.Bits = 384
	case ok && a == "rsa":
		if _, err := fmt.Sscanf(size, "%d", &k.Bits); err != nil || k.Bits < 2048 || k.Bits > 8192 {
			return keyAlgo{}, fmt.Errorf("unknown key algorithm %q", algorithm)
		}
	default:
		return keyAlgo{}, fmt.Errorf("unknown key algorithm %q", algorithm)
	}
	return k, nil
}

// matches reports whether pub is of this algorithm and size.
func (k keyAlgo) matches(pub crypto.PublicKey) bool {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		return k.Name == "ecdsa" && p.Curve.Params().BitSize == k.Bits
	case *rsa.PublicKey:
		return k.Name == "rsa" && p.N.BitLen() == k.Bits
	}
	return false
}

// newKey creates a private key in kubeadm's PEM encodings (SEC1 or PKCS#1).
func newKey(k keyAlgo) (crypto.Signer, []byte, error) {
	switch k.Name {
	case "ecdsa":
		curve := elliptic.P256()
		if k.Bits == 384 {
			curve = elliptic.P384()
		}
		key, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		der, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return nil, nil, err
		}
		return key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
	case "rsa":
		key, err := rsa.GenerateKey(rand.Reader, k.Bits)
		if err != nil {
			return nil, nil, err
		}
		return key, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), nil
	}
	return nil, nil, fmt.Errorf("unknown key algorithm %s", k.Name)
}

// parseCertPEM reads a PEM file holding exactly one certificate.
func parseCertPEM(data []byte) (*x509.Certificate, error) {
	blk, rest := pem.Decode(data)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, errors.New("more than one PEM block: the file must hold one certificate")
	}
	return x509.ParseCertificate(blk.Bytes)
}

// parseKeyPEM reads a PEM private key: PKCS#8, PKCS#1 or SEC1, RSA,
// ECDSA or Ed25519 (an external CA's), unencrypted; an EC PARAMETERS block before it (openssl writes
// one) is skipped.
func parseKeyPEM(data []byte) (crypto.Signer, error) {
	var blk *pem.Block
	for {
		blk, data = pem.Decode(data)
		if blk == nil || blk.Type != "EC PARAMETERS" {
			break
		}
	}
	if blk == nil {
		return nil, errors.New("no PEM private key")
	}
	if strings.Contains(blk.Headers["Proc-Type"], "ENCRYPTED") {
		return nil, errors.New("the private key is encrypted")
	}
	var key any
	var err error
	if key, err = x509.ParsePKCS8PrivateKey(blk.Bytes); err != nil {
		if key, err = x509.ParsePKCS1PrivateKey(blk.Bytes); err != nil {
			if key, err = x509.ParseECPrivateKey(blk.Bytes); err != nil {
				return nil, errors.New("not a PKCS#8, PKCS#1 or SEC1 private key")
			}
		}
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("a %T private key: want RSA, ECDSA or Ed25519", key)
}

// Key usages of the certificates (RFC 5280 4.2.1.3), as cfssl's profiles
// named them: CAs "cert sign", "crl sign"; leaves "digital signature",
// "key encipherment" (kubeadm's too).
const (
	caKeyUsage   = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	leafKeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
)

// backdate is how long before the issuing minute a certificate is valid,
// for clocks running slightly behind.
const backdate = 5 * time.Minute

// newCA self-signs CA row's certificate with key, valid for validity.
func newCA(row Cert, key crypto.Signer, validity time.Duration, now time.Time) ([]byte, *x509.Certificate, error) {
	notBefore := validFrom(now)
	tpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: row.CN},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(validity),
		KeyUsage:              caKeyUsage,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            -1,
	}
	return sign(tpl, tpl, key.Public(), key)
}

// newLeaf issues leaf row with a new key of algorithm k, signed by ca and
// valid for validity, but never after ca.
func newLeaf(ca *Pair, row Cert, k keyAlgo, validity time.Duration, now time.Time) (*Pair, error) {
	key, keyPEM, err := newKey(k)
	if err != nil {
		return nil, err
	}
	notBefore := validFrom(now)
	tpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: row.CN, Organization: row.O},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(validity),
		KeyUsage:              leafKeyUsage,
		BasicConstraintsValid: true,
		DNSNames:              row.DNS,
	}
	if tpl.NotAfter.After(ca.X509.NotAfter) {
		tpl.NotAfter = ca.X509.NotAfter
	}
	if row.Server {
		tpl.ExtKeyUsage = append(tpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if row.Client {
		tpl.ExtKeyUsage = append(tpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	for _, ip := range row.IPs {
		tpl.IPAddresses = append(tpl.IPAddresses, net.IP(ip.AsSlice()))
	}
	certPEM, _, err := sign(tpl, ca.X509, key.Public(), ca.key)
	if err != nil {
		return nil, err
	}
	return &Pair{Cert: row, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

func validFrom(now time.Time) time.Time {
	return now.Round(time.Minute).Add(-backdate).UTC()
}

// sign completes tpl (serial, subject key ID, signature algorithm) and
// signs it with parent's key.
func sign(tpl, parent *x509.Certificate, pub crypto.PublicKey, parentKey crypto.Signer) ([]byte, *x509.Certificate, error) {
	serial := make([]byte, 20)
	if _, err := rand.Read(serial); err != nil {
		return nil, nil, err
	}
	serial[0] &= 0x7f // positive, 20 bytes at most (RFC 5280 4.1.2.2)
	tpl.SerialNumber = new(big.Int).SetBytes(serial)
	ski, err := subjectKeyID(pub)
	if err != nil {
		return nil, nil, err
	}
	tpl.SubjectKeyId = ski
	tpl.SignatureAlgorithm = signatureAlgorithm(parentKey.Public())
	der, err := x509.CreateCertificate(rand.Reader, tpl, parent, pub, parentKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), cert, nil
}

// subjectKeyID is RFC 5280 4.2.1.2's method (1): the SHA-1 of the
// subjectPublicKey bits.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, err
	}
	sum := sha1.Sum(spki.PublicKey.Bytes)
	return sum[:], nil
}

// signatureAlgorithm is the signature a CA with public key pub makes:
// ECDSA with the hash of its curve's size, Ed25519, RSA PKCS#1 v1.5 with SHA-512
// from 4096 bits, SHA-384 from 3072, else SHA-256.
func signatureAlgorithm(pub crypto.PublicKey) x509.SignatureAlgorithm {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		switch p.Curve.Params().BitSize {
		case 384:
			return x509.ECDSAWithSHA384
		case 521:
			return x509.ECDSAWithSHA512
		}
		return x509.ECDSAWithSHA256
	case *rsa.PublicKey:
		switch n := p.N.BitLen(); {
		case n >= 4096:
			return x509.SHA512WithRSA
		case n >= 3072:
			return x509.SHA384WithRSA
		}
		return x509.SHA256WithRSA
	case ed25519.PublicKey:
		return x509.PureEd25519
	}
	return x509.UnknownSignatureAlgorithm
}
