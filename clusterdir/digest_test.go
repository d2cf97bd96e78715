package clusterdir

import (
	"testing"

	"github.com/hardway-dev/hardway/emit"
	"github.com/hardway-dev/hardway/pki"
)

// TestInputsDigest: the digest that lets a rerun skip the node outputs is
// the same for the same inputs and differs when any of them differs: a
// field of one node, a cluster-wide field, the PKI, the epoch. A digest
// that missed one would leave stale outputs behind on a rerun.
func TestInputsDigest(t *testing.T) {
	b := &pki.Bundle{SAKeyPEM: []byte("sa"), EncryptionKey: []byte("key")}
	base := inputsDigest(load(t, seed, "").Cluster, b, emit.Epoch{})
	if base == "" || base != inputsDigest(load(t, seed, "").Cluster, b, emit.Epoch{}) {
		t.Fatalf("the same inputs gave %q and another digest", base)
	}
	memory := load(t, seed, variant(t, false)).Cluster
	domain := load(t, seed, "").Cluster
	domain.Spec.Domain = "other.example"
	for what, got := range map[string]string{
		"a node's memory":    inputsDigest(memory, b, emit.Epoch{}),
		"the domain":         inputsDigest(domain, b, emit.Epoch{}),
		"one more node":      inputsDigest(load(t, seed, variant(t, true)).Cluster, b, emit.Epoch{}),
		"the encryption key": inputsDigest(load(t, seed, "").Cluster, &pki.Bundle{SAKeyPEM: []byte("sa"), EncryptionKey: []byte("yek")}, emit.Epoch{}),
		"the epoch":          inputsDigest(load(t, seed, "").Cluster, b, emit.Epoch{Unix: 1, Set: true}),
	} {
		if got == base || got == "" {
			t.Errorf("%s changed, the digest did not (%q)", what, got)
		}
	}
}
