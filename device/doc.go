// Package device is the terminal's hardware edge: the one big call button and
// the status LEDs, driven through periph.io GPIO.
//
// The package accepts periph's narrowest interfaces (gpio.PinIn for the
// button, gpio.PinOut for each LED) and never looks pins up itself (device/pins
// does), so the same code runs on a real board, against gpio-sim in a VM, and
// against gpiotest pins in unit tests and on the simulated board
// (device/simboard).
//
// A child who cannot read is the user. The button therefore never produces a
// press from contact bounce, a long press is recognised while the button is
// still held (so "hold to hang up" gives immediate feedback), and the LEDs
// show a small set of patterns chosen to be told apart by colour and rhythm
// alone. See Pattern for the table.
package device
