package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/BurntSushi/toml"
)

// NewFlagSet returns a subcommand's flag set: parse errors are returned, not
// exits, and -h prints usage (the caller's text, ending in its own newlines)
// and then the flags, all on stderr.
func NewFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	return fs
}

// DecodeFile overlays the TOML file at path on v, a pointer to a
// configuration struct. A key with no field is an error: a misspelt setting
// must not be left silently at its default. The errors name the file and are
// the command's own words, so they carry no package prefix.
func DecodeFile(path string, v any) error {
	md, err := toml.DecodeFile(path, v)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return fmt.Errorf("config %s: unknown keys: %s", path, strings.Join(keys, ", "))
	}
	return nil
}
