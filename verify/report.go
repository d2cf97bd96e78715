package verify

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Phase is one step of a run: preparing, networking, starting, tearing down.
type Phase struct {
	Name    string
	Took    time.Duration
	Detail  string
	Err     error
	Skipped string // why it did not run
}

// Print writes the phase's line of the progress output.
func (p Phase) Print(w io.Writer) {
	switch {
	case p.Skipped != "":
		fmt.Fprintf(w, "phase %-48s skipped: %s\n", p.Name, p.Skipped)
	case p.Err != nil:
		fmt.Fprintf(w, "phase %-48s FAIL %6s  %v\n", p.Name, round(p.Took), p.Err)
	default:
		fmt.Fprintf(w, "phase %-48s ok   %6s  %s\n", p.Name, round(p.Took), p.Detail)
	}
}

// Row is one smoke check's result.
type Row struct {
	N      int
	Name   string
	Pass   bool
	Detail string
	Took   time.Duration
}

// Report is the outcome of a run.
type Report struct {
	Phases     []Phase
	Rows       []Row
	PIDs       []int    // every process started, all stopped by teardown
	Namespaces []string // every namespace created, all deleted by teardown
	WorkDir    string   // kept after a failing run, for its logs; "" once removed
	// Kept: the cluster stayed up after the rows (Options.Keep) until the
	// run's context ended, which is how such a run ends.
	Kept bool
}

// rowsOK reports whether every row so far passed.
func (r *Report) rowsOK() bool {
	for _, row := range r.Rows {
		if !row.Pass {
			return false
		}
	}
	return true
}

// OK reports whether every phase and every row passed.
func (r *Report) OK() bool {
	for _, p := range r.Phases {
		if p.Err != nil || p.Skipped != "" {
			return false
		}
	}
	return r.rowsOK() && len(r.Rows) > 0
}

// Row returns the row numbered n.
func (r *Report) Row(n int) (Row, bool) {
	for _, row := range r.Rows {
		if row.N == n {
			return row, true
		}
	}
	return Row{}, false
}

// WriteTable prints the rows as a table.
func (r *Report) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tCHECK\tRESULT\tTIME\tDETAIL")
	for _, row := range r.Rows {
		res := "PASS"
		if !row.Pass {
			res = "FAIL"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", row.N, row.Name, res, round(row.Took), oneLine(row.Detail))
	}
	tw.Flush()
}

// Summary is the last line of a run.
func (r *Report) Summary() string {
	failed := 0
	for _, row := range r.Rows {
		if !row.Pass {
			failed++
		}
	}
	var total time.Duration
	for _, p := range r.Phases {
		total += p.Took
	}
	for _, row := range r.Rows {
		total += row.Took
	}
	s := fmt.Sprintf("%d/%d checks passed in %s", len(r.Rows)-failed, len(r.Rows), round(total))
	if r.OK() {
		return "PASS: " + s
	}
	if r.WorkDir != "" {
		s += "; logs and node roots kept in " + r.WorkDir
	}
	return "FAIL: " + s
}

func round(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
