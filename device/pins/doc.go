// Package pins says where a terminal's button and LEDs are wired (Map, one
// Spec per pin) and finds those lines on the running kernel (Resolver).
//
// A pin is a line name ("GPIO17") or a chip and offset ("300b000.pinctrl:226").
// periph's gpioreg cannot find either reliably: it registers a gpiochip line
// only under its device-tree name (unnamed lines, the rule on Allwinner and
// Rockchip boards, not at all), and its sysfs driver registers every line
// again as "GPIO<n>" with the kernel's global number, which moves between
// kernels. So Resolver looks at periph's gpioioctl chips itself: a chip by
// device name or label, a line by offset or exact name; gpioreg is asked only
// for names no chip has (a periph SoC driver's, such as bcm283x's), and a
// global sysfs number is refused with a hint to use chip:offset.
//
// Host is the one place that initialises periph's host drivers, so the
// terminal and the kernel-in-the-loop tests resolve pins the same way.
// Missing chips and lines wrap device.ErrAbsent; bad specs wrap
// device.ErrInvalidConfig.
package pins
