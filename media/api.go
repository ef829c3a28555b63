package media

import (
	"fmt"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/tuanju/tuanju/media/h264enc"
	"github.com/tuanju/tuanju/media/opusenc"
)

// APIConfig configures NewAPI.
type APIConfig struct {
	// SettingEngine carries the caller's network policy (ICE servers are set
	// per PeerConnection; candidate filters, ports, timeouts, pion's logger
	// here). Nil means pion's defaults.
	SettingEngine *webrtc.SettingEngine
	// Interceptors, if set, runs after pion's default interceptors (NACK, RTCP
	// reports, TWCC) are registered: the hook for congestion control.
	Interceptors func(*webrtc.MediaEngine, *interceptor.Registry) error
}

// rtcpFeedback is what we ask the peer to send for video. mediadevices'
// CodecSelector.Populate registers its codecs with no feedback at all, so a
// peer (Chromium) would send neither NACKs nor PLIs: no retransmission and no
// recovery from a lost key frame until the next periodic one.
var rtcpFeedback = []webrtc.RTCPFeedback{
	{Type: webrtc.TypeRTCPFBNACK},
	{Type: webrtc.TypeRTCPFBNACK, Parameter: "pli"},
	{Type: webrtc.TypeRTCPFBCCM, Parameter: "fir"},
	{Type: webrtc.TypeRTCPFBTransportCC},
}

// NewMediaEngine returns a MediaEngine with exactly the codecs Capture's
// encoders produce and Receiver decodes: H.264 constrained baseline
// (profile-level-id 42e01f, packetization-mode 1, payload type 125) and Opus
// (111). It registers the same RTP parameters mediadevices' CodecSelector
// would, plus RTCP feedback. The payload types matter: a mediadevices track
// packetizes with its own payload type rather than the negotiated one, which is
// one reason the terminal is always the offerer.
func NewMediaEngine() (*webrtc.MediaEngine, error) {
	me := &webrtc.MediaEngine{}
	hp, err := h264enc.NewParams()
	if err != nil {
		return nil, fmt.Errorf("media: h264 params: %w", err)
	}
	op, err := opusenc.NewParams()
	if err != nil {
		return nil, fmt.Errorf("media: opus params: %w", err)
	}
	v := hp.RTPCodec().RTPCodecParameters
	v.RTCPFeedback = rtcpFeedback
	if err := me.RegisterCodec(v, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, fmt.Errorf("media: register h264: %w", err)
	}
	a := op.RTPCodec().RTPCodecParameters
	a.RTCPFeedback = []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBTransportCC}}
	if err := me.RegisterCodec(a, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("media: register opus: %w", err)
	}
	return me, nil
}

// NewAPI returns a webrtc.API for calls: NewMediaEngine's codecs, pion's
// default interceptors, and the caller's SettingEngine. Both the terminal and
// test peers use it, so both sides always agree on codecs.
func NewAPI(cfg APIConfig) (*webrtc.API, error) {
	me, err := NewMediaEngine()
	if err != nil {
		return nil, err
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, reg); err != nil {
		return nil, fmt.Errorf("media: register interceptors: %w", err)
	}
	if cfg.Interceptors != nil {
		if err := cfg.Interceptors(me, reg); err != nil {
			return nil, fmt.Errorf("media: register interceptors: %w", err)
		}
	}
	opts := []func(*webrtc.API){webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg)}
	if cfg.SettingEngine != nil {
		opts = append(opts, webrtc.WithSettingEngine(*cfg.SettingEngine))
	}
	return webrtc.NewAPI(opts...), nil
}
