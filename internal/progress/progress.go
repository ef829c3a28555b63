// Package progress is the command-line tools' progress bar: a bar per
// stage of a long job (issuing a batch, writing a card, migrating a
// registry) on the operator's or technician's terminal, over
// schollz/progressbar. Where the output is not a terminal (a log, a pipe,
// a test) it draws nothing unless asked to.
package progress

import (
	"fmt"
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Modes a tool's --progress flag takes.
const (
	Auto   = "auto"   // a bar when the output is a terminal
	Always = "always" // a bar whatever the output
	Never  = "never"
)

// Unit is what a bar counts.
type Unit int

const (
	// Count counts items (units, terminals); a stage's bar is cleared when
	// it is full.
	Count Unit = iota
	// Bytes counts bytes, shown as sizes and rates; a full bar stays, on
	// a line of its own.
	Bytes
)

// Bars shows one bar at a time: a new one whenever the stage changes.
// Its zero value draws nothing.
type Bars struct {
	w     io.Writer
	on    bool
	unit  Unit
	bar   *progressbar.ProgressBar
	stage string
}

// New returns bars on w in mode (Auto, Always, Never; anything else is
// Never).
func New(w io.Writer, mode string, unit Unit) *Bars {
	on := mode == Always || mode == Auto && IsTerminal(w)
	return &Bars{w: w, on: on, unit: unit}
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Update shows done of total for stage, the bar's description; a stage
// other than the last one's starts a new bar. A total of 0 draws nothing.
func (b *Bars) Update(stage string, done, total int64) {
	if b == nil || !b.on || total <= 0 {
		return
	}
	if stage != b.stage || b.bar == nil {
		b.Finish()
		b.stage = stage
		opts := []progressbar.Option{progressbar.OptionSetWriter(b.w), progressbar.OptionSetDescription(stage),
			progressbar.OptionThrottle(100_000_000)}
		if b.unit == Bytes {
			w := b.w
			opts = append(opts, progressbar.OptionShowBytes(true), progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
		} else {
			opts = append(opts, progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
		}
		b.bar = progressbar.NewOptions64(total, opts...)
	}
	b.bar.Set64(done)
}

// Finish completes the bar shown, if any.
func (b *Bars) Finish() {
	if b != nil && b.bar != nil {
		b.bar.Finish()
		b.bar = nil
	}
}
