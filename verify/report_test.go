package verify

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestReport(t *testing.T) {
	r := &Report{
		Phases: []Phase{{Name: "network", Took: 300 * time.Millisecond}},
		Rows: []Row{
			{N: 1, Name: "etcd", Pass: true, Detail: "2/2\nhealthy", Took: 20 * time.Millisecond},
			{N: 2, Name: "apiserver", Pass: true, Detail: "ok", Took: 1500 * time.Millisecond},
		},
	}
	if !r.OK() {
		t.Error("all passed but not OK")
	}
	var b strings.Builder
	r.WriteTable(&b)
	want := "#  CHECK      RESULT  TIME  DETAIL\n" +
		"1  etcd       PASS    20ms  2/2 healthy\n" +
		"2  apiserver  PASS    1.5s  ok\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant\n%s", b.String(), want)
	}
	if s := r.Summary(); !strings.HasPrefix(s, "PASS: 2/2 checks passed in 1.8s") {
		t.Errorf("summary %q", s)
	}
	r.Rows[1].Pass = false
	r.WorkDir = "/tmp/w"
	if r.OK() || !strings.Contains(r.Summary(), "FAIL: 1/2") || !strings.Contains(r.Summary(), "/tmp/w") {
		t.Errorf("a failed row: OK %v, summary %q", r.OK(), r.Summary())
	}
	r.Rows[1].Pass = true
	r.Phases = append(r.Phases, Phase{Name: "start etcd", Err: errors.New("x")})
	if r.OK() {
		t.Error("a failed phase must fail the run")
	}
	if (&Report{}).OK() {
		t.Error("no rows: not OK")
	}
	if row, ok := r.Row(2); !ok || row.Name != "apiserver" {
		t.Errorf("Row(2) = %+v, %v", row, ok)
	}
}
