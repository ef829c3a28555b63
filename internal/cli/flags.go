package cli

import (
	"flag"
	"strings"
)

// Overrides binds flags to configuration fields. Configuration goes
// defaults → file → flags: the flags are parsed first (the file's name is
// one), the file is decoded over the defaults, and then Apply sets the
// fields of the flags that were given, and only those, so a flag left out
// never undoes the file, and one given empty ("-turn-allow-peers ”")
// clears it. Each flag is one line: its name, its field, its help; the help
// shows the built-in default, read from the field when it is bound.
type Overrides struct {
	fs    *flag.FlagSet
	apply map[string]func()
}

// NewOverrides binds flags on fs.
func NewOverrides(fs *flag.FlagSet) *Overrides {
	return &Overrides{fs: fs, apply: map[string]func(){}}
}

// String binds a string flag to *dst.
func (o *Overrides) String(name string, dst *string, usage string) {
	v := new(string)
	o.fs.StringVar(v, name, *dst, usage)
	o.apply[name] = func() { *dst = *v }
}

// Bool binds a boolean flag to *dst.
func (o *Overrides) Bool(name string, dst *bool, usage string) {
	v := new(bool)
	o.fs.BoolVar(v, name, *dst, usage)
	o.apply[name] = func() { *dst = *v }
}

// List binds a comma-separated flag to *dst: items are trimmed, empty ones
// dropped, and an empty flag makes the list nil.
func (o *Overrides) List(name string, dst *[]string, usage string) {
	v := new(string)
	o.fs.StringVar(v, name, strings.Join(*dst, ","), usage)
	o.apply[name] = func() { *dst = SplitList(*v) }
}

// Apply sets the fields of the flags given on the command line. Call it
// after fs.Parse and after the file.
func (o *Overrides) Apply() {
	o.fs.Visit(func(f *flag.Flag) {
		if set, ok := o.apply[f.Name]; ok {
			set()
		}
	})
}

// SplitList splits a comma-separated flag value.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
