package main

import (
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hardway-dev/hardway/spec"
)

// completionSpec is the spec -f names, with defaults, for shell completion;
// nil when there is none to read (completion then offers nothing).
func completionSpec(file string) *spec.Cluster {
	if file == "-" {
		return nil
	}
	doc, err := spec.LoadFile(file)
	if err != nil {
		return nil
	}
	spec.ApplyDefaults(doc.Cluster)
	return doc.Cluster
}

// completeFromSpec completes a flag with the values list takes from the
// spec that the command's -f (in *file) names.
func completeFromSpec(file *string, list func(*spec.Cluster) []string) cobra.CompletionFunc {
	return func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		c := completionSpec(*file)
		if c == nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return list(c), cobra.ShellCompDirectiveNoFileComp
	}
}

// nodeNames are the spec's nodes, each described by its roles and target.
func nodeNames(c *spec.Cluster) []string {
	var out []string
	for _, n := range c.Spec.Nodes {
		out = append(out, cobra.CompletionWithDesc(n.Name, n.Target+" "+strings.Join(n.Roles, ",")))
	}
	return out
}

// roleNames are the roles that some node of the spec has.
func roleNames(c *spec.Cluster) []string {
	var out []string
	for _, n := range c.Spec.Nodes {
		for _, r := range n.Roles {
			if !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	slices.Sort(out)
	return out
}
