package media

import (
	"fmt"
	"time"

	"github.com/pion/mediadevices"
	mio "github.com/pion/mediadevices/pkg/io"
	"github.com/pion/mediadevices/pkg/io/audio"
	"github.com/pion/mediadevices/pkg/io/video"
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
	smallRing(tracks[0])
	return tracks[0], nil
}

// trackRing is how many pictures a video track keeps for its readers.
// mediadevices' track broadcaster keeps the last 32 for readers that fall
// behind (its default, which NewVideoTrack and GetUserMedia give no way to
// set): 32 pictures of 115 KB at 320×240, 3.7 MB of the heap held alive for
// readers a call never has. A track here has one reader at a time, the
// encoder, which reads each picture as it is made (the ring's extra slot is
// for mediadevices' own look at the first picture when the encoder is
// built); a picture a late reader missed is better dropped than sent late.
const trackRing = 2

// smallRing gives a video track a broadcaster that keeps trackRing
// pictures, over the same source (its transforms included). It must run
// before anything reads the track. Other tracks are left as they are
// (audioRing sizes an audio track's).
func smallRing(t mediadevices.Track) {
	if vt, ok := t.(*mediadevices.VideoTrack); ok {
		vt.Broadcaster = video.NewBroadcaster(vt.Broadcaster.Source(),
			&video.BroadcasterConfig{Core: &mio.BroadcasterConfig{BufferSize: trackRing}})
	}
}

// audioRingTime is how far behind its microphone an audio track's reader
// (the Opus encoder) may fall and still get every chunk: mediadevices'
// default ring, 32 chunks, held 320 ms of 10 ms chunks. A call reads its
// microphone in chunks of its Opus frame, for which 32 would be 1.3 s and
// 123 KB (40 ms mono) of sound held for a reader that is never that late;
// sound a reader missed is lost, so the time stays what it was.
const audioRingTime = 320 * time.Millisecond

// audioRing gives an audio track read in chunks of chunk a broadcaster that
// keeps audioRingTime of them, over the same source. It must run before
// anything reads the track; other tracks are left as they are.
func audioRing(t mediadevices.Track, chunk time.Duration) {
	if at, ok := t.(*mediadevices.AudioTrack); ok && chunk > 0 {
		n := max(trackRing, int((audioRingTime+chunk-1)/chunk))
		at.Broadcaster = audio.NewBroadcaster(at.Broadcaster.Source(),
			&audio.BroadcasterConfig{Core: &mio.BroadcasterConfig{BufferSize: uint(n)}})
	}
}
