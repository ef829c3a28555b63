package main

import (
	"fmt"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/tuanju/tuanju/device/board"
	"github.com/tuanju/tuanju/internal/cli"
)

// applyFile applies, over cfg's defaults, the board profile and then the
// config file: defaults → profile → file → flags. The profile is named by
// profileFlag or, failing that, by the file's board_profile; so the file is
// read twice, once for the name and once over the profile, and any key the
// file sets (a pin, an LED, camera_device) beats the profile's. An LED set
// to "" in the file is taken off the profile's pins (not fitted).
func applyFile(cfg *config, file, profileFlag string) error {
	name := profileFlag
	if file != "" && name == "" {
		var head struct {
			BoardProfile string `toml:"board_profile"`
		}
		if _, err := toml.DecodeFile(file, &head); err != nil {
			return fmt.Errorf("terminald: config %s: %w", file, err)
		}
		name = head.BoardProfile
	}
	if name != "" {
		p, err := board.Lookup(name)
		if err != nil {
			return fmt.Errorf("terminald: config: %w", err)
		}
		cfg.BoardProfile = name
		cfg.Pins = p.Pins
		if p.CameraDevice != "" {
			cfg.Media.CameraDevice = p.CameraDevice
		}
		if p.AudioPlayback != "" {
			cfg.Speaker = p.AudioPlayback
		}
		if p.AudioCapture != "" {
			cfg.Media.MicrophoneDevice = p.AudioCapture
		}
		if p.Screen != "" {
			cfg.Screen = p.Screen
		}
		cfg.profile = &p
	}
	if file != "" {
		if err := cli.DecodeFile(file, cfg); err != nil {
			return fmt.Errorf("terminald: %w", err)
		}
	}
	if profileFlag != "" {
		cfg.BoardProfile = profileFlag // the file's board_profile was not used
	}
	for c, line := range cfg.Pins.LEDs {
		if strings.TrimSpace(line) == "" {
			delete(cfg.Pins.LEDs, c)
		}
	}
	return nil
}
