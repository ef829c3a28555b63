package media

import "time"

// ABRLadder is the ladder the terminal's calls step along: LowData, then
// the same picture at 10 fps, a smaller one, a very small and slow one
// (about 65 kbit/s in all, 0.5 MB a minute), then AudioOnly. The steps
// between are derived from LowData: each roughly halves what the one
// above needs, and lowers the frame rate before the size (a child's face
// stays recognisable at 10 fps; at 160x120 it is a sketch).
//
// Frame rates are the camera's divided by the throttle (encoder_control.go);
// the audio frame is the capture's own (a live Opus encoder keeps its
// frame), so only the audio bitrate of a step applies.
func ABRLadder() []Profile {
	return []Profile{
		LowData,
		{Name: "low-10fps", Video: true, Width: 320, Height: 240, FPS: 10, VideoBitrate: 120_000,
			AudioBitrate: 20_000, AudioFrame: 20 * time.Millisecond},
		{Name: "small", Video: true, Width: 240, Height: 180, FPS: 10, VideoBitrate: 70_000,
			AudioBitrate: 16_000, AudioFrame: 20 * time.Millisecond},
		{Name: "tiny", Video: true, Width: 160, Height: 120, FPS: 8, VideoBitrate: 40_000,
			AudioBitrate: 16_000, AudioFrame: 20 * time.Millisecond},
		AudioOnly,
	}
}
