package uilog

import (
	"bytes"
	"strings"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

func TestNew(t *testing.T) {
	var out, errs bytes.Buffer
	ui := &packersdk.BasicUi{Writer: &out, ErrorWriter: &errs}
	log := New(ui).With("node", "etcd1")
	log.Info("baked", "members", 12)
	log.Warn("missing", "unit", "haproxy.service")
	if got := out.String(); got != "msg=baked node=etcd1 members=12\n" {
		t.Errorf("messages %q", got)
	}
	if got := errs.String(); !strings.Contains(got, "level=WARN msg=missing node=etcd1 unit=haproxy.service") {
		t.Errorf("errors %q", got)
	}
}
