package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The README's hardway commands: lines of its code blocks (after a prompt
// or sudo), and inline code spans.
var (
	codeCommand   = regexp.MustCompile(`^\s*(?:\$ )?(?:sudo )?(?:bin/)?hardway (.*)$`)
	inlineCommand = regexp.MustCompile("`(?:bin/)?hardway ([^`]*)`")
)

// readmeCommands returns the argument part of every hardway command of the
// README.
func readmeCommands(readme string) []string {
	var out []string
	inCode := false
	for _, l := range strings.Split(strings.ReplaceAll(readme, "\\\n", " "), "\n") {
		if strings.HasPrefix(l, "```") {
			inCode = !inCode
			continue
		}
		if inCode {
			if m := codeCommand.FindStringSubmatch(l); m != nil {
				out = append(out, m[1])
			}
			continue
		}
		for _, m := range inlineCommand.FindAllStringSubmatch(l, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

// TestREADMECommands keeps the README true to the command line: every
// hardway command it shows names a command and flags that exist, in this
// release's spelling (no -o DIR).
func TestREADMECommands(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range readmeCommands(string(data)) {
		args := shellWords(line)
		if len(args) == 0 {
			continue
		}
		n++
		root := newRoot()
		cmd, rest, err := root.Find(args)
		if err != nil || (cmd == root && len(rest) > 0 && !strings.HasPrefix(rest[0], "-")) {
			t.Errorf("README: hardway %s: no such command (%v)", line, err)
			continue
		}
		if err := cmd.ParseFlags(rest); err != nil {
			t.Errorf("README: hardway %s: %v", line, err)
			continue
		}
		if f := cmd.Flags().Lookup("output"); f != nil && f.Changed && f.Value.String() != formatText && f.Value.String() != formatJSON {
			t.Errorf("README: hardway %s: -o %s is the previous release's spelling", line, f.Value)
		}
	}
	if n < 20 {
		t.Errorf("found %d hardway commands in the README; the pattern misses them", n)
	}
}

// shellWords splits a README command line into its arguments: quotes and
// $(...) are kept as one word, a comment, redirection or pipe ends it, and
// optional [groups] are left out.
func shellWords(s string) []string {
	var words []string
	var w strings.Builder
	inWord, depth, quote := false, 0, rune(0)
	flush := func() {
		if inWord {
			words = append(words, w.String())
		}
		w.Reset()
		inWord = false
	}
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
			w.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
			w.WriteRune(r)
		case r == '[':
			depth++
		case r == ']':
			depth--
		case depth > 0:
		case r == ' ' || r == '\t':
			flush()
		case (r == '#' || r == '>' || r == '|' || r == ';') && !inWord:
			flush()
			return words
		default:
			inWord = true
			w.WriteRune(r)
		}
	}
	flush()
	return words
}
