package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// shells are the shells `tandem completion` writes a script for.
var shells = []string{"bash", "zsh", "fish", "powershell"}

// newCompletionCmd builds `tandem completion SHELL`, which prints the shell
// completion script cobra generates from the verbs and flags.
func newCompletionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "completion " + strings.Join(shells, "|"),
		Short: "print the shell completion script (bash, zsh, fish, powershell)",
		Long: `Print the script that completes tandem's verbs, flags and flag values in
the shell named. For example:

  bash:  source <(tandem completion bash)      (needs bash-completion)
  zsh:   tandem completion zsh > "${fpath[1]}/_tandem"
  fish:  tandem completion fish > ~/.config/fish/completions/tandem.fish`,
		ValidArgs: shells,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 || !slices.Contains(shells, args[0]) {
				return fmt.Errorf("want one shell of %s", strings.Join(shells, ", "))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			root, out := cmd.Root(), cmd.OutOrStdout()
			var err error
			switch args[0] {
			case "bash":
				err = root.GenBashCompletionV2(out, true)
			case "zsh":
				err = root.GenZshCompletion(out)
			case "fish":
				err = root.GenFishCompletion(out, true)
			case "powershell":
				err = root.GenPowerShellCompletionWithDesc(out)
			}
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: write the %s script: %v\n", cmd.CommandPath(), args[0], err)
				return exitError(exitFailed)
			}
			return nil
		},
	}
}
