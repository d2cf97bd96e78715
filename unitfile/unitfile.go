// Package unitfile reads systemd unit files the way systemd does: sections,
// continuation lines, comments, Environment= and Exec*= command lines split
// by systemd's own rules. verify starts processes from what it reads, and
// bake and the generators' tests check the programs units run.
package unitfile

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Unit is a parsed systemd unit file: its assignments by section, in file order.
type Unit struct {
	Name     string
	sections map[string][]assignment
}

type assignment struct {
	key, value string
	line       int
}

// Command is one Exec*= line split the way systemd splits it.
type Command struct {
	// Prefixes are the special executable prefixes ("-", "@", "+", ":", "!", "!!").
	Prefixes string
	// Argv holds the executable path, then the arguments.
	Argv []string
}

// IgnoreFailure reports the "-" prefix: a failing command does not fail the unit.
func (c Command) IgnoreFailure() bool { return strings.Contains(c.Prefixes, "-") }

// Read parses the unit file at path.
func Read(path string) (*Unit, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	u, err := Parse(filepath.Base(path), data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return u, nil
}

// Parse parses a unit file the way systemd does: [Section] headers,
// Key=Value assignments, "#" and ";" comments, and lines ending in a backslash
// continued on the next line (the backslash and newline become one space;
// comment lines inside a continuation are skipped).
func Parse(name string, data []byte) (*Unit, error) {
	u := &Unit{Name: name, sections: map[string][]assignment{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	section, lineNo := "", 0
	var cont strings.Builder
	contStart := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimRight(sc.Text(), " \t\r")
		trimmed := strings.TrimLeft(line, " \t")
		if cont.Len() > 0 && (strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, ";")) {
			continue
		}
		if cont.Len() == 0 {
			contStart = lineNo
			if trimmed == "" || strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, ";") {
				continue
			}
		}
		if strings.HasSuffix(line, `\`) && !strings.HasSuffix(line, `\\`) {
			cont.WriteString(strings.TrimSuffix(line, `\`))
			cont.WriteByte(' ')
			continue
		}
		cont.WriteString(line)
		full := strings.TrimSpace(cont.String())
		cont.Reset()
		if strings.HasPrefix(full, "[") {
			if !strings.HasSuffix(full, "]") {
				return nil, fmt.Errorf("line %d: bad section header %q", contStart, full)
			}
			section = full[1 : len(full)-1]
			continue
		}
		key, value, ok := strings.Cut(full, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: not an assignment: %q", contStart, full)
		}
		if section == "" {
			return nil, fmt.Errorf("line %d: assignment outside a section", contStart)
		}
		key = strings.TrimSpace(key)
		u.sections[section] = append(u.sections[section], assignment{key, strings.TrimSpace(value), contStart})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cont.Len() > 0 {
		return nil, fmt.Errorf("line %d: continuation at end of file", contStart)
	}
	return u, nil
}

// Values returns every value of key in section, in order. An empty
// assignment resets the list, as it does for systemd's list settings.
func (u *Unit) Values(section, key string) []string {
	var out []string
	for _, a := range u.sections[section] {
		if a.key != key {
			continue
		}
		if a.value == "" {
			out = nil
			continue
		}
		out = append(out, a.value)
	}
	return out
}

// Environment returns the unit's Environment= assignments.
func (u *Unit) Environment() (map[string]string, error) {
	env := map[string]string{}
	for _, v := range u.Values("Service", "Environment") {
		words, err := splitWords(v, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: Environment=: %w", u.Name, err)
		}
		for _, w := range words {
			k, val, ok := strings.Cut(w, "=")
			if !ok {
				return nil, fmt.Errorf("%s: Environment=: %q is not NAME=VALUE", u.Name, w)
			}
			env[k] = val
		}
	}
	return env, nil
}

// ExecKeys are the [Service] settings whose value is a command line, in the
// order systemd runs them for a start, then a reload, then a stop.
var ExecKeys = []string{"ExecCondition", "ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload", "ExecStop", "ExecStopPost"}

// Exec returns the commands of an Exec*= key of [Service] (ExecStart,
// ExecStartPre, ...), split systemd-style with the unit's Environment=
// variables expanded.
func (u *Unit) Exec(key string) ([]Command, error) {
	env, err := u.Environment()
	if err != nil {
		return nil, err
	}
	var out []Command
	for _, v := range u.Values("Service", key) {
		c, err := Split(v, env)
		if err != nil {
			return nil, fmt.Errorf("%s: %s=: %w", u.Name, key, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// ExecStart returns the unit's single ExecStart= command.
func (u *Unit) ExecStart() (Command, error) {
	cs, err := u.Exec("ExecStart")
	if err != nil {
		return Command{}, err
	}
	if len(cs) != 1 {
		return Command{}, fmt.Errorf("%s: want one ExecStart=, found %d", u.Name, len(cs))
	}
	return cs[0], nil
}

// Split splits an Exec*= value as systemd.service(5) describes:
// leading special prefixes, words separated by whitespace, single and double
// quotes, C-style backslash escapes, "%%" for a percent sign, ${NAME}
// substituted inside a word and a lone $NAME split into several words.
func Split(s string, env map[string]string) (Command, error) {
	s = strings.TrimLeft(s, " \t")
	var c Command
	for len(s) > 0 && strings.ContainsRune("-@+:!", rune(s[0])) {
		c.Prefixes += s[:1]
		s = s[1:]
	}
	words, err := splitWords(s, env)
	if err != nil {
		return Command{}, err
	}
	if len(words) == 0 {
		return Command{}, fmt.Errorf("empty command")
	}
	if !strings.HasPrefix(words[0], "/") && !strings.Contains(c.Prefixes, "@") {
		// systemd also searches a fixed PATH; only absolute paths are generated.
		return Command{}, fmt.Errorf("executable %q is not an absolute path", words[0])
	}
	c.Argv = words
	return c, nil
}

// splitWords splits s into words. env is nil for Environment= values, which
// get no variable expansion.
func splitWords(s string, env map[string]string) ([]string, error) {
	var words []string
	for {
		s = strings.TrimLeft(s, " \t\n")
		if s == "" {
			return words, nil
		}
		if env != nil && s[0] == '$' && len(s) > 1 && isVarStart(s[1]) {
			// A lone $NAME word becomes the value split at whitespace.
			end := 1
			for end < len(s) && isVarChar(s[end]) {
				end++
			}
			if end == len(s) || strings.ContainsRune(" \t\n", rune(s[end])) {
				words = append(words, strings.Fields(env[s[1:end]])...)
				s = s[end:]
				continue
			}
		}
		w, rest, err := nextWord(s, env)
		if err != nil {
			return nil, err
		}
		words = append(words, w)
		s = rest
	}
}

// nextWord reads one word from the start of s.
func nextWord(s string, env map[string]string) (string, string, error) {
	var b strings.Builder
	var quote byte
	for i := 0; i < len(s); {
		ch := s[i]
		switch {
		case quote == 0 && strings.IndexByte(" \t\n", ch) >= 0:
			return b.String(), s[i:], nil
		case quote == 0 && (ch == '"' || ch == '\''):
			quote = ch
			i++
		case quote != 0 && ch == quote:
			quote = 0
			i++
		case ch == '\\':
			r, n, err := unescape(s[i:])
			if err != nil {
				return "", "", err
			}
			b.WriteString(r)
			i += n
		case ch == '%' && env != nil:
			if i+1 >= len(s) || s[i+1] != '%' {
				return "", "", fmt.Errorf("unsupported specifier %q", s[i:min(i+2, len(s))])
			}
			b.WriteByte('%')
			i += 2
		case ch == '$' && env != nil && strings.HasPrefix(s[i:], "$$"):
			// "$$" is a literal "$" (systemd.service(5), Command lines).
			b.WriteByte('$')
			i += 2
		case ch == '$' && env != nil && strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return "", "", fmt.Errorf("unterminated ${ in %q", s)
			}
			b.WriteString(env[s[i+2:i+end]])
			i += end + 1
		default:
			b.WriteByte(ch)
			i++
		}
	}
	if quote != 0 {
		return "", "", fmt.Errorf("unterminated quote in %q", s)
	}
	return b.String(), "", nil
}

// unescape decodes one C-style escape at the start of s (which starts with a
// backslash) and returns the text and the number of bytes consumed.
func unescape(s string) (string, int, error) {
	if len(s) < 2 {
		return "", 0, fmt.Errorf("trailing backslash")
	}
	simple := map[byte]string{'a': "\a", 'b': "\b", 'f': "\f", 'n': "\n", 'r': "\r", 't': "\t",
		'v': "\v", '\\': "\\", '"': "\"", '\'': "'", 's': " ", ' ': " ", '$': "$", ';': ";"}
	if r, ok := simple[s[1]]; ok {
		return r, 2, nil
	}
	switch s[1] {
	case 'x':
		if len(s) >= 4 {
			if v, err := strconv.ParseUint(s[2:4], 16, 8); err == nil {
				return string([]byte{byte(v)}), 4, nil
			}
		}
	case 'u', 'U':
		n := 4
		if s[1] == 'U' {
			n = 8
		}
		if len(s) >= 2+n {
			if v, err := strconv.ParseUint(s[2:2+n], 16, 32); err == nil && utf8.ValidRune(rune(v)) {
				return string(rune(v)), 2 + n, nil
			}
		}
	case '0', '1', '2', '3':
		if len(s) >= 4 {
			if v, err := strconv.ParseUint(s[1:4], 8, 8); err == nil {
				return string([]byte{byte(v)}), 4, nil
			}
		}
	}
	return "", 0, fmt.Errorf("bad escape %q", s[:2])
}

func isVarStart(c byte) bool {
	return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
}

func isVarChar(c byte) bool { return isVarStart(c) || (c >= '0' && c <= '9') }

// Flag returns the value of --name in argv: "--name=value", or "--name value"
// unless the next argument is a flag too (then the value is empty).
func Flag(argv []string, name string) (string, bool) {
	for i, a := range argv {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
		if a == "--"+name {
			if i+1 < len(argv) && !strings.HasPrefix(argv[i+1], "-") {
				return argv[i+1], true
			}
			return "", true
		}
	}
	return "", false
}
