// Package clusterdir writes and plans the cluster directory <dir>/<cluster>/
// (`hardway generate` and `hardway plan`): from a validated spec it brings the
// PKI state up to date and writes, or compares, every artifact.
package clusterdir

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/hardway-dev/hardway/emit"
	"github.com/hardway-dev/hardway/generators"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/generators/proxmox"
	"github.com/hardway-dev/hardway/kubeconfig"
	"github.com/hardway-dev/hardway/nodefiles"
	"github.com/hardway-dev/hardway/output"
	"github.com/hardway-dev/hardway/pki"
	"github.com/hardway-dev/hardway/spec"
)

// Options tune a run.
type Options struct {
	Out   string   // output root; the cluster goes to <Out>/<name>
	Renew []string // pki leaves to re-issue
	Log   *slog.Logger
	Epoch emit.Epoch // the time of every overlay.tar and seed.iso entry (the caller reads SOURCE_DATE_EPOCH)
	// Plan makes the run change nothing: every output is rendered and
	// compared with the disk, and Result.Planned lists the differences.
	Plan bool
	// Rootfs says whether to write each node's tree as files at their
	// final paths, nodes/<node>/rootfs/, beside overlay.tar.
	Rootfs Trees
}

// Trees is whether a run writes the nodes' rootfs/ directories. They hold
// the entries of overlay.tar, which is what bake and verify read: they are
// for people reading and diffing a node's files. Off unless asked for: the
// trees are most of the output's files (4,954 of 3+100's 5,649), and
// creating files is most of a first run's time.
type Trees uint8

const (
	TreesAsBefore Trees = iota // as the last run did (none for a new directory)
	TreesOn                    // write them
	TreesOff                   // write none, removing the last run's
)

// Result describes what a run did.
type Result struct {
	Dir     string
	Bundle  *pki.Bundle
	Changed []string // files written or removed, relative to Dir
	// Planned lists, with Options.Plan, what the run would have added,
	// changed or removed, relative to Dir.
	Planned []output.Change
}

// Run generates the cluster directory for doc, which must have passed validation.
func Run(ctx context.Context, doc *spec.Document, o Options) (*Result, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := doc.Cluster
	// The generators' own check of every spec string (nodegen.Check) runs
	// before anything is written: the cluster name makes the output path,
	// node names make nodes/<name>, and the PKI's subjects and SANs come
	// from the spec too. A Go caller that skipped validation is stopped
	// here as well.
	if err := nodegen.Check(c); err != nil {
		return nil, fmt.Errorf("the spec cannot be written safely: %w", err)
	}
	root := filepath.Join(o.Out, c.Metadata.Name)
	d, err := open(root, o.Plan, log)
	if err != nil {
		return nil, err
	}
	defer d.close()

	// pki/ and kubeconfigs/ are written on every run (only what differs);
	// the node outputs may be skipped (see Unchanged below), and checking
	// that they are intact reads them all: start that now, beside the PKI.
	rewritten := []string{"pki", "kubeconfigs"}
	d.Verify(rewritten...)

	b, err := pki.Ensure(c, d.Sub("pki", "pki"), pki.Options{Renew: o.Renew})
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	issued := "issued"
	if o.Plan {
		issued = "would-issue" // in memory only
	}
	for _, ch := range b.Changes {
		log.Info("pki", issued, ch.Name, "reason", ch.Reason)
	}
	if err := notePKI(d.Dir, b); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	kcs := kubeconfig.Set(c)
	if err := output.Parallel(len(kcs), runtime.GOMAXPROCS(0), func(i int) error {
		k := kcs[i]
		return d.Write("kubeconfigs/"+k.Name+".kubeconfig", kubeconfig.Render(c, b, k, k.URL(c)), 0o600, "kubeconfig", k.Node)
	}); err != nil {
		return nil, err
	}
	if err := d.Write("pki/encryption-config.yaml", kubeconfig.EncryptionConfig(c, b), 0o600, "encryption-config", ""); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Node outputs are the bulk of the work and a pure function of the
	// inputs: skip a node's when the previous run made them from the same
	// inputs and its files are all still there, byte for byte and mode for
	// mode. A worker's inputs are its view of the cluster (nodegen.View):
	// adding a worker leaves the others' alone.
	x := nodegen.New(c, b)
	// A command that generates on its way (bake, verify) keeps the trees
	// a generate --rootfs asked for.
	hadTrees := d.HadKind(nodefiles.Rootfs.Kind)
	trees := o.Rootfs == TreesOn || o.Rootfs == TreesAsBefore && hadTrees
	same := d.UnchangedParts(inputsDigests(x, o.Epoch, trees), rewritten...)
	if err := nodes(ctx, d.Dir, x, same, o.Epoch.Time(), trees); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// The pki directory is state: Finish removes nothing under it but the
	// files of a node no longer planned (the kubelet certificate of a
	// removed worker, say). Directories are not in the manifest: those of
	// a node no longer in the spec go once Finish emptied them.
	if err := d.Finish("pki"); err != nil {
		return nil, err
	}
	index := c.Index()
	if err := d.RemoveEmptyDirs(nodefiles.NodesDir, func(name string) bool { _, ok := index[name]; return ok }); err != nil {
		return nil, err
	}
	if hadTrees && !trees {
		for _, n := range c.Spec.Nodes {
			if err := d.RemoveEmptyDirs(nodefiles.Dir(n.Name), func(name string) bool { return name != nodefiles.Rootfs.Name }); err != nil {
				return nil, err
			}
		}
	}
	res := &Result{Dir: root, Bundle: b, Changed: d.Changed()}
	if o.Plan {
		res.Planned = d.Planned()
	}
	return res, nil
}

// runDir is the output directory of a run, with what ends it.
type runDir struct {
	*output.Dir
	close func()
}

// open opens the cluster directory root: for a run, locked (and swept of
// an interrupted run's temporary files); for a plan, as it is.
func open(root string, plan bool, log *slog.Logger) (runDir, error) {
	if plan {
		d, err := output.OpenPlan(root)
		return runDir{d, func() {}}, err
	}
	d, err := output.Open(root)
	if err != nil {
		return runDir{}, err
	}
	unlock, swept, err := d.Lock(func(msg string) { log.Warn(msg) }, nodefiles.BakeDir)
	if err != nil {
		return runDir{}, err
	}
	if len(swept) > 0 {
		log.Info("removed the temporary files of an interrupted run", "files", len(swept))
		for _, p := range swept {
			log.Debug("removed", "file", p)
		}
	}
	return runDir{d, unlock}, nil
}

// nodes writes the cluster-level files and the outputs of every node
// whose part (nodefiles.Dir) is not the same as the last run left it. The
// cluster-level files are written unless every part is the same: they are
// made from the whole cluster, and one of them, each node's proxmox.conf,
// lies in that node's part. Nodes are generated and emitted one at a time
// per worker goroutine, a worker from its view of the cluster, so memory
// holds at most GOMAXPROCS trees whatever the cluster's size; mtime dates
// their archives' entries, and trees writes their rootfs/ directories.
func nodes(ctx context.Context, d *output.Dir, x *nodegen.Context, same map[string]bool, mtime time.Time, trees bool) error {
	var todo []spec.Node
	for _, n := range x.C.Spec.Nodes {
		if !same[nodefiles.Dir(n.Name)] {
			todo = append(todo, n)
		}
	}
	if len(todo) == 0 && same[""] {
		return nil
	}
	files, err := generators.Cluster(x)
	if err != nil {
		return err
	}
	// One job a cluster file, then one a node's proxmox.conf, made in its
	// job, then one a node: creating files is most of a first run, and
	// the kernel creates them in parallel too. Once ctx is done, no node
	// is begun.
	all := x.C.Spec.Nodes
	err = output.Parallel(len(files)+len(all)+len(todo), runtime.GOMAXPROCS(0), func(i int) error {
		if i < len(files)+len(all) {
			var f nodegen.File
			if i < len(files) {
				// Dropped once written: create-nodes.sh alone is 22 MB
				// at 3+10000, and the nodes are made after these jobs.
				f, files[i] = files[i], nodegen.File{}
			} else {
				f = proxmox.Conf(x, all[i-len(files)])
			}
			return d.Write(f.Path, f.Data, f.Mode, f.Kind, f.Node)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		n := todo[i-len(files)-len(all)]
		return node(x.View(n), d, n, mtime, trees)
	})
	if err != nil {
		return err
	}
	return ctx.Err()
}

// node generates node n's tree and writes it in every format its target
// uses (and as a rootfs/ directory with trees), archives dated mtime.
func node(x *nodegen.Context, d *output.Dir, n spec.Node, mtime time.Time, trees bool) error {
	t, err := generators.Node(x, n)
	if err != nil {
		return err
	}
	if trees {
		root := nodefiles.Rootfs.Path(n.Name)
		// emit.TreeDir works below the tree's root by path: make sure
		// no directory on the way there is a symlink.
		if err := d.MkdirAll(root); err != nil {
			return err
		}
		if err := emit.TreeDir(d, root, t); err != nil {
			return err
		}
	}
	tarball, err := emit.Tar(t, mtime)
	if err != nil {
		return err
	}
	if err := writeOverlay(d, n.Name, tarball); err != nil {
		return err
	}
	if n.Target != spec.TargetKVM {
		return nil
	}
	if n.Sysext() {
		// Its config names its systemd-sysext image by SHA-256: hardway
		// bake --format sysext writes both.
		return nil
	}
	if n.BootsByIgnition() {
		ign, err := emit.Ignition(x, n, t, nil)
		if err != nil {
			return fmt.Errorf("node %s: ignition: %w", n.Name, err)
		}
		if err := proxmox.CheckSnippets(n.Name, map[string][]byte{nodefiles.Ignition.Path(n.Name): ign}); err != nil {
			return err
		}
		return write(d, nodefiles.Ignition, n.Name, ign)
	}
	ud, md, nc, err := emit.CloudInit(x, n, t)
	if err != nil {
		return fmt.Errorf("node %s: cloud-init: %w", n.Name, err)
	}
	seed := map[string][]byte{nodefiles.UserData: ud, nodefiles.MetaData: md, nodefiles.NetworkConfig: nc}
	ci := nodefiles.CloudInit
	snippets := map[string][]byte{}
	for name, data := range seed {
		snippets[path.Join(ci.Path(n.Name), name)] = data
	}
	if err := proxmox.CheckSnippets(n.Name, snippets); err != nil {
		return err
	}
	for _, name := range nodefiles.NoCloudFiles {
		if err := d.Write(path.Join(ci.Path(n.Name), name), seed[name], 0o600, ci.Kind, n.Name); err != nil {
			return err
		}
	}
	iso, err := emit.SeedISO(seed, mtime)
	if err != nil {
		return fmt.Errorf("node %s: seed.iso: %w", n.Name, err)
	}
	return write(d, nodefiles.SeedISO, n.Name, iso)
}

// writeOverlay writes node's overlay.tar. A plan also names the entries
// that would change inside it: without the rootfs/ trees, the one place
// where an operator sees which of the node's files would change. An old
// archive that does not read as a tar is planned as changed, no more.
func writeOverlay(d *output.Dir, node string, data []byte) error {
	p := nodefiles.OverlayTar.Path(node)
	var old []byte
	if d.Planning() {
		old, _ = d.ReadFile(p)
	}
	if err := write(d, nodefiles.OverlayTar, node, data); err != nil {
		return err
	}
	if old != nil && !bytes.Equal(old, data) {
		if entries, err := emit.TarChanges(old, data); err == nil {
			d.PlanEntries(p, entries)
		}
	}
	return nil
}

// write writes a, node's artifact, with data (0600: it may hold the
// node's keys).
func write(d *output.Dir, a nodefiles.Artifact, node string, data []byte) error {
	return d.Write(a.Path(node), data, 0o600, a.Kind, node)
}

// inputsDigests identifies, for each part of the outputs, everything it
// is made from (output.UnchangedParts): "" the whole cluster, for the
// cluster-level files; nodes/<node> a worker's view of the cluster
// (nodegen.View) or, for any other node, the whole cluster. Either is the
// effective spec (as JSON: every exported field, maps sorted, ~4x faster
// than yaml.v3), the PKI state, the epoch (tar mtimes), whether the
// rootfs/ trees are written (trees) and this hardway executable (its
// templates and code), by path, size and mtime. A view
// holds only the spec without its nodes, the Shared nodes and the worker
// with their pod CIDRs, and the PKI rows of no node and of those nodes: a
// digest of exactly that. A part whose digest is "" (the spec does not
// encode) is never unchanged.
func inputsDigests(x *nodegen.Context, e emit.Epoch, trees bool) map[string]string {
	c, b := x.C, x.PKI
	bare := *c
	bare.Spec.Nodes = nil
	specJSON, err := json.Marshal(&bare)
	if err != nil {
		return map[string]string{"": ""}
	}
	// field writes one length-prefixed field: no two inputs hash alike.
	field := func(h hash.Hash, data []byte) {
		h.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(data))))
		h.Write(data)
	}
	rows := func(h hash.Hash, node string) {
		for _, row := range x.Rows(node) {
			p := b.Get(row.Name)
			field(h, []byte(row.Name))
			field(h, p.CertPEM)
			field(h, p.KeyPEM)
		}
	}
	node := func(h hash.Hash, n spec.Node) bool {
		data, err := json.Marshal(n)
		if err != nil {
			return false
		}
		field(h, data)
		field(h, []byte(x.PodCIDRs[n.Name].String()))
		rows(h, n.Name)
		return true
	}

	var epoch string // as SOURCE_DATE_EPOCH was written: "" when unset
	if e.Set {
		epoch = strconv.FormatInt(e.Unix, 10)
	}
	base := sha256.New()
	field(base, specJSON)
	field(base, b.SAKeyPEM)
	field(base, b.EncryptionKey)
	field(base, []byte(emit.EpochEnv+"="+epoch))
	field(base, []byte(nodefiles.Rootfs.Name+"="+strconv.FormatBool(trees)))
	if exe, err := os.Executable(); err == nil {
		if fi, err := os.Stat(exe); err == nil {
			field(base, fmt.Appendf(nil, "%s %d %d", exe, fi.Size(), fi.ModTime().UnixNano()))
		}
	}
	rows(base, "")

	whole := base.(hash.Cloner)
	wholeH, _ := whole.Clone()
	for _, n := range c.Spec.Nodes {
		if !node(wholeH, n) {
			return map[string]string{"": ""}
		}
	}
	all := hex.EncodeToString(wholeH.Sum(nil))
	parts := map[string]string{"": all}

	shared := x.Shared()
	isShared := make(map[string]bool, len(shared))
	for _, m := range shared {
		isShared[m.Name] = true
		node(base, m)
	}
	views := base.(hash.Cloner)
	rank := 0 // the shared nodes before the worker in spec order: its place in its view
	for _, n := range c.Spec.Nodes {
		dir := nodefiles.Dir(n.Name)
		if isShared[n.Name] || !nodegen.Viewed(n) {
			parts[dir] = all
			rank++
			continue
		}
		h, _ := views.Clone()
		field(h, []byte("view "+strconv.Itoa(rank)))
		node(h, n)
		parts[dir] = hex.EncodeToString(h.Sum(nil))
	}
	return parts
}

// notePKI lists the pki state in the manifest and gives every file its
// mode again (kubeadm's: keys 0600, certificates 0644) if it has another.
func notePKI(d *output.Dir, b *pki.Bundle) error {
	write := func(name string, data []byte, perm fs.FileMode, kind, node string) error {
		return d.Write("pki/"+name, data, perm, kind, node)
	}
	for _, row := range b.Plan {
		p := b.Get(row.Name)
		kind := "cert"
		if row.IsCA() {
			kind = "ca"
		}
		if err := write(row.Name+".crt", p.CertPEM, pki.CertMode, kind, row.Node); err != nil {
			return err
		}
		if len(p.KeyPEM) > 0 {
			if err := write(row.Name+".key", p.KeyPEM, pki.KeyMode, kind+"-key", row.Node); err != nil {
				return err
			}
		}
	}
	if err := write(pki.SAKey+".key", b.SAKeyPEM, pki.KeyMode, "sa-key", ""); err != nil {
		return err
	}
	if err := write(pki.SAKey+".pub", b.SAPubPEM, pki.CertMode, "sa-pub", ""); err != nil {
		return err
	}
	key, err := d.ReadFile("pki/" + pki.EncryptionKeyFile)
	if err != nil {
		return err
	}
	return write(pki.EncryptionKeyFile, key, pki.KeyMode, "encryption-key", "")
}
