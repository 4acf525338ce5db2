package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// setRootUsage makes `tandem`, `tandem help` and `tandem --help` print the
// verbs in the order of a migration, each with its summary (a group's verbs
// by their full name, as `dlq list`), then the flags every verb takes and
// the exit codes. Both lists come from the commands themselves; the verbs
// keep cobra's usage.
func setRootUsage(root *cobra.Command) {
	verbUsage := root.UsageFunc()
	root.SetUsageFunc(func(cmd *cobra.Command) error {
		if cmd != root {
			return verbUsage(cmd)
		}
		return printRootUsage(cmd.OutOrStderr(), root)
	})
}

// printRootUsage prints the usage of tandem itself.
func printRootUsage(w io.Writer, root *cobra.Command) error {
	type verb struct{ name, short string }
	var verbs []verb
	width := 0
	for _, c := range root.Commands() {
		if !c.IsAvailableCommand() {
			continue
		}
		subs := []*cobra.Command{c}
		if c.HasAvailableSubCommands() {
			subs = c.Commands()
		}
		for _, s := range subs {
			if !s.IsAvailableCommand() {
				continue
			}
			name := strings.TrimPrefix(s.CommandPath(), root.Name()+" ")
			verbs = append(verbs, verb{name, s.Short})
			width = max(width, len(name))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s\n\nVerbs:\n", root.Use)
	for _, v := range verbs {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, v.name, v.short)
	}
	fmt.Fprintf(&b, "\nFlags:\n%s", root.PersistentFlags().FlagUsages())
	fmt.Fprintf(&b, "\nExit codes: 0 ok, 1 check failed or drift found, 2 usage or config error.\n")
	fmt.Fprintf(&b, "Run '%s <verb> --help' for what a verb does and its flags.\n", root.Name())
	_, err := io.WriteString(w, b.String())
	return err
}
