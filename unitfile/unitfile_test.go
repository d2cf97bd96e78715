package unitfile

import (
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	const text = `# leading comment
[Unit]
Description=demo   

[Service]
Environment="A=one two" B=three
; a comment before the command
ExecStart=/usr/local/bin/demo \
  --flag=value \
  # a comment inside the continuation is skipped
  --other "quoted arg" \
  $A ${B}
ExecStartPre=/bin/true
ExecStartPre=
ExecStartPre=-/bin/false
`
	u, err := Parse("demo.service", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Values("Unit", "Description"); !slices.Equal(got, []string{"demo"}) {
		t.Errorf("Description = %q", got)
	}
	c, err := u.ExecStart()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/usr/local/bin/demo", "--flag=value", "--other", "quoted arg", "one", "two", "three"}
	if !slices.Equal(c.Argv, want) {
		t.Errorf("ExecStart argv\n got %q\nwant %q", c.Argv, want)
	}
	pre, err := u.Exec("ExecStartPre")
	if err != nil {
		t.Fatal(err)
	}
	if len(pre) != 1 || !pre[0].IgnoreFailure() || pre[0].Argv[0] != "/bin/false" {
		t.Errorf("ExecStartPre after a reset = %+v, want only -/bin/false", pre)
	}
}

func TestParseUnitErrors(t *testing.T) {
	for name, text := range map[string]string{
		"no section":          "ExecStart=/bin/true\n",
		"not an assignment":   "[Service]\nExecStart\n",
		"dangling backslash":  "[Service]\nExecStart=/bin/true \\\n",
		"unclosed section":    "[Service\n",
		"two ExecStart lines": "[Service]\nExecStart=/bin/a\nExecStart=/bin/b\n",
	} {
		t.Run(name, func(t *testing.T) {
			u, err := Parse("x.service", []byte(text))
			if err == nil {
				_, err = u.ExecStart()
			}
			if err == nil {
				t.Errorf("no error for %q", text)
			}
		})
	}
}

func TestSplit(t *testing.T) {
	env := map[string]string{"OPTS": "--a --b", "DIR": "/var/lib/x"}
	tests := []struct {
		in       string
		argv     []string
		prefixes string
	}{
		{`/bin/echo a  b`, []string{"/bin/echo", "a", "b"}, ""},
		{`-@/bin/sh sh -c 'echo "hi there"'`, []string{"/bin/sh", "sh", "-c", `echo "hi there"`}, "-@"},
		{`/bin/echo "a\tb" 'c d' e\ f`, []string{"/bin/echo", "a\tb", "c d", "e f"}, ""},
		{`/bin/echo \x41\101 \u00e9`, []string{"/bin/echo", "AA", "é"}, ""},
		{`/bin/echo --x="a b"c`, []string{"/bin/echo", "--x=a bc"}, ""},
		{`/bin/echo 100%% $OPTS --dir=${DIR}/data "$OPTS"`, []string{"/bin/echo", "100%", "--a", "--b", "--dir=/var/lib/x/data", "$OPTS"}, ""},
		{`+/bin/echo $UNSET end`, []string{"/bin/echo", "end"}, "+"},
		{`/bin/echo price=$$5 "a$$b" $${DIR}`, []string{"/bin/echo", "price=$5", "a$b", "${DIR}"}, ""},
	}
	for _, tt := range tests {
		c, err := Split(tt.in, env)
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if !slices.Equal(c.Argv, tt.argv) || c.Prefixes != tt.prefixes {
			t.Errorf("%s:\n got %q %q\nwant %q %q", tt.in, c.Prefixes, c.Argv, tt.prefixes, tt.argv)
		}
	}
}

func TestSplitCommandErrors(t *testing.T) {
	for _, in := range []string{
		`/bin/echo "unterminated`,
		`/bin/echo %n`,
		`relative/path arg`,
		`/bin/echo \q`,
		`/bin/echo ${OPEN`,
		``,
	} {
		if c, err := Split(in, map[string]string{}); err == nil {
			t.Errorf("%q: no error, got %q", in, c.Argv)
		}
	}
}

func TestFlag(t *testing.T) {
	argv := []string{"/bin/x", "--a=1", "--b", "2", "--c", "--bind-address=127.0.0.1"}
	for _, tt := range []struct {
		name, want string
		ok         bool
	}{{"a", "1", true}, {"b", "2", true}, {"c", "", true}, {"bind-address", "127.0.0.1", true}, {"d", "", false}} {
		if got, ok := Flag(argv, tt.name); got != tt.want || ok != tt.ok {
			t.Errorf("Flag(%s) = %q, %v; want %q, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}
