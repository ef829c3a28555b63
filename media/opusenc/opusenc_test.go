package opusenc_test

import (
	"errors"
	"io"
	"math"
	"testing"
	"time"

	"github.com/pion/mediadevices/pkg/codec"
	"github.com/pion/mediadevices/pkg/io/audio"
	"github.com/pion/mediadevices/pkg/prop"
	"github.com/pion/mediadevices/pkg/wave"

	"github.com/tuanju/tuanju/media/opusdec"
	"github.com/tuanju/tuanju/media/opusenc"
)

// tone is an endless 440 Hz mono tone at 48 kHz in 10 ms chunks.
func tone() audio.Reader {
	n := 0
	return audio.ReaderFunc(func() (wave.Audio, func(), error) {
		c := wave.NewInt16Interleaved(wave.ChunkInfo{Len: 480, Channels: 1, SamplingRate: 48000})
		for i := range c.Data {
			c.Data[i] = int16(8000 * math.Sin(2*math.Pi*440*float64(n)/48000))
			n++
		}
		return c, func() {}, nil
	})
}

func TestEncodeDecode(t *testing.T) {
	for _, frame := range []time.Duration{20 * time.Millisecond, 60 * time.Millisecond} {
		t.Run(frame.String(), func(t *testing.T) {
			p, _ := opusenc.NewParams()
			p.BitRate, p.Latency = 16000, frame
			if got := p.RTPCodec().Latency; got != frame {
				t.Errorf("RTPCodec latency %v, want %v", got, frame)
			}
			enc, err := p.BuildAudioEncoder(tone(), prop.Media{Audio: prop.Audio{SampleRate: 48000, ChannelCount: 1}})
			if err != nil {
				t.Fatal(err)
			}
			defer enc.Close()
			dec, err := opusdec.New(48000, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer dec.Close()
			pcm := make([]int16, opusdec.MaxFrameSamples)
			var energy float64
			for i := range 10 {
				pkt, release, err := enc.Read()
				if err != nil {
					t.Fatalf("packet %d: %v", i, err)
				}
				release()
				n, err := dec.Decode(pkt, pcm)
				if err != nil {
					t.Fatalf("packet %d: decode: %v", i, err)
				}
				if want := int(frame * 48000 / time.Second); n != want {
					t.Fatalf("packet %d decoded to %d samples, want %d", i, n, want)
				}
				for _, s := range pcm[:n] {
					energy += float64(s) * float64(s)
				}
			}
			if energy == 0 {
				t.Error("the tone decoded to silence")
			}
		})
	}
}

func TestEncoderLifecycle(t *testing.T) {
	p, _ := opusenc.NewParams()
	m := prop.Media{Audio: prop.Audio{SampleRate: 48000, ChannelCount: 1}}
	enc, err := p.BuildAudioEncoder(tone(), m)
	if err != nil {
		t.Fatal(err)
	}
	br, ok := enc.Controller().(codec.BitRateController)
	if !ok {
		t.Fatal("the encoder offers no BitRateController")
	}
	if err := br.SetBitRate(24000); err != nil {
		t.Errorf("SetBitRate: %v", err)
	}
	if err := br.SetBitRate(-5); err == nil {
		t.Error("SetBitRate(-5) succeeded")
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := enc.Read(); !errors.Is(err, io.EOF) {
		t.Errorf("Read after Close = %v, want io.EOF", err)
	}
	if err := br.SetBitRate(24000); !errors.Is(err, opusenc.ErrClosed) {
		t.Errorf("SetBitRate after Close = %v, want ErrClosed", err)
	}
	if err := enc.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestBuildRejects(t *testing.T) {
	tests := []struct {
		name    string
		latency time.Duration
		m       prop.Media
	}{
		{"no sample rate", 20 * time.Millisecond, prop.Media{Audio: prop.Audio{ChannelCount: 1}}},
		{"44.1 kHz", 20 * time.Millisecond, prop.Media{Audio: prop.Audio{SampleRate: 44100, ChannelCount: 1}}},
		{"30 ms frames", 30 * time.Millisecond, prop.Media{Audio: prop.Audio{SampleRate: 48000, ChannelCount: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := opusenc.NewParams()
			p.Latency = tt.latency
			if enc, err := p.BuildAudioEncoder(tone(), tt.m); err == nil {
				enc.Close()
				t.Error("built an encoder")
			}
		})
	}
}

// silenceThenTone is 2 s of digital silence, then the tone.
func silenceThenTone() audio.Reader {
	n := 0
	t := tone()
	return audio.ReaderFunc(func() (wave.Audio, func(), error) {
		n++
		if n > 200 {
			return t.Read()
		}
		return wave.NewInt16Interleaved(wave.ChunkInfo{Len: 480, Channels: 1, SamplingRate: 48000}), func() {}, nil
	})
}

// TestDTX: with DTX the silence becomes empty packets (which mediadevices
// does not send) and the tone after it full ones; without, every frame is
// a packet.
func TestDTX(t *testing.T) {
	for _, dtx := range []bool{false, true} {
		p, _ := opusenc.NewParams()
		p.BitRate, p.Latency, p.DTX = 16000, 40*time.Millisecond, dtx
		enc, err := p.BuildAudioEncoder(silenceThenTone(), prop.Media{Audio: prop.Audio{SampleRate: 48000, ChannelCount: 1}})
		if err != nil {
			t.Fatal(err)
		}
		var emptyInSilence, emptyInTone int
		for i := range 100 { // 50 frames of silence, 50 of tone
			pkt, release, err := enc.Read()
			if err != nil {
				t.Fatal(err)
			}
			release()
			if len(pkt) == 0 {
				if i < 50 {
					emptyInSilence++
				} else if i > 52 {
					emptyInTone++
				}
			}
		}
		enc.Close()
		switch {
		case !dtx && emptyInSilence+emptyInTone > 0:
			t.Errorf("without DTX: %d empty packets", emptyInSilence+emptyInTone)
		case dtx && (emptyInSilence < 40 || emptyInTone > 0):
			t.Errorf("with DTX: %d of 50 silent frames empty (want ≥ 40), %d tone frames empty (want 0)", emptyInSilence, emptyInTone)
		}
	}
}

// TestSettings: the settings reach libopus (a narrowband cap shows in every
// packet's TOC byte) and bad ones are refused.
func TestSettings(t *testing.T) {
	m := prop.Media{Audio: prop.Audio{SampleRate: 48000, ChannelCount: 1}}
	p, _ := opusenc.NewParams()
	p.BitRate, p.FEC, p.PacketLoss, p.Complexity, p.MaxBandwidth = 24000, true, 10, 10, opusenc.BandwidthNarrow
	e, err := p.BuildAudioEncoder(tone(), m)
	if err != nil {
		t.Fatal(err)
	}
	enc := e.(*opusenc.Encoder)
	for i := range 10 {
		pkt, release, err := enc.Read()
		if err != nil {
			t.Fatal(err)
		}
		// TOC configurations 0–3 are SILK narrowband, 12–13 hybrid
		// super-wide, 16–19 CELT narrowband (RFC 6716 §3.1).
		if c := pkt[0] >> 3; c > 3 && (c < 16 || c > 19) {
			t.Errorf("packet %d: TOC configuration %d is not narrowband", i, c)
		}
		release()
	}
	if err := enc.SetPacketLoss(20); err != nil {
		t.Errorf("SetPacketLoss(20): %v", err)
	}
	for _, bad := range []int{-1, 101} {
		if err := enc.SetPacketLoss(bad); err == nil {
			t.Errorf("SetPacketLoss(%d) succeeded", bad)
		}
	}
	enc.Close()
	if err := enc.SetPacketLoss(5); !errors.Is(err, opusenc.ErrClosed) {
		t.Errorf("SetPacketLoss after Close = %v, want ErrClosed", err)
	}
	for _, bad := range []opusenc.Params{{Latency: 20 * time.Millisecond, Complexity: 11}, {Latency: 20 * time.Millisecond, PacketLoss: 120}} {
		if e, err := bad.BuildAudioEncoder(tone(), m); err == nil {
			e.Close()
			t.Errorf("built an encoder with %+v", bad)
		}
	}
}
