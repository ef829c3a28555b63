//go:build linux

package media

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/pion/mediadevices"
	"github.com/pion/mediadevices/pkg/driver"
	"github.com/pion/mediadevices/pkg/driver/camera"
	"github.com/pion/mediadevices/pkg/prop"
)

// v4l2Mu serialises rediscovery: camera.Initialize rewrites mediadevices'
// global driver registry.
var v4l2Mu sync.Mutex

// openV4L2 opens a V4L2 camera as a mediadevices track, asking for the
// profile's size and its capture rate (Profile.CaptureFPS; the driver picks
// the nearest mode the camera has).
// No camera, or none matching device, is ErrNoCamera.
func openV4L2(ctx context.Context, device string, p Profile, selector *mediadevices.CodecSelector, log *slog.Logger) (mediadevices.Track, error) {
	v4l2Mu.Lock()
	defer v4l2Mu.Unlock()
	// The driver registers cameras once, at program start; rediscover so a
	// camera plugged in later (or unplugged) is seen.
	camera.Initialize()
	d, err := findCamera(device)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	formats, choice := cameraFormats(cameraModes(d), p)
	log.Info("camera formats", "camera", d.Info().Label, "choice", choice)
	return userMediaTrack(mediadevices.MediaStreamConstraints{
		Video: func(c *mediadevices.MediaTrackConstraints) {
			c.DeviceID = prop.StringExact(d.ID())
			c.Width = prop.Int(p.Width)
			c.Height = prop.Int(p.Height)
			c.FrameRate = prop.Float(p.CaptureFPS())
			// Only formats mediadevices converts to I420 itself (no
			// depth, nothing unknown), raw preferred: cameraFormats.
			c.FrameFormat = formats
		},
		Codec: selector,
	}, "v4l2 "+d.Info().Label)
}

// findCamera returns the registered camera matching device: a path (its base
// name, or that of its symlink target, is one of the ';'-separated parts of
// the driver's label) or a label; "" matches the first.
func findCamera(device string) (driver.Driver, error) {
	cams := driver.GetManager().Query(driver.FilterAnd(
		driver.FilterVideoRecorder(),
		driver.FilterDeviceType(driver.Camera),
	))
	if len(cams) == 0 {
		return nil, fmt.Errorf("v4l2: %w", ErrNoCamera)
	}
	if device == "" {
		best := cams[0]
		for _, d := range cams[1:] {
			if d.Info().Priority > best.Info().Priority || (d.Info().Priority == best.Info().Priority && d.Info().Label < best.Info().Label) {
				best = d
			}
		}
		return best, nil
	}
	names := []string{device, filepath.Base(device)}
	if real, err := filepath.EvalSymlinks(device); err == nil {
		names = append(names, filepath.Base(real))
	}
	for _, d := range cams {
		label := d.Info().Label
		parts := append([]string{label}, strings.Split(label, camera.LabelSeparator)...)
		for _, part := range parts {
			for _, n := range names {
				if part == n {
					return d, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("v4l2 %s: %w", device, ErrNoCamera)
}

// cameraModes lists the modes a camera reports, opening it for the query if
// it is closed (as mediadevices' own selection does).
func cameraModes(d driver.Driver) []prop.Media {
	if d.Status() == driver.StateClosed {
		if err := d.Open(); err != nil {
			return nil
		}
		defer d.Close()
	}
	return d.Properties()
}

// v4l2Path is the device node of the camera device names: a path as given,
// else (empty, or a mediadevices label) the node of the camera openV4L2
// would pick.
func v4l2Path(device string) (string, error) {
	if strings.HasPrefix(device, "/") {
		if _, err := os.Stat(device); err != nil {
			return "", fmt.Errorf("v4l2 %s: %w", device, ErrNoCamera)
		}
		return device, nil
	}
	v4l2Mu.Lock()
	defer v4l2Mu.Unlock()
	camera.Initialize()
	d, err := findCamera(device)
	if err != nil {
		return "", err
	}
	// The driver's label is "<base name>;<link target's base name>".
	base, _, _ := strings.Cut(d.Info().Label, camera.LabelSeparator)
	return filepath.Join("/dev", base), nil
}
