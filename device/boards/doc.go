// Package boards holds the board profiles built into the terminal: for each
// supported single-board computer, which header pins the call button and the
// LEDs are wired to (pins.Map), which parts the standard build fits, and
// hints for the camera, audio and screen devices.
//
// A profile is data, one TOML file per board in profiles/, embedded in the
// binary: a unit is configured with board_profile = "rpi-zero-2w" in
// terminald's config, and pins given there still override the profile's.
// docs/boards.md has the wiring tables and says how to add a board.
package boards
