package proxmox

// What names_test.go, in package proxmox_test to import bake (which imports
// this package), needs of this package's test harness.
type (
	Operator = operator
	Run      = run
)

var (
	ExecScript = execScript
	Calls      = calls
)

func (r run) Out() string      { return r.out }
func (r run) OK() bool         { return r.ok }
func (r run) ImageDir() string { return r.images }
func (r run) StubDir() string  { return r.stub }
