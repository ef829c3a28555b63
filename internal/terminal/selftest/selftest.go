// Package selftest is the technician's self-test: a list of checks of the
// terminal's parts (button, LEDs, camera, microphone, speaker, screen,
// network, storage, clock), each reporting pass, fail or absent with a
// short detail, run one after another with a progress line each, and
// reported as an aligned table or JSON.
//
// Checks take the hardware through small interfaces (periph pins, fb.Display,
// functions that grab a frame or play a tone), so each is tested against
// fakes; cmd/terminald/selftest.go wires the real parts. "Absent" is not
// "failed" (STYLE.md: hardware absent vs hardware failed) unless the board
// profile says the part is fitted, in which case an absent part fails.
package selftest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/media"
)

// Status is a check's verdict.
type Status string

const (
	Pass    Status = "pass"
	Fail    Status = "fail"
	Absent  Status = "absent"  // the part is not there (and not required)
	Skipped Status = "skipped" // not run, e.g. -no-interactive
)

// Result is one check's outcome.
type Result struct {
	Check  string `json:"check"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	// Fitted is true when the board profile says the part is fitted.
	Fitted bool          `json:"fitted,omitempty"`
	Took   time.Duration `json:"took_ns"`
}

// Check is one test of one part.
type Check struct {
	Name string
	// Fitted makes Absent a failure: the board's profile says the part is
	// there.
	Fitted bool
	// Timeout bounds Run (0: DefaultTimeout). Interactive checks set their
	// own, longer one.
	Timeout time.Duration
	// Run does the check. It returns a status and a detail line; a check
	// that cannot tell pass from fail is Pass with a detail that asks the
	// technician to look ("look: is it lit?").
	Run func(ctx context.Context, t *T) (Status, string)
}

// DefaultTimeout bounds a check that sets none.
const DefaultTimeout = 20 * time.Second

// T is what a running check may use to talk to the technician.
type T struct {
	out io.Writer
}

// Say prints a line for the technician, under the check's progress line
// ("press the call button now").
func (t *T) Say(format string, args ...any) {
	fmt.Fprintf(t.out, "      "+format+"\n", args...)
}

// Report is the outcome of every check.
type Report struct {
	Results []Result `json:"results"`
}

// Failed reports whether any check failed.
func (r Report) Failed() bool {
	for _, res := range r.Results {
		if res.Status == Fail {
			return true
		}
	}
	return false
}

// Run runs checks one after another, writing a progress line per check to
// progress (the technician watches the LEDs and the screen, so they must
// know which check is running). It never stops early: a technician wants
// the whole list.
func Run(ctx context.Context, checks []Check, progress io.Writer) Report {
	if progress == nil {
		progress = io.Discard
	}
	var rep Report
	for i, c := range checks {
		fmt.Fprintf(progress, "[%2d/%d] %-12s ...\n", i+1, len(checks), c.Name)
		res := runOne(ctx, c, &T{out: progress})
		fmt.Fprintf(progress, "        %-12s %s: %s (%s)\n", c.Name, res.Status, res.Detail, res.Took.Round(time.Millisecond))
		rep.Results = append(rep.Results, res)
	}
	return rep
}

func runOne(ctx context.Context, c Check, t *T) (res Result) {
	res = Result{Check: c.Name, Fitted: c.Fitted}
	start := time.Now()
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil { // a broken driver must not end the list
			res.Status, res.Detail = Fail, fmt.Sprintf("check panicked: %v", p)
		}
		res.Took = time.Since(start)
		if res.Status == Absent && c.Fitted {
			res.Status = Fail
			res.Detail += " (the board profile says it is fitted)"
		}
	}()
	if err := ctx.Err(); err != nil {
		return Result{Check: c.Name, Fitted: c.Fitted, Status: Skipped, Detail: "not run: " + err.Error()}
	}
	res.Status, res.Detail = c.Run(cctx, t)
	return res
}

// IsAbsent reports whether err means the part is not there, rather than
// broken: device.ErrAbsent, media.ErrNoCamera, or a device node that does
// not exist.
func IsAbsent(err error) bool {
	return errors.Is(err, device.ErrAbsent) || errors.Is(err, media.ErrNoCamera) || errors.Is(err, fs.ErrNotExist)
}

// statusOf is Absent for IsAbsent errors and Fail for the rest.
func statusOf(err error) Status {
	if IsAbsent(err) {
		return Absent
	}
	return Fail
}

// WriteTable writes the report as an aligned table.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tTIME\tDETAIL")
	for _, res := range r.Results {
		status := strings.ToUpper(string(res.Status))
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", res.Check, status, res.Took.Round(10*time.Millisecond), res.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verdict := "PASS: every part works or is not fitted"
	if r.Failed() {
		verdict = "FAIL: see the rows marked FAIL"
	}
	_, err := fmt.Fprintln(w, verdict)
	return err
}

// WriteJSON writes the report as one JSON object, for machines.
func (r Report) WriteJSON(w io.Writer) error {
	out := struct {
		Report
		Failed bool `json:"failed"`
	}{r, r.Failed()}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
