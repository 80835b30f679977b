package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// completionFlag is urfave/cli's hidden flag (App.EnableBashCompletion):
// given last, the binary prints the commands, subcommands or flags that
// may follow the words before it, one per line.
const completionFlag = "--generate-bash-completion"

// The scripts ask the binary itself what may come next, so they never go
// stale as commands and flags change. They pass the words typed so far as
// separate arguments rather than through eval (as urfave/cli's own
// scripts do), so nothing on the command line is run by the shell.
const bashCompletion = `# bash completion for renderfarm
_renderfarm() {
  local cur="${COMP_WORDS[COMP_CWORD]}" opts
  local -a words=("${COMP_WORDS[@]:0:COMP_CWORD}")
  if [[ "$cur" == -* ]]; then
    opts=$("${words[@]}" "$cur" ` + completionFlag + ` 2>/dev/null)
  else
    opts=$("${words[@]}" ` + completionFlag + ` 2>/dev/null)
  fi
  local IFS=$'\n'
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -o bashdefault -o default -F _renderfarm renderfarm
`

const zshCompletion = `#compdef renderfarm
# zsh completion for renderfarm
_renderfarm() {
  local -a opts
  local cur=${words[CURRENT]}
  if [[ "$cur" == -* ]]; then
    opts=("${(@f)$(${words[1,CURRENT-1]} "$cur" ` + completionFlag + ` 2>/dev/null)}")
  else
    opts=("${(@f)$(${words[1,CURRENT-1]} ` + completionFlag + ` 2>/dev/null)}")
  fi
  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}
compdef _renderfarm renderfarm
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print the shell completion script for bash or zsh",
		ArgsUsage: "bash|zsh",
		UsageText: `renderfarm completion bash > /etc/bash_completion.d/renderfarm
renderfarm completion zsh > "${fpath[1]}/_renderfarm"`,
		Action: func(c *cli.Context) error {
			if c.Args().Len() != 1 {
				return usageError("name one shell: bash or zsh")
			}
			switch sh := c.Args().First(); sh {
			case "bash":
				fmt.Fprint(c.App.Writer, bashCompletion)
			case "zsh":
				fmt.Fprint(c.App.Writer, zshCompletion)
			default:
				return usageError("no completion for %q: bash or zsh", sh)
			}
			return nil
		},
	}
}
