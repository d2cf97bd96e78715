// Package lxc is the hardway-lxc builder: it bakes Proxmox container
// templates (.tar.zst) with hardway's bake library, exactly as `hardway bake
// --format lxc` does, from a spec, a node (or role) and a base root file
// system. It needs no root, no VM and no communicator.
package lxc

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/hashicorp/hcl/v2/hcldec"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/hardway-dev/hardway/bake"
	"github.com/hardway-dev/hardway/packer/builder/bakeconfig"
	"github.com/hardway-dev/hardway/packer/internal/load"
	"github.com/hardway-dev/hardway/packer/internal/uilog"
)

// BuilderType is the builder's name in templates.
const BuilderType = "hardway-lxc"

// BuilderID identifies the builder's artifacts.
const BuilderID = "hardway.lxc"

// Builder bakes LXC templates.
type Builder struct {
	config   Config
	prepared *bakeconfig.Prepared
}

// ConfigSpec is the HCL2 schema of Config.
func (b *Builder) ConfigSpec() hcldec.ObjectSpec { return b.config.FlatMapstructure().HCL2Spec() }

// Prepare checks the configuration and returns the generated data keys.
func (b *Builder) Prepare(raws ...interface{}) ([]string, []string, error) {
	p, warnings, err := b.config.prepare(raws...)
	if err != nil {
		return nil, warnings, err
	}
	b.prepared = p
	return bakeconfig.GeneratedVars(), warnings, nil
}

// Run generates the cluster (PKI state, node trees) and bakes the selected
// nodes' templates into the artifact directory.
func (b *Builder) Run(ctx context.Context, ui packersdk.Ui, _ packersdk.Hook) (packersdk.Artifact, error) {
	c, doc := &b.config, b.prepared.Doc
	log := uilog.New(ui)
	ui.Say(fmt.Sprintf("Generating %s into %s", doc.File, load.ClusterDir(doc, c.OutputDirectory)))
	x, _, err := load.Generate(ctx, doc, c.OutputDirectory, log)
	if err != nil {
		return nil, err
	}
	jobs, err := bake.Jobs(x, bake.FormatLXC, c.Node, c.Role)
	if err != nil {
		return nil, err
	}
	ui.Say(fmt.Sprintf("Baking %d template(s) from %s into %s", len(jobs), c.BaseRootfs, c.ArtifactDirectory))
	progress := &bake.Progress{}
	stop := report(ui, progress, 10*time.Second)
	results, err := bake.Run(ctx, bake.Config{Doc: doc, Base: c.BaseRootfs, Out: c.ArtifactDirectory, Jobs: 1, Log: log, Progress: progress}, jobs)
	stop()
	if err != nil {
		return nil, err
	}
	// The templates in the order of the nodes (bake sorts them by file name).
	byNode := map[string]bake.Result{}
	for _, r := range results {
		byNode[r.Job.Node] = r
	}
	a := &Artifact{StateData: map[string]interface{}{}}
	var sums []string
	for _, n := range b.prepared.Nodes {
		r, ok := byNode[n.Name]
		if !ok {
			return nil, fmt.Errorf("bake made no template for %s", n.Name)
		}
		a.Templates = append(a.Templates, Template{Path: r.Path, SHA256: r.SHA256})
		sums = append(sums, r.SHA256)
	}
	a.StateData["generated_data"] = bakeconfig.GeneratedData(b.prepared.Nodes, a.Files(), sums)
	return a, nil
}

// report says every period how far each running bake step is, until the
// returned function is called.
func report(ui packersdk.Ui, p *bake.Progress, period time.Duration) func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, s := range p.Steps() {
					if s.Done.Load() {
						continue
					}
					read := "?"
					if s.Total > 0 {
						read = fmt.Sprintf("%d%%", min(100, s.Read.Load()*100/s.Total))
					}
					ui.Message(fmt.Sprintf("%s: base %s read, %d members, %d bytes written", filepath.Base(s.Name), read, s.Members.Load(), s.Written.Load()))
				}
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}
