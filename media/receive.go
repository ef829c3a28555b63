package media

import (
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

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
	// VideoFreezes counts pauses between decoded pictures longer than
	// three average frame intervals or the average plus 150 ms, the way
	// WebRTC's freezeCount does; VideoFreezeTime adds them up and
	// VideoLongestGap is the longest pause (first picture excluded).
	VideoFreezes                     int64
	VideoFreezeTime, VideoLongestGap time.Duration

	AudioPackets, AudioBytes int64
	// AudioPacketSamples adds up the samples per channel (at
	// AudioSampleRate) the packets hold, read from each packet's header:
	// over AudioPackets, the sender's frame length (AudioFrame), which
	// the terminal's offer asks for with a=ptime: in 20 ms packets a
	// phone's headers cost ~23 kbit/s, more than the low profile's speech.
	AudioPacketSamples       int64
	AudioSamplesDecoded      int64 // per channel, at AudioSampleRate, from packets on time
	AudioSamplesConcealed    int64 // synthesised by the decoder for lost or late packets (a gap counts once the next packet shows it was not the sender's pause)
	AudioFECDecodes          int64 // lost packets decoded from the next one's in-band FEC (their samples count as concealed: libopus 1.3 cannot say whether FEC was there)
	AudioSamplesComfortNoise int64 // the sender's silence (DTX) filled in
	AudioPacketsLate         int64 // came after their turn to play (concealed instead)
	AudioDecodeErrors        int64
	// AudioDelay is the jitter buffer's delay above the earliest recent
	// arrival: what smoothing out the network's jitter costs the listener.
	AudioDelay time.Duration
}

// AudioFrame is the received audio packets' mean duration: the sender's
// frame length (0 before any packet).
func (s Stats) AudioFrame() time.Duration {
	if s.AudioPackets == 0 {
		return 0
	}
	return time.Duration(s.AudioPacketSamples) * time.Second / AudioSampleRate / time.Duration(s.AudioPackets)
}

// ConcealedShare is the part of the played audio the decoder made up
// (concealment and FEC; not the sender's silence), 0..1.
func (s Stats) ConcealedShare() float64 {
	total := s.AudioSamplesDecoded + s.AudioSamplesConcealed
	if total == 0 {
		return 0
	}
	return float64(s.AudioSamplesConcealed) / float64(total)
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
	// OnAudio, if set, receives the parent's voice as mono PCM at
	// AudioSampleRate, one frame at a time at the pace it should be
	// played (the jitter buffer's clock: jitterbuffer.go), concealment
	// included. It runs on the audio track's playout goroutine: copy and
	// return quickly; pcm is reused after the call.
	OnAudio func(pcm []int16)
	// MaxBitrate, if set, is the most the peer may send, all its media
	// and packet headers together, in bit/s: each track's receiver says
	// it every capBitrateEvery as REMB (capBitrate).
	MaxBitrate int
	Log        *slog.Logger
}

// Receiver plays the remote side of a call: it decodes the peer's H.264 and
// Opus tracks, keeps the latest picture and counts everything. It is safe for
// concurrent use; one Receiver serves all tracks of a peer connection.
type Receiver struct {
	cfg ReceiverConfig
	log *slog.Logger

	mu      sync.Mutex
	stats   Stats
	pics    pictureSlot
	lastPLI time.Time

	stopping atomic.Bool // Stop: the connection is being closed
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
	return r.pics.take()
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
	if r.cfg.MaxBitrate > 0 && r.cfg.WriteRTCP != nil {
		done := make(chan struct{})
		defer close(done)
		go r.capBitrate(uint32(track.SSRC()), done)
	}
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

// capBitrateEvery is how often the cap goes out: as often as browsers send
// their own REMB, so a cap lost on the way is back within a second.
const capBitrateEvery = time.Second

// capBitrate tells the sender of ssrc, until done, the most it may send:
// REMB, the receiver's estimate, which a browser's congestion control
// takes as a ceiling beside its own (transport-wide) one. The offer's
// b=TIAS caps the browser's encoders but not its estimate, and on a lossy
// path Chromium pads its sending up to the estimate to raise it: in
// TestBrowserImpairedCall's 10% loss row, with RTX, it sent 199–289
// kbit/s in three runs (1.35–1.97 MB/min, on the parent's data plan), of
// which ~100 was media; with the cap, 97–161 kbit/s in eight.
func (r *Receiver) capBitrate(ssrc uint32, done <-chan struct{}) {
	t := time.NewTicker(capBitrateEvery)
	defer t.Stop()
	for {
		if err := r.cfg.WriteRTCP([]rtcp.Packet{&rtcp.ReceiverEstimatedMaximumBitrate{
			Bitrate: float32(r.cfg.MaxBitrate), SSRCs: []uint32{ssrc}}}); err != nil {
			r.log.Debug("send REMB", "err", err)
		}
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}

func drain(track *webrtc.TrackRemote) {
	for {
		if _, _, err := track.ReadRTP(); err != nil {
			return
		}
	}
}

// Stop says the peer connection is about to be closed: a track's read that
// fails from now on is its end, not a fault. A read that a closing
// connection cuts short may fail with an error of pion's interceptors
// ("interceptor is closed", unexported) rather than io.EOF, which logged
// every ordinary hang-up as a track that failed.
func (r *Receiver) Stop() { r.stopping.Store(true) }

// endOfTrack reports whether a read's error is the track's end.
func (r *Receiver) endOfTrack(err error) bool { return errors.Is(err, io.EOF) || r.stopping.Load() }

func (r *Receiver) video(track *webrtc.TrackRemote, log *slog.Logger) error {
	dec, err := h264dec.New()
	if err != nil {
		drain(track)
		return fmt.Errorf("media: receive video: %w", err)
	}
	defer dec.Close()
	ssrc := uint32(track.SSRC())
	// Half a second of lateness before a picture is given up: enough for
	// NACK to repair a loss, short enough to keep the call live.
	fm := newFramer(90000 / 2)
	first := true
	var fr freezeMeter
	for {
		pkt, _, err := track.ReadRTP()
		if err != nil {
			if r.endOfTrack(err) {
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
		fm.push(pkt)
		for s := fm.pop(); s != nil; s = fm.pop() {
			if s.prevDropped > 0 {
				// Packets NACK could not bring back in time were given up:
				// the pictures that follow refer to a broken one, and a
				// decoder does not always notice.
				r.requestKeyFrame(ssrc, log)
			}
			r.mu.Lock()
			buf := r.pics.buffer()
			r.mu.Unlock()
			img, err := dec.DecodeInto(s.data, buf)
			if err != nil || img == nil {
				r.mu.Lock()
				r.pics.giveBack(buf)
				if err != nil {
					r.stats.VideoDecodeErrors++
				}
				r.mu.Unlock()
			}
			if err != nil {
				log.Debug("undecodable picture", "err", err, "dropped_before", s.prevDropped)
				r.requestKeyFrame(ssrc, log)
				continue
			}
			if img == nil {
				continue
			}
			key := hasIDR(s.data)
			gap, freeze := fr.frame(time.Now())
			r.mu.Lock()
			if freeze {
				r.stats.VideoFreezes++
				r.stats.VideoFreezeTime += gap
			}
			r.stats.VideoLongestGap = max(r.stats.VideoLongestGap, gap)
			r.stats.VideoFramesDecoded++
			if key {
				r.stats.VideoKeyFrames++
			}
			r.stats.VideoWidth, r.stats.VideoHeight = img.Rect.Dx(), img.Rect.Dy()
			r.pics.put(img)
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
	p := &playout{jb: newJitterBuffer(dec), wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go r.play(p)
	defer func() {
		close(p.stop)
		<-p.done
		dec.Close()
	}()
	for {
		pkt, _, err := track.ReadRTP()
		if err != nil {
			if r.endOfTrack(err) {
				return nil
			}
			return fmt.Errorf("media: receive audio: %w", err)
		}
		if len(pkt.Payload) == 0 {
			// Padding alone (pion strips it): a sender's bandwidth probe.
			// Chromium sends these on the audio stream of a call without
			// video. No Opus packet is empty, and in the jitter buffer
			// one would pass for a pause at its timestamp, which the last
			// packet of speech holds.
			continue
		}
		p.mu.Lock() // the decoder is the player's too
		samples, err := dec.PacketSamples(pkt.Payload)
		p.jb.push(pkt.SequenceNumber, pkt.Timestamp, pkt.Payload, time.Now())
		p.mu.Unlock()
		r.mu.Lock()
		r.stats.AudioPackets++
		r.stats.AudioBytes += int64(len(pkt.Payload))
		if err == nil {
			r.stats.AudioPacketSamples += int64(samples)
		}
		r.mu.Unlock()
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// playout is an audio track's jitter buffer and the goroutine that plays
// it on its clock.
type playout struct {
	mu   sync.Mutex
	jb   *jitterBuffer
	wake chan struct{} // a packet came
	stop chan struct{}
	done chan struct{}
}

// play decodes each frame when it is due and hands it to OnAudio, until
// stop.
func (r *Receiver) play(p *playout) {
	defer close(p.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		p.mu.Lock()
		at, ok := p.jb.due()
		p.mu.Unlock()
		if !ok {
			select {
			case <-p.wake:
				continue
			case <-p.stop:
				return
			}
		}
		if d := time.Until(at); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-p.stop:
				return
			}
		}
		p.mu.Lock()
		pcm, _ := p.jb.play(time.Now())
		js, delay := p.jb.counts(), p.jb.delay()
		p.mu.Unlock()
		r.mu.Lock()
		r.stats.AudioSamplesDecoded = js.decoded
		r.stats.AudioSamplesConcealed = js.concealed
		r.stats.AudioFECDecodes = js.fecTried
		r.stats.AudioSamplesComfortNoise = js.silence
		r.stats.AudioPacketsLate = js.late
		r.stats.AudioDecodeErrors = js.errors
		r.stats.AudioDelay = delay
		r.mu.Unlock()
		if len(pcm) > 0 && r.cfg.OnAudio != nil {
			r.cfg.OnAudio(pcm)
		}
	}
}

// freezeMeter tells a freeze from an ordinary gap between pictures, as
// WebRTC's freezeCount: longer than three average intervals, or than the
// average plus 150 ms.
type freezeMeter struct {
	last time.Time
	avg  time.Duration
}

func (f *freezeMeter) frame(now time.Time) (gap time.Duration, freeze bool) {
	if f.last.IsZero() {
		f.last = now
		return 0, false
	}
	gap = now.Sub(f.last)
	f.last = now
	if f.avg == 0 {
		f.avg = gap
		return gap, false
	}
	freeze = gap > max(3*f.avg, f.avg+150*time.Millisecond)
	if !freeze {
		f.avg += (gap - f.avg) / 8
	}
	return gap, freeze
}
