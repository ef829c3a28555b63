package media

import (
	"fmt"

	"github.com/pion/mediadevices"
)

// userMediaTrack asks mediadevices for c, which constrains one kind (Video
// or Audio), and returns the stream's one track of that kind. Any other
// count closes every track, so no device is left open. src names the device
// in errors ("v4l2 <label>").
func userMediaTrack(c mediadevices.MediaStreamConstraints, src string) (mediadevices.Track, error) {
	stream, err := mediadevices.GetUserMedia(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	tracks, kind := stream.GetVideoTracks(), "video"
	if c.Video == nil {
		tracks, kind = stream.GetAudioTracks(), "audio"
	}
	if len(tracks) != 1 {
		for _, t := range stream.GetTracks() {
			t.Close()
		}
		return nil, fmt.Errorf("%s: got %d %s tracks", src, len(tracks), kind)
	}
	return tracks[0], nil
}
