package media

import (
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"

	"github.com/tuanju/tuanju/media/h264dec"
	"github.com/tuanju/tuanju/media/opusdec"
)

// Stats counts what a Receiver got and decoded. Byte counts are RTP payload
// bytes, as in WebRTC's inbound-rtp bytesReceived.
type Stats struct {
	VideoPackets, VideoBytes int64
	VideoFramesDecoded       int64 // pictures decoded without error
	VideoKeyFrames           int64 // of which IDR pictures
	VideoDecodeErrors        int64
	VideoWidth, VideoHeight  int // of the last decoded picture
	PLIsSent                 int64

	AudioPackets, AudioBytes int64
	AudioSamplesDecoded      int64 // per channel, at AudioSampleRate
	AudioSamplesConcealed    int64 // synthesised by the decoder for lost packets
	AudioDecodeErrors        int64
}

// AudioSampleRate is the rate of the PCM a Receiver decodes to (mono).
const AudioSampleRate = 48000

// pliInterval limits key-frame requests: a burst of undecodable pictures
// after one loss needs one key frame, not one per picture.
const pliInterval = 500 * time.Millisecond

// ReceiverConfig configures a Receiver.
type ReceiverConfig struct {
	// WriteRTCP sends feedback to the sender, normally pc.WriteRTCP. Without it
	// the Receiver cannot ask for key frames.
	WriteRTCP func([]rtcp.Packet) error
	// OnAudio, if set, receives each decoded chunk of mono PCM at
	// AudioSampleRate (the speaker, later). It runs on the track's goroutine:
	// copy and return quickly; pcm is reused after the call.
	OnAudio func(pcm []int16)
	Log     *slog.Logger
}

// Receiver plays the remote side of a call: it decodes the peer's H.264 and
// Opus tracks, keeps the latest picture and counts everything. It is safe for
// concurrent use; one Receiver serves all tracks of a peer connection.
type Receiver struct {
	cfg ReceiverConfig
	log *slog.Logger

	mu      sync.Mutex
	stats   Stats
	latest  image.Image
	lastPLI time.Time
}

// NewReceiver returns a Receiver.
func NewReceiver(cfg ReceiverConfig) *Receiver {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Receiver{cfg: cfg, log: log.With("component", "media-receiver")}
}

// Stats returns a snapshot of the counters.
func (r *Receiver) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// LatestFrame returns the last decoded picture (an *image.YCbCr the Receiver
// never writes again), or nil.
func (r *Receiver) LatestFrame() image.Image {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.latest
}

// Handle reads and decodes track until it ends, then returns nil (or the
// reason it could not). Call it from PeerConnection.OnTrack, which pion runs on
// its own goroutine per track:
//
//	pc.OnTrack(func(t *webrtc.TrackRemote, rr *webrtc.RTPReceiver) { _ = recv.Handle(t, rr) })
func (r *Receiver) Handle(track *webrtc.TrackRemote, rr *webrtc.RTPReceiver) error {
	// RTCP must be read for the interceptors (NACK, reports) to see it.
	if rr != nil {
		go func() {
			for {
				if _, _, err := rr.ReadRTCP(); err != nil {
					return
				}
			}
		}()
	}
	mime := track.Codec().MimeType
	log := r.log.With("kind", track.Kind().String(), "codec", mime, "ssrc", uint32(track.SSRC()))
	log.Info("remote track")
	var err error
	switch {
	case strings.EqualFold(mime, webrtc.MimeTypeH264):
		err = r.video(track, log)
	case strings.EqualFold(mime, webrtc.MimeTypeOpus):
		err = r.audio(track, log)
	default:
		err = fmt.Errorf("media: receive %s: unsupported codec", mime)
		drain(track)
	}
	if err != nil {
		log.Warn("remote track ended", "err", err)
		return err
	}
	log.Info("remote track ended")
	return nil
}

func drain(track *webrtc.TrackRemote) {
	for {
		if _, _, err := track.ReadRTP(); err != nil {
			return
		}
	}
}

func endOfTrack(err error) bool { return errors.Is(err, io.EOF) }

func (r *Receiver) video(track *webrtc.TrackRemote, log *slog.Logger) error {
	dec, err := h264dec.New()
	if err != nil {
		drain(track)
		return fmt.Errorf("media: receive video: %w", err)
	}
	defer dec.Close()
	ssrc := uint32(track.SSRC())
	// 256 packets or half a second of lateness before a picture is given up:
	// enough for NACK to repair a loss, short enough to keep the call live.
	sb := samplebuilder.New(256, &codecs.H264Packet{}, 90000, samplebuilder.WithMaxTimeDelay(500*time.Millisecond))
	first := true
	for {
		pkt, _, err := track.ReadRTP()
		if err != nil {
			if endOfTrack(err) {
				return nil
			}
			return fmt.Errorf("media: receive video: %w", err)
		}
		r.mu.Lock()
		r.stats.VideoPackets++
		r.stats.VideoBytes += int64(len(pkt.Payload))
		r.mu.Unlock()
		if first {
			// The sender's first key frame was probably sent before SRTP was
			// up and lost; don't wait for the periodic one.
			first = false
			r.requestKeyFrame(ssrc, log)
		}
		sb.Push(pkt)
		for s := sb.Pop(); s != nil; s = sb.Pop() {
			img, err := dec.Decode(s.Data)
			if err != nil {
				r.mu.Lock()
				r.stats.VideoDecodeErrors++
				r.mu.Unlock()
				log.Debug("undecodable picture", "err", err, "dropped_before", s.PrevDroppedPackets)
				r.requestKeyFrame(ssrc, log)
				continue
			}
			if img == nil {
				continue
			}
			key := hasIDR(s.Data)
			r.mu.Lock()
			r.stats.VideoFramesDecoded++
			if key {
				r.stats.VideoKeyFrames++
			}
			r.stats.VideoWidth, r.stats.VideoHeight = img.Rect.Dx(), img.Rect.Dy()
			r.latest = img
			r.mu.Unlock()
		}
	}
}

// requestKeyFrame sends a PLI unless one went out within pliInterval.
func (r *Receiver) requestKeyFrame(ssrc uint32, log *slog.Logger) {
	if r.cfg.WriteRTCP == nil {
		return
	}
	r.mu.Lock()
	now := time.Now()
	if now.Sub(r.lastPLI) < pliInterval {
		r.mu.Unlock()
		return
	}
	r.lastPLI = now
	r.stats.PLIsSent++
	r.mu.Unlock()
	if err := r.cfg.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
		log.Debug("send PLI", "err", err)
	}
}

// hasIDR reports whether an Annex B access unit contains an IDR slice (NAL
// type 5).
func hasIDR(au []byte) bool {
	for i := 0; i+3 < len(au); i++ {
		if au[i] == 0 && au[i+1] == 0 && au[i+2] == 1 {
			if au[i+3]&0x1f == 5 {
				return true
			}
			i += 2
		}
	}
	return false
}

func (r *Receiver) audio(track *webrtc.TrackRemote, log *slog.Logger) error {
	dec, err := opusdec.New(AudioSampleRate, 1)
	if err != nil {
		drain(track)
		return fmt.Errorf("media: receive audio: %w", err)
	}
	defer dec.Close()
	pcm := make([]int16, opusdec.MaxFrameSamples)
	var lastSeq uint16
	lastN := 0
	for {
		pkt, _, err := track.ReadRTP()
		if err != nil {
			if endOfTrack(err) {
				return nil
			}
			return fmt.Errorf("media: receive audio: %w", err)
		}
		// Conceal a short gap (a late/reordered packet gives a huge gap and is
		// decoded as is): the speaker hears a smoothed-over 20–120 ms, not a click.
		if gap := pkt.SequenceNumber - lastSeq - 1; lastN > 0 && gap > 0 && gap <= 5 {
			for range gap {
				n, err := dec.Decode(nil, pcm[:lastN])
				if err != nil {
					break
				}
				r.mu.Lock()
				r.stats.AudioSamplesConcealed += int64(n)
				r.mu.Unlock()
				if r.cfg.OnAudio != nil {
					r.cfg.OnAudio(pcm[:n])
				}
			}
		}
		lastSeq = pkt.SequenceNumber
		n, err := dec.Decode(pkt.Payload, pcm)
		r.mu.Lock()
		r.stats.AudioPackets++
		r.stats.AudioBytes += int64(len(pkt.Payload))
		if err != nil {
			r.stats.AudioDecodeErrors++
		} else {
			r.stats.AudioSamplesDecoded += int64(n)
		}
		r.mu.Unlock()
		if err != nil {
			log.Debug("undecodable audio packet", "err", err)
			continue
		}
		lastN = n
		if r.cfg.OnAudio != nil {
			r.cfg.OnAudio(pcm[:n])
		}
	}
}
