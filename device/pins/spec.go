package pins

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/tuanju/tuanju/device"
)

// Spec says where one GPIO line is, in one of two ways:
//
//   - by line name, "CALL_BUTTON" or "GPIO17": the name the board's device
//     tree gives the line (gpioinfo shows it), or a name a periph SoC driver
//     registers ("PC7" on the Allwinner chips periph knows);
//   - by chip and offset, "gpiochip0:226" or "300b000.pinctrl:226": the
//     line's offset on a GPIO chip named by its device name or its label.
//
// Offsets are needed on boards whose device tree names no lines (most
// Allwinner and Rockchip boards). The label form survives a kernel that
// numbers its chips in a different order; the kernel's global GPIO numbers
// (sysfs "GPIO226") do not survive a kernel update and are not accepted.
type Spec struct {
	Name   string // line name; empty when Chip is set
	Chip   string // "gpiochipN" or a chip label
	Offset int    // line offset on Chip
}

// ParseSpec reads "NAME" or "CHIP:OFFSET". A spec whose part after the
// last colon is not a decimal number is a line name (names may contain
// colons).
func ParseSpec(s string) (Spec, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Spec{}, fmt.Errorf("pins: spec: empty: %w", device.ErrInvalidConfig)
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return Spec{Name: s}, nil
	}
	chip, off := s[:i], s[i+1:]
	if off != "" && (off[0] == '-' || off[0] == '+') {
		return Spec{}, fmt.Errorf("pins: spec %q: offset %q must be a line number from 0: %w", s, off, device.ErrInvalidConfig)
	}
	n, err := strconv.Atoi(off)
	if err != nil {
		return Spec{Name: s}, nil
	}
	if chip == "" {
		return Spec{}, fmt.Errorf("pins: spec %q: no chip before the offset (want e.g. gpiochip0:%d): %w", s, n, device.ErrInvalidConfig)
	}
	return Spec{Chip: chip, Offset: n}, nil
}

// ByOffset reports whether the spec names a chip and offset.
func (p Spec) ByOffset() bool { return p.Chip != "" }

// String returns the spec in the form ParseSpec reads.
func (p Spec) String() string {
	if p.ByOffset() {
		return p.Chip + ":" + strconv.Itoa(p.Offset)
	}
	return p.Name
}
