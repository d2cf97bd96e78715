// Package load reads what every component of the Packer plugin starts from:
// the cluster spec, checked as `hardway validate` checks it, and the PKI
// state that node trees are generated with. Messages start with the name of
// the configuration field they are about, so that Packer users fix their
// template from the message alone.
package load

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/hardway-dev/hardway/clusterdir"
	"github.com/hardway-dev/hardway/emit"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/pki"
	"github.com/hardway-dev/hardway/spec"
)

// Field names shared by the plugin's components.
const (
	FieldSpec            = "spec"
	FieldNode            = "node"
	FieldRole            = "role"
	FieldOutputDirectory = "output_directory"
	FieldPKIDir          = "pki_dir"
)

// DefaultOutputDirectory is hardway's output root, as `hardway generate --dir`
// and `hardway bake --dir` default it.
const DefaultOutputDirectory = "out"

// Spec parses and validates the spec file that the field names. Every
// problem is returned at once, errors and warnings apart, each as
// "<field>: <file>:<line>:<col>: <path>: <message>".
func Spec(field, file string) (doc *spec.Document, warnings []string, errs []error) {
	if file == "" {
		return nil, nil, []error{fmt.Errorf("%s: required: the cluster spec file (hardway.dev/v1alpha1 Cluster)", field)}
	}
	doc, err := spec.LoadFile(file)
	if err != nil {
		var is spec.Issues
		if errors.As(err, &is) {
			for _, i := range is {
				errs = append(errs, fmt.Errorf("%s: %s", field, i))
			}
			return nil, nil, errs
		}
		return nil, nil, []error{fmt.Errorf("%s: %w", field, err)}
	}
	for _, i := range doc.Validate(spec.Options{}) {
		if i.Acknowledged {
			continue // the spec keeps it on purpose: only validate shows it
		}
		if i.Warning {
			warnings = append(warnings, fmt.Sprintf("%s: %s", field, i))
		} else {
			errs = append(errs, fmt.Errorf("%s: %s", field, i))
		}
	}
	if len(errs) > 0 {
		return nil, warnings, errs
	}
	return doc, warnings, nil
}

// Node returns the spec's node called name, or an error naming field that
// lists the nodes there are.
func Node(doc *spec.Document, field, name string) (spec.Node, error) {
	if name == "" {
		return spec.Node{}, fmt.Errorf("%s: required: a node of %s", field, doc.File)
	}
	if n, ok := doc.Cluster.Node(name); ok {
		return n, nil
	}
	return spec.Node{}, fmt.Errorf("%s: no node %q in %s (nodes: %s)", field, name, doc.File, strings.Join(nodeNames(doc.Cluster.Spec.Nodes), ", "))
}

func nodeNames(ns []spec.Node) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Name
	}
	return out
}

// ClusterDir is where generate writes the cluster: <out>/<cluster name>.
func ClusterDir(doc *spec.Document, out string) string {
	return filepath.Join(out, doc.Cluster.Metadata.Name)
}

// Epoch is SOURCE_DATE_EPOCH, read here, at the plugin's edge, and passed
// down to generate, bake and emit as their option, as the CLI does.
func Epoch() emit.Epoch { return emit.ParseEpoch(os.Getenv(emit.EpochEnv)) }

// Generate runs `hardway generate` into out, as `hardway bake` does before
// baking: the PKI state in <out>/<cluster>/pki is created or brought up to
// date, and every artifact of the cluster directory is written. It returns
// the generator context the node trees are made with.
func Generate(ctx context.Context, doc *spec.Document, out string, log *slog.Logger) (*nodegen.Context, *clusterdir.Result, error) {
	res, err := clusterdir.Run(ctx, doc, clusterdir.Options{Out: out, Log: log, Epoch: Epoch()})
	if err != nil {
		return nil, nil, err
	}
	return nodegen.New(doc.Cluster, res.Bundle), res, nil
}

// PKI loads the PKI state from dir without changing it: a state that lacks
// something the spec needs, or holds an expired or outdated certificate, is
// an error that says to run `hardway generate`, never a new CA.
func PKI(doc *spec.Document, dir string) (*nodegen.Context, error) {
	b, err := pki.Ensure(doc.Cluster, readOnly(dir), pki.Options{})
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", FieldPKIDir, dir, err)
	}
	return nodegen.New(doc.Cluster, b), nil
}

// readOnly is a pki.Store that refuses every write.
type readOnly string

func (d readOnly) ReadFile(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(string(d), filepath.FromSlash(name)))
}

func (d readOnly) WriteFile(name string, _ []byte, _ fs.FileMode) error {
	return fmt.Errorf("%s is missing or out of date for this spec; run `hardway generate` to bring the PKI state up to date",
		filepath.Join(string(d), filepath.FromSlash(name)))
}

// Errors returns errs as one Packer error listing every one of them, or nil.
func Errors(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return packersdk.MultiErrorAppend(nil, errs...)
}
