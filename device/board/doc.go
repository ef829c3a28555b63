// Package board opens one terminal's hardware from its configuration and
// hands out its parts: button, LEDs, speaker, screen, watchdog, camera and
// microphone. There are two boards behind one API: GPIO (periph.io lines
// found by device/pins, ALSA, the framebuffer, /dev/watchdog) and the
// simulated one (device/simboard, for the demo and tests).
//
// A part is either absent or broken, and callers treat the two apart, as
// periph's Init() (bool, error) does: each opener returns the part, whether
// the configuration fits it, and an error. Not fitted (false, nil): the
// terminal runs without it and the self-test says so. Fitted but failing
// (true, err): the self-test fails the check with err, and the daemon
// decides per part whether it can run on.
//
// The button and LEDs open with the board (the terminal cannot start
// without them); the other parts open when asked, because the daemon opens
// them at different moments (the watchdog only once the unit is
// provisioned, the screen once the terminal runs).
//
// Board profiles are data, one TOML file per supported single-board computer
// in profiles/, embedded in the binary: which header pins the call button
// and the LEDs are wired to (pins.Map), which parts the standard build fits,
// and hints for the camera, audio and screen devices. A unit is configured
// with board_profile = "rpi-zero-2w"; pins given in terminald's config still
// override the profile's. docs/boards.md has the wiring tables and says how
// to add a board.
package board
