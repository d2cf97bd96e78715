package templates

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// The quoting functions of the templates, one per syntax. Every value a
// template takes from the spec goes through the one for the place it lands
// in, so that no value, whatever it holds, can end a word, a string, a line
// or a comment early: validation (spec/) and the generators' own check
// (generators/nodegen.Check) stop hostile values first, and these stop them again
// where they are written. Syntaxes that have no quoting (ifupdown's
// interfaces, Proxmox and LXC configuration lines, authorized_keys, hosts,
// networkd and keyfile values) rely on nodegen.Check alone.
//
//	shq     a POSIX shell word
//	sdexec  a word of a systemd Exec*= command line
//	sdtext  a systemd free-text value (Description=)
//	jsonq   a JSON string, which is also a YAML and a TOML string
//	comment text inside a comment of any syntax: never a line break
var quoteFuncs = map[string]any{
	"shq":     ShellQuote,
	"sdexec":  SystemdExecArg,
	"sdtext":  SystemdText,
	"jsonq":   JSONQuote,
	"comment": Comment,
}

// shellSafe are the words a shell reads as themselves (Python's shlex.quote
// leaves the same set bare).
var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// ShellQuote returns parts, concatenated, as one POSIX shell word: bare when
// it is made of characters no shell treats specially, else in single quotes,
// inside which nothing is special; a single quote itself ends the quoted
// part, is escaped with a backslash, and a new quoted part begins.
func ShellQuote(parts ...string) string {
	s := strings.Join(parts, "")
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// systemdSafe are the words systemd reads as themselves on an Exec*= line
// once % and $ are doubled.
var systemdSafe = regexp.MustCompile(`^[A-Za-z0-9_@%$+=:,./-]+$`)

// SystemdExecArg returns parts, concatenated, as one argument of an Exec*=
// command line (systemd.service(5) "Command lines", systemd.syntax(7)
// "Quoting"): "%" is written "%%" (a specifier otherwise) and "$" "$$" (an
// environment variable otherwise); a word with anything but safe
// characters is written in double quotes, with backslash, double quote and
// characters that are not printable as C escapes, so that whitespace, quotes and ";" stay
// inside the argument. A whole argument is quoted, never a part of one.
func SystemdExecArg(parts ...string) string {
	s := strings.Join(parts, "")
	s = strings.ReplaceAll(strings.ReplaceAll(s, "%", "%%"), "$", "$$")
	if systemdSafe.MatchString(s) {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == ' ' || unicode.IsPrint(r):
			b.WriteRune(r)
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// SystemdText returns s for a free-text setting such as Description=, which
// systemd takes to the end of the line and expands specifiers in: "%" is
// written "%%" and nothing can break the line (see Comment).
func SystemdText(s string) string { return strings.ReplaceAll(Comment(s), "%", "%%") }

// JSONQuote returns s as a JSON string in double quotes. Its escapes (\"
// \\ \n \t \uXXXX ...) are those of YAML's double-quoted scalars and TOML's
// basic strings too, so it quotes a value for any of the three. Every
// character that is not printable is escaped, DEL, NEL (U+0085) and the
// Unicode line separators among them, which JSON would leave as they are and
// YAML reads as a control or a line break; HTML characters are left as they are.
func JSONQuote(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	var out strings.Builder
	for _, r := range strings.TrimSuffix(b.String(), "\n") {
		if r == ' ' || unicode.IsPrint(r) || r > 0xffff {
			out.WriteRune(r)
		} else {
			fmt.Fprintf(&out, `\u%04x`, r)
		}
	}
	return out.String()
}

// Comment returns s with every character that is not printable (line
// breaks, tabs, escape sequences, invalid UTF-8) written as a Go escape, so
// that s stays on the comment line it is written on.
func Comment(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsPrint(r) || r == ' ' {
			b.WriteRune(r)
			continue
		}
		b.WriteString(strings.Trim(strconv.QuoteRune(r), "'"))
	}
	return b.String()
}
