package media

// ABRLadder is the ladder the terminal's calls step along: the profiles of
// Ladder (normal, low, very-low, audio-only) with a step between each two
// video profiles, each roughly 0.6 of the one above. A call starts on its
// configured profile (Capture.StartABR leaves out the steps above it) and
// lowers the frame rate before the size between low and very-low: a child's
// face stays recognisable at 10 fps, at 160×120 it is a sketch.
//
// Frame rates are the camera's divided by the throttle (encoder_control.go);
// the audio frame is the capture's own (a live Opus encoder keeps its
// frame), so only the audio bitrate of a step applies.
func ABRLadder() []Profile {
	return []Profile{
		Normal,
		{Name: "medium", Video: true, Width: 480, Height: 360, FPS: 15, VideoBitrate: 160_000,
			AudioBitrate: 20_000, AudioFrame: Normal.AudioFrame},
		Low,
		{Name: "low-10fps", Video: true, Width: 320, Height: 240, FPS: 10, VideoBitrate: 50_000,
			AudioBitrate: Low.AudioBitrate, AudioFrame: Low.AudioFrame},
		VeryLow,
		AudioOnly,
	}
}
