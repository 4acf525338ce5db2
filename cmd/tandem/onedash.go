package main

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// longFlagsWithOneDash rewrites `-name` and `-name=value` to `--name` and
// `--name=value` where name is a long flag of the verb args run: Go's flag
// package, which parsed tandem's command line before cobra, accepts one
// dash or two, while pflag reads `-once` as the shorthands o, n, c and e.
// Flag values (`--mapping -x`) and what follows `--` are left as they are.
func longFlagsWithOneDash(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil {
		return args
	}
	cmd.InitDefaultHelpFlag()
	sets := []*pflag.FlagSet{cmd.LocalFlags(), cmd.InheritedFlags()}
	lookup := func(name string, short bool) *pflag.Flag {
		for _, fs := range sets {
			if short {
				if f := fs.ShorthandLookup(name); f != nil {
					return f
				}
			} else if f := fs.Lookup(name); f != nil {
				return f
			}
		}
		return nil
	}
	out := make([]string, len(args))
	copy(out, args)
	for i := 0; i < len(out); i++ {
		a := out[i]
		if a == "--" {
			break
		}
		if len(a) < 2 || a[0] != '-' {
			continue
		}
		long := strings.HasPrefix(a, "--")
		name, _, withValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := lookup(name, !long && len(name) == 1)
		if f == nil {
			continue
		}
		if !long && len(name) > 1 {
			out[i] = "-" + a
		}
		if !withValue && f.NoOptDefVal == "" {
			i++ // its value is the next argument, whatever it looks like
		}
	}
	return out
}
