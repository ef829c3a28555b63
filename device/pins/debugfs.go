package pins

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"periph.io/x/conn/v3/gpio"
)

// DefaultDebugfs is where the kernel lists every requested GPIO line with
// its direction and level (debugfs must be mounted; root only).
const DefaultDebugfs = "/sys/kernel/debug/gpio"

var (
	// "gpiochip0: GPIOs 512-565, parent: platform/3f200000.gpio, pinctrl-bcm2835:"
	// (kernels that still number globally) or "gpiochip0: 54 GPIOs, ..." (newer).
	chipHeader = regexp.MustCompile(`^(gpiochip\d+): (?:GPIOs (\d+)-\d+|\d+ GPIOs)`)
	// " gpio-529 (GPIO17              |terminald@42        ) out hi"
	lineRow = regexp.MustCompile(`^\s*gpio-(\d+)\s+\(.*\)\s+(in|out)\s+(hi|lo)\b`)
)

// DrivenLevel reads, from the kernel's debugfs GPIO listing at path, whether
// the line is an output and the level the kernel has on it. It is the
// read-back for an LED: periph's Read on an output line would turn it into
// an input. The line must be requested (opened) for the kernel to list it.
func (l *Line) DrivenLevel(path string) (out bool, level gpio.Level, err error) {
	if l.Chip == "" {
		return false, false, fmt.Errorf("pins: %s: chip unknown, cannot read back", l.Spec)
	}
	f, err := os.Open(path)
	if err != nil {
		return false, false, fmt.Errorf("pins: read back %s: %w", l.Spec, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in, base := false, 0
	for sc.Scan() {
		line := sc.Text()
		if m := chipHeader.FindStringSubmatch(line); m != nil {
			in = m[1] == l.Chip
			base = 0
			if m[2] != "" {
				base, _ = strconv.Atoi(m[2])
			}
			continue
		}
		if !in || strings.TrimSpace(line) == "" {
			continue
		}
		m := lineRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if n, _ := strconv.Atoi(m[1]); n-base == l.Offset {
			return m[2] == "out", gpio.Level(m[3] == "hi"), nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, false, fmt.Errorf("pins: read back %s: %w", l.Spec, err)
	}
	return false, false, fmt.Errorf("pins: read back %s: %s:%d not listed in %s", l.Spec, l.Chip, l.Offset, path)
}
