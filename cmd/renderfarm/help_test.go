package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/testenv"
	"github.com/urfave/cli/v2"
)

// optionNames is the names part of a flag's line in --help: everything
// before the gap that starts its usage.
var optionNames = regexp.MustCompile(`^\s+(-\S.*?)(\s{2,}|$)`)

// Every command's --help, subcommands included, shows an example
// invocation, and every flag reads "--name value" or "--name": urfave/cli
// turns a `backquoted` word in a usage into the value's placeholder, which
// once made --concurrency read "--concurrency renderfarm tune".
func TestEveryCommandHelpHasAnExampleAndPlainFlags(t *testing.T) {
	var walk func(path []string, cmds []*cli.Command)
	seen := 0
	walk = func(path []string, cmds []*cli.Command) {
		for _, cmd := range cmds {
			if cmd.Name == "help" {
				continue
			}
			seen++
			p := append(append([]string{}, path...), cmd.Name)
			name := "renderfarm " + strings.Join(p, " ")
			out, err := run(t, append(p, "--help")...)
			if err != nil {
				t.Errorf("%s --help: %v", name, err)
				continue
			}
			example, inOptions := false, false
			for _, line := range strings.Split(out, "\n") {
				l := strings.TrimSpace(line)
				// The generated usage line has "[command options]"; an
				// example has real arguments or flags.
				if strings.HasPrefix(l, name+" ") && !strings.Contains(l, "[command options]") {
					example = true
				}
				if l == "OPTIONS:" {
					inOptions = true
					continue
				}
				m := optionNames.FindStringSubmatch(line)
				if !inOptions || m == nil {
					continue
				}
				for _, word := range strings.Fields(m[1]) {
					word = strings.TrimSuffix(word, ",")
					if !strings.HasPrefix(word, "-") && word != "value" && word != "[" && word != "]" {
						t.Errorf("%s --help: the flag line %q shows %q as its value", name, strings.TrimSpace(line), word)
					}
				}
			}
			if !example {
				t.Errorf("%s --help has no example (a line starting %q with arguments):\n%s", name, name, out)
			}
			if !inOptions && len(cmd.Flags) > 0 {
				t.Errorf("%s --help has no OPTIONS section:\n%s", name, out)
			}
			walk(p, cmd.Subcommands)
		}
	}
	walk(nil, newApp().Commands)
	if seen < 11 {
		t.Errorf("checked %d commands; the app has render, tune, worker, replay, web, dlq (4) and completion at least", seen)
	}
}

// The bash script is valid and, run as bash runs it on TAB, completes
// from what the binary says: commands, subcommands and flags.
func TestCompletionScripts(t *testing.T) {
	bin := testenv.Renderfarm(t)
	dir := t.TempDir()
	for _, sh := range []string{"bash", "zsh"} {
		out, err := run(t, "completion", sh)
		if err != nil || !strings.Contains(out, completionFlag) {
			t.Fatalf("completion %s: %v\n%s", sh, err, out)
		}
		file := filepath.Join(dir, "renderfarm."+sh)
		if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := exec.LookPath(sh); err != nil {
			t.Logf("no %s here: its script is not checked", sh)
			continue
		}
		if msg, err := exec.Command(sh, "-n", file).CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", sh, err, msg)
		}
	}
	if _, err := run(t, "completion", "fish"); exitCode(err) != exitUsage {
		t.Errorf("completion fish: exit %d, want %d", exitCode(err), exitUsage)
	}

	// Each shell's completion function, called as the shell calls it on
	// TAB with the words typed so far. zsh's own _describe filters by the
	// prefix, so there a stub prints every candidate and the test looks
	// for the one wanted among them.
	complete := map[string]string{
		"bash": `source "$1"; read -ra COMP_WORDS <<< "$2"; COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _renderfarm; echo "${COMPREPLY[*]}"`,
		"zsh": `_describe() { print -l -- "${(@P)2}" }; _files() { print FILES }; compdef() { : }
			source "$1"; words=(${=2}); CURRENT=${#words}; _renderfarm`,
	}
	for _, tc := range []struct{ line, want string }{
		{"renderfarm dl", "dlq"},
		{"renderfarm dlq re", "replay"},
		{"renderfarm dlq replay --al", "--all"},
		{"renderfarm dlq ls --out", "--output"},
		{"renderfarm wor", "worker"},
	} {
		for sh, script := range complete {
			if _, err := exec.LookPath(sh); err != nil {
				continue
			}
			args := []string{"-c", script, sh, filepath.Join(dir, "renderfarm."+sh), tc.line}
			if sh == "zsh" {
				args = append([]string{"-f"}, args...)
			}
			cmd := exec.Command(sh, args...)
			cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))
			out, err := cmd.Output()
			got := strings.TrimSpace(string(out))
			if sh == "zsh" && slices.Contains(strings.Split(got, "\n"), tc.want) {
				got = tc.want
			}
			if err != nil || got != tc.want {
				t.Errorf("%s completing %q: %q (%v), want %q", sh, tc.line, out, err, tc.want)
			}
		}
	}
}
