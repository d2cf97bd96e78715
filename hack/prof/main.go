// Command prof runs the generate pipeline on a spec with a CPU profile
// written to /tmp/cpu.prof: go run ./hack/prof SPEC OUTDIR, then
// go tool pprof -top /tmp/cpu.prof.
package main

import (
	"context"
	"os"
	"runtime/pprof"

	"github.com/hardway-dev/hardway/clusterdir"
	"github.com/hardway-dev/hardway/spec"
)

func main() {
	doc, err := spec.LoadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	doc.Validate(spec.Options{})
	f, _ := os.Create("/tmp/cpu.prof")
	pprof.StartCPUProfile(f)
	if _, err := clusterdir.Run(context.Background(), doc, clusterdir.Options{Out: os.Args[2]}); err != nil {
		panic(err)
	}
	pprof.StopCPUProfile()
}
