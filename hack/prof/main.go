// Command prof runs the generate pipeline on a spec with a CPU profile
// written to /tmp/cpu.prof: go run ./hack/prof SPEC OUTDIR [RUNS], then
// go tool pprof -top /tmp/cpu.prof. With RUNS it generates RUNS times
// (the later ones no-ops when nothing changed) and prints the mean time
// of a run, so that a run of a few milliseconds gets enough samples.
package main

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/hardway-dev/hardway/clusterdir"
	"github.com/hardway-dev/hardway/spec"
)

func main() {
	runs := 1
	if len(os.Args) > 3 {
		n, err := strconv.Atoi(os.Args[3])
		if err != nil || n < 1 {
			panic("RUNS: want a number above 0")
		}
		runs = n
	}
	f, err := os.Create("/tmp/cpu.prof")
	if err != nil {
		panic(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		panic(err)
	}
	start := time.Now()
	for range runs {
		doc, err := spec.LoadFile(os.Args[1])
		if err != nil {
			panic(err)
		}
		doc.Validate(spec.Options{})
		if _, err := clusterdir.Run(context.Background(), doc, clusterdir.Options{Out: os.Args[2]}); err != nil {
			panic(err)
		}
	}
	pprof.StopCPUProfile()
	fmt.Printf("%v a run (%d runs)\n", time.Since(start)/time.Duration(runs), runs)
}
