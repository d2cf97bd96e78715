// Package archcheck holds hardway's packages to the import rules of
// docs/architecture.md: its test reads the doc's table and the import graph
// that `go list` reports, and fails on every import the table forbids.
package archcheck

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Module is the import path the table's package names are relative to.
const Module = "github.com/hardway-dev/hardway"

// Rule is one row of the table: the packages Pattern matches sit at Stage
// and must not import (directly or not) what Forbid matches.
type Rule struct {
	Pattern string
	Stage   int
	Forbid  []string
}

// Package is one package of the graph: its path relative to Module and
// the module's packages it imports directly.
type Package struct {
	Path    string
	Imports []string
}

// ParseRules reads the rows of the markdown table whose header starts
// "| Package | Stage |": | `pattern` | stage | what it owns | `a`, `b` or — |.
func ParseRules(doc string) ([]Rule, error) {
	var rules []Rule
	in := false
	for i, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, "| Package | Stage |") {
			in = true
			continue
		}
		if !in || strings.HasPrefix(line, "|---") {
			continue
		}
		if !strings.HasPrefix(line, "|") {
			if len(rules) > 0 {
				break
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 4 {
			return nil, fmt.Errorf("line %d: want 4 cells, got %d", i+1, len(cells))
		}
		pat := strings.TrimSpace(cells[0])
		if len(pat) < 3 || pat[0] != '`' || pat[len(pat)-1] != '`' {
			return nil, fmt.Errorf("line %d: package %q is not in backquotes", i+1, pat)
		}
		stage, err := strconv.Atoi(strings.TrimSpace(cells[1]))
		if err != nil {
			return nil, fmt.Errorf("line %d: stage: %w", i+1, err)
		}
		r := Rule{Pattern: strings.Trim(pat, "`"), Stage: stage}
		if f := strings.TrimSpace(cells[3]); f != "—" {
			for _, p := range strings.Split(f, ",") {
				p = strings.TrimSpace(p)
				if len(p) < 3 || p[0] != '`' || p[len(p)-1] != '`' {
					return nil, fmt.Errorf("line %d: forbidden %q is not in backquotes", i+1, p)
				}
				r.Forbid = append(r.Forbid, strings.Trim(p, "`"))
			}
		}
		rules = append(rules, r)
	}
	if len(rules) == 0 {
		return nil, fmt.Errorf("no | Package | Stage | ... table")
	}
	return rules, nil
}

// Match reports whether package path p matches pattern: "..." is every
// package, "x/..." is x and every package under it, anything else itself.
func Match(pattern, p string) bool {
	if pattern == "..." {
		return true
	}
	if prefix, ok := strings.CutSuffix(pattern, "/..."); ok {
		return p == prefix || strings.HasPrefix(p, prefix+"/")
	}
	return p == pattern
}

// specificity orders the patterns that match one package: itself, then
// the longest x/..., then "...".
func specificity(pattern string) int {
	if !strings.HasSuffix(pattern, "...") {
		return 1 << 20
	}
	return len(pattern)
}

// ruleOf is the most specific rule matching p, or nil.
func ruleOf(rules []Rule, p string) *Rule {
	var best *Rule
	for i := range rules {
		r := &rules[i]
		if Match(r.Pattern, p) && (best == nil || specificity(r.Pattern) > specificity(best.Pattern)) {
			best = r
		}
	}
	return best
}

// Check returns every breach of rules in the graph pkgs, sorted: a package
// no row matches, a row that matches no package, and every package a
// package reaches that sits at a later stage or that its row forbids,
// with the chain of imports that reaches it.
func Check(rules []Rule, pkgs []Package) []string {
	byPath := map[string]Package{}
	for _, p := range pkgs {
		byPath[p.Path] = p
	}
	var out []string
	used := map[string]bool{}
	for _, p := range pkgs {
		r := ruleOf(rules, p.Path)
		if r == nil {
			out = append(out, fmt.Sprintf("%s: no row of the table matches it", p.Path))
			continue
		}
		used[r.Pattern] = true
		for _, chain := range reach(byPath, p.Path) {
			dep := chain[len(chain)-1]
			d := ruleOf(rules, dep)
			if d == nil {
				continue // reported as a package of its own
			}
			via := strings.Join(chain, " → ")
			if d.Stage > r.Stage {
				out = append(out, fmt.Sprintf("%s: stage %d imports stage %d (%s)", p.Path, r.Stage, d.Stage, via))
			}
			for _, f := range r.Forbid {
				if Match(f, dep) && dep != p.Path {
					out = append(out, fmt.Sprintf("%s: must not import %s (%s)", p.Path, f, via))
				}
			}
		}
	}
	for _, r := range rules {
		if !used[r.Pattern] {
			out = append(out, fmt.Sprintf("%s: the row matches no package", r.Pattern))
		}
	}
	slices.Sort(out)
	return out
}

// reach is, for every package from reaches through the graph's imports,
// the shortest chain of imports from it to that package.
func reach(byPath map[string]Package, from string) [][]string {
	seen := map[string]bool{from: true}
	var out [][]string
	queue := [][]string{{from}}
	for len(queue) > 0 {
		chain := queue[0]
		queue = queue[1:]
		for _, imp := range byPath[chain[len(chain)-1]].Imports {
			if seen[imp] {
				continue
			}
			seen[imp] = true
			next := append(slices.Clone(chain), imp)
			out = append(out, next)
			queue = append(queue, next)
		}
	}
	return out
}
