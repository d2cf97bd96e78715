package common

import (
	"strings"

	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// ReadyUnit says on a KVM node's console that its roles' services are active.
const ReadyUnit = "hardway-ready.service"

// ReadyMessage is the console line of node once its roles' services are active.
func ReadyMessage(node string, roles []string) string {
	return strings.Join(readyWords(node, roles), " ")
}

// readyWords are ReadyMessage's words, which the unit gives echo as its
// arguments (echo joins them with spaces), each quoted on its own.
func readyWords(node string, roles []string) []string {
	return []string{"hardway:", node, strings.Join(roles, ","), "ready"}
}

// Ready adds ReadyUnit to the tree of a KVM node, whose console is all an
// operator sees of it booting. It must run after every role's generator:
// it waits for the services the tree brings and enables (RoleUnits). The
// unit travels with the tree, so a node image, a role image given the
// node's NoCloud seed and a cloud image given the same seed all report
// the same way.
func Ready(x *nodegen.Context, n spec.Node, t *tree.Tree) {
	if n.Target != spec.TargetKVM {
		return
	}
	t.File(tree.UnitFile(ReadyUnit), 0o644, x.Render("common/ready.service", map[string]any{
		"Node":    n.Name,
		"Roles":   strings.Join(n.Roles, ","),
		"VMID":    n.VMID,
		"Units":   RoleUnits(t),
		"Message": readyWords(n.Name, n.Roles),
	}))
	t.Enable(ReadyUnit, "multi-user.target")
}

// RoleUnits are the services of the tree's own unit files that it enables
// and that stay active: not a distribution's unit (networkd, chrony), not a
// one-shot job that exits (tree.Unit.Exits: the first controller's
// bootstrap).
func RoleUnits(t *tree.Tree) []string {
	var out []string
	for _, u := range t.Units() {
		if !strings.HasSuffix(u.Name, ".service") || u.Name == ReadyUnit || u.Exits {
			continue
		}
		if e, ok := t.Get(tree.UnitFile(u.Name)); ok && e.IsFile() {
			out = append(out, u.Name)
		}
	}
	return out
}
