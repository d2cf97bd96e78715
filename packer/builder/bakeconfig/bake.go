package bakeconfig

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/hardway-dev/hardway/bake"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/packer/internal/load"
	"github.com/hardway-dev/hardway/packer/internal/uilog"
	"github.com/hardway-dev/hardway/spec"
)

// JobsFunc selects the artifacts to bake for node or role, as bake.KVMJobs.
type JobsFunc func(x *nodegen.Context, node, role string) ([]bake.Job, error)

// RunFunc bakes jobs, as bake.Run.
type RunFunc func(ctx context.Context, cfg bake.Config, jobs []bake.Job) ([]bake.Result, error)

// progressPeriod is how often a build says how far its bake is.
const progressPeriod = 10 * time.Second

// Bake is the Run of a bake builder: it runs `hardway generate` of doc into
// the output directory (creating or keeping the PKI state), selects the
// jobs of the configured node or role with jobs, and bakes them with run
// into the artifact directory, as `hardway bake` does; what names the
// artifacts in messages ("template(s)"). Its log and progress go to ui.
func (c *Config) Bake(ctx context.Context, ui packersdk.Ui, doc *spec.Document, what string, jobs JobsFunc, run RunFunc) ([]bake.Result, error) {
	log := uilog.New(ui)
	ui.Say(fmt.Sprintf("Generating %s into %s", doc.File, load.ClusterDir(doc, c.OutputDirectory)))
	x, _, err := load.Generate(ctx, doc, c.OutputDirectory, log)
	if err != nil {
		return nil, err
	}
	js, err := jobs(x, c.Node, c.Role)
	if err != nil {
		return nil, err
	}
	ui.Say(fmt.Sprintf("Baking %d %s from %s into %s", len(js), what, c.BaseRootfs, c.ArtifactDirectory))
	progress := &bake.Progress{}
	stop := report(ui, progress, progressPeriod)
	// Parallel 0, as hardway bake's default: LXC templates share one read
	// of the base, KVM images are baked one at a time.
	results, err := run(ctx, bake.Config{Doc: doc, Base: c.BaseRootfs, Out: c.ArtifactDirectory, Log: log, Progress: progress, Epoch: load.Epoch()}, js)
	stop()
	if err != nil {
		return nil, err
	}
	if len(results) == 0 {
		return nil, fmt.Errorf("bake made no %s", what)
	}
	return results, nil
}

// report says every period how far each running bake step is, until the
// returned function is called.
func report(ui packersdk.Ui, p *bake.Progress, period time.Duration) func() {
	return p.Every(period, func(running []*bake.Status) {
		for _, s := range running {
			ui.Message(fmt.Sprintf("%s: %d%% done, %d members, %d bytes of content written",
				filepath.Base(s.Name), int(s.Fraction()*100), s.Members.Load(), s.Bytes.Load()))
		}
	})
}
