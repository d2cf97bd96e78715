package templates_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	k8syaml "sigs.k8s.io/yaml"

	"github.com/hardway-dev/hardway/generators/common/commontest"
	"github.com/hardway-dev/hardway/templates"
)

// hostile are values that end a word, a string, a line or a comment, run a
// command or expand to something else in some syntax, or change type in YAML.
var hostile = []string{
	"", "plain", "a b", "  lead and trail  ", "tab\there", "new\nline\n", "cr\rx", "\x01\x1b[31mred\x7f",
	`quote ' and " and \ backslash`, `'`, `"`, `\`, `trailing \`, `\;`, ";", "a ; b", "$(touch /tmp/hardway-canary)",
	"`touch /tmp/hardway-canary`", "${HOME} $HOME $$ $", "100% %n %% %", "-rf", "@x", "*.glob?[a]", "~root", "#comment",
	"!bang && true || false | cat > /tmp/x < /etc/passwd &", "é ü 日本", "\u2028\u2029\u0085", "key: value", "- item",
	"{a: b}", "[x]", "true", "null", "~", "123", "0x1F", "1e5", "yes", "</script>&amp;",
}

// TestShellQuote: bash reads shq's word, and a word made of several parts,
// as the value itself.
func TestShellQuote(t *testing.T) {
	bash := commontest.Tool(t, "bash", "bash")
	var script strings.Builder
	for _, s := range hostile {
		script.WriteString("printf '%s\\0' " + templates.ShellQuote(s) + "\n")
		script.WriteString("printf '%s\\0' " + templates.ShellQuote("<", s, ">") + "\n")
	}
	out, err := exec.Command(bash, "-c", script.String()).Output()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, script.String())
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	for i, s := range hostile {
		if 2*i+1 >= len(got) || got[2*i] != s || got[2*i+1] != "<"+s+">" {
			t.Fatalf("bash read %q as %q (from %s)", s, got[min(2*i, len(got)-1):], templates.ShellQuote(s))
		}
	}
	if got := templates.ShellQuote("vmbr0"); got != "vmbr0" {
		t.Errorf("a plain word is quoted: %s", got)
	}
}

// TestSystemdExecArg: systemd itself (its --test dump of a unit, run as
// nobody) reads each sdexec word as one argument holding the value, and
// systemd-analyze verify has nothing to say about them.
func TestSystemdExecArg(t *testing.T) {
	// The service manager itself, from the package of systemd-analyze.
	commontest.Tool(t, "systemd-analyze", "systemd")
	const systemd = "/lib/systemd/systemd"
	if _, err := os.Stat(systemd); err != nil {
		t.Fatalf("the systemd package has no %s: %v", systemd, err)
	}
	var unit strings.Builder
	unit.WriteString("[Service]\nType=oneshot\n")
	for _, s := range hostile {
		unit.WriteString("ExecStart=/bin/echo " + templates.SystemdExecArg(s) + " " + templates.SystemdExecArg("--flag=", s) + " end\n")
	}
	dir, err := os.MkdirTemp("", "hardway-sdexec-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// The user manager, run as nobody, writes below XDG_RUNTIME_DIR.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	p := commontest.WriteFile(t, dir, "units/hardway-test.service", []byte(unit.String()))
	if err := os.Chmod(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(systemd, "--test", "--user", "--unit=hardway-test.service", "--no-pager")
	if os.Geteuid() == 0 {
		// The user manager refuses to run as root in test mode.
		cmd = exec.Command(commontest.Tool(t, "setpriv", "util-linux"), append([]string{"--reuid=65534", "--regid=65534", "--clear-groups"}, cmd.Args...)...)
	}
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_RUNTIME_DIR="+dir, "SYSTEMD_UNIT_PATH="+filepath.Dir(p)+":", "SYSTEMD_LOG_COLOR=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("systemd --test: %v\n%s", err, out)
	}
	if strings.Contains(string(out), p+":") {
		t.Errorf("systemd warns about the unit:\n%s", out)
	}
	got := dumpedCommands(t, string(out), "hardway-test.service")
	if len(got) != len(hostile) {
		t.Fatalf("systemd read %d commands, want %d:\n%q", len(got), len(hostile), got)
	}
	for i, s := range hostile {
		// What the dump shows is the unit's argv, before the "$$" -> "$"
		// of environment expansion at exec time.
		want := []string{"/bin/echo", s, "--flag=" + s, "end"}
		argv := got[i]
		for j := range argv {
			argv[j] = strings.ReplaceAll(argv[j], "$$", "$")
		}
		if strings.Join(argv, "\x00") != strings.Join(want, "\x00") {
			t.Errorf("systemd read %s as %q, want %q", templates.SystemdExecArg(s), argv, want)
		}
	}
	if out, ok := commontest.Verify(t, "/", p); !ok {
		t.Errorf("systemd-analyze verify: %s", out)
	}
}

// dumpedCommands returns the command lines systemd's unit dump shows for
// unit's ExecStart=, unquoted (systemd's quote_command_line: double quotes,
// backslash before \ " $ `, C escapes with octal for other controls).
func dumpedCommands(t *testing.T, dump, unit string) [][]string {
	t.Helper()
	var out [][]string
	in := false
	for _, l := range strings.Split(dump, "\n") {
		if u, ok := strings.CutPrefix(strings.TrimSpace(l), "-> Unit "); ok {
			in = u == unit+":"
			continue
		}
		cl, ok := strings.CutPrefix(strings.TrimSpace(l), "Command Line: ")
		if !in || !ok {
			continue
		}
		var argv []string
		for cl != "" {
			var w strings.Builder
			if cl[0] != '"' {
				end := strings.IndexByte(cl, ' ')
				if end < 0 {
					end = len(cl)
				}
				w.WriteString(cl[:end])
				cl = cl[end:]
			} else {
				i := 1
				for ; i < len(cl) && cl[i] != '"'; i++ {
					if cl[i] != '\\' {
						w.WriteByte(cl[i])
						continue
					}
					i++
					switch c := cl[i]; {
					case c >= '0' && c <= '7':
						v, err := strconv.ParseUint(cl[i:i+3], 8, 8)
						if err != nil {
							t.Fatalf("dump: bad escape in %q", cl)
						}
						w.WriteByte(byte(v))
						i += 2
					case strings.IndexByte("abfnrtv", c) >= 0:
						w.WriteByte("\a\b\f\n\r\t\v"[strings.IndexByte("abfnrtv", c)])
					default:
						w.WriteByte(c)
					}
				}
				cl = cl[i+1:]
			}
			argv = append(argv, w.String())
			cl = strings.TrimPrefix(cl, " ")
		}
		out = append(out, argv)
	}
	return out
}

// TestJSONQuote: a jsonq value reads back as itself, and as a string, in
// JSON and in YAML (gopkg.in/yaml.v3, and sigs.k8s.io/yaml, which the
// Kubernetes components read their configuration files with).
func TestJSONQuote(t *testing.T) {
	for _, s := range hostile {
		q := templates.JSONQuote(s)
		var j string
		if err := json.Unmarshal([]byte(q), &j); err != nil || j != s {
			t.Errorf("JSON read %s as %q (%v)", q, j, err)
		}
		var y map[string]any
		if err := yaml.Unmarshal([]byte("key: "+q+"\nother: 1\n"), &y); err != nil || y["key"] != s || len(y) != 2 {
			t.Errorf("yaml.v3 read %s as %#v (%v)", q, y, err)
		}
		var k struct {
			Key string `json:"key"`
		}
		if err := k8syaml.UnmarshalStrict([]byte("key: "+q+"\n"), &k); err != nil || k.Key != s {
			t.Errorf("sigs.k8s.io/yaml read %s as %q (%v)", q, k.Key, err)
		}
	}
}

// TestComment: comment keeps a value on its comment line.
func TestComment(t *testing.T) {
	for _, s := range hostile {
		if c := templates.Comment(s); strings.ContainsAny(c, "\n\r\x0b\x0c\u2028\u2029\u0085") {
			t.Errorf("comment(%q) = %q breaks the line", s, c)
		}
	}
	if got := templates.SystemdText("100% \n"); got != `100%% \n` {
		t.Errorf("sdtext: %q", got)
	}
}
