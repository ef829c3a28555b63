package media

import (
	"fmt"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
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
	// Interceptors, if set, runs after the interceptors NewAPI registers
	// (congestion control, NACK, RTCP reports, TWCC): for tests that watch
	// or change packets.
	Interceptors func(*webrtc.MediaEngine, *interceptor.Registry) error
	// Congestion bounds every connection's send-side bandwidth estimate
	// (BandwidthOf); zero values take the defaults.
	Congestion CongestionConfig
}

// NACK buffers. The responder keeps a copy of each video packet sent for
// retransmission in a pooled 1.5 KB buffer: pion's default of 1,024 is
// 1.5 MB per stream, on a board with little RAM. 128 packets are over two
// seconds of a call's video even at 500 kbit/s, and a retransmission
// older than the receiver's half-second wait for a picture (receive.go)
// is thrown away anyway. The requester (nackrequest.go) asks for a lost
// packet at most nackRetries times, so a packet gone from the sender's
// buffer is not asked for until it leaves the receive window.
const (
	nackResponderSize = 128
	nackRetries       = 8
)

// rtcpFeedback is what we ask the peer to send for video. mediadevices'
// CodecSelector.Populate registers its codecs with no feedback at all, so a
// peer (Chromium) would send neither NACKs nor PLIs: no retransmission and no
// recovery from a lost key frame until the next periodic one.
var rtcpFeedback = []webrtc.RTCPFeedback{
	{Type: webrtc.TypeRTCPFBNACK},
	{Type: webrtc.TypeRTCPFBNACK, Parameter: "pli"},
	{Type: webrtc.TypeRTCPFBCCM, Parameter: "fir"},
	{Type: webrtc.TypeRTCPFBTransportCC},
	// REMB is offered for peers that do not do transport-wide feedback
	// (a peer that does uses that instead): Bandwidth takes whichever comes.
	{Type: webrtc.TypeRTCPFBGoogREMB},
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
	rtx := webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: v.ClockRate,
			SDPFmtpLine: fmt.Sprintf("apt=%d", v.PayloadType)},
		PayloadType: rtxPayloadType,
	}
	if err := me.RegisterCodec(rtx, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, fmt.Errorf("media: register rtx: %w", err)
	}
	a := op.RTPCodec().RTPCodecParameters
	a.RTCPFeedback = []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBTransportCC}}
	if err := me.RegisterCodec(a, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("media: register opus: %w", err)
	}
	return me, nil
}

// NewAPI returns a webrtc.API for calls: NewMediaEngine's codecs, the
// caller's SettingEngine, send-side congestion control (BandwidthOf; a
// Capture's ABR follows it) and pion's default interceptors with bounded
// NACK buffers. Both the terminal and test peers use it, so both sides
// always agree on codecs and feedback.
//
// Order matters: an interceptor registered earlier sits nearer the
// transport. Congestion control comes first, so it sees every packet
// that leaves (retransmissions too) and the NACK responder, registered
// after it, can read its target to bound retransmissions; the TWCC header
// extension comes next, so each packet carries its transport-wide
// sequence number by the time congestion control records it.
func NewAPI(cfg APIConfig) (*webrtc.API, error) {
	me, err := NewMediaEngine()
	if err != nil {
		return nil, err
	}
	reg := &interceptor.Registry{}
	congestion, err := newCongestionInterceptor(cfg.Congestion)
	if err != nil {
		return nil, fmt.Errorf("media: congestion control: %w", err)
	}
	reg.Add(congestion)
	if err := webrtc.ConfigureTWCCHeaderExtensionSender(me, reg); err != nil {
		return nil, fmt.Errorf("media: register TWCC header extension: %w", err)
	}
	if err := registerInterceptors(me, reg); err != nil {
		return nil, fmt.Errorf("media: register interceptors: %w", err)
	}
	if cfg.Interceptors != nil {
		if err := cfg.Interceptors(me, reg); err != nil {
			return nil, fmt.Errorf("media: register interceptors: %w", err)
		}
	}
	var se webrtc.SettingEngine
	if cfg.SettingEngine != nil {
		se = *cfg.SettingEngine
	}
	se.SetDTLSRetransmissionInterval(dtlsRetransmit)
	se.SetDTLSInsecureSkipHelloVerify(true)
	se.SetSrflxAcceptanceMinWait(directAcceptanceWait)
	se.SetPrflxAcceptanceMinWait(directAcceptanceWait)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se)), nil
}

// registerInterceptors registers what pion's RegisterDefaultInterceptors
// does, with the NACK responder's buffer bounded and our NACK requester in
// place of pion's generator (nackrequest.go).
func registerInterceptors(me *webrtc.MediaEngine, reg *interceptor.Registry) error {
	responder, err := nack.NewResponderInterceptor(nack.ResponderSize(nackResponderSize))
	if err != nil {
		return err
	}
	me.RegisterFeedback(webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBNACK}, webrtc.RTPCodecTypeVideo)
	me.RegisterFeedback(webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBNACK, Parameter: "pli"}, webrtc.RTPCodecTypeVideo)
	reg.Add(mediaStreamResender{responder})
	reg.Add(nackRequesterFactory{retries: nackRetries})
	if err := webrtc.ConfigureRTCPReports(reg); err != nil {
		return err
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		return err
	}
	if err := webrtc.ConfigureStatsInterceptor(reg); err != nil {
		return err
	}
	return webrtc.ConfigureTWCCSender(me, reg)
}

// dtlsRetransmit is how long the DTLS handshake first waits before it
// sends a flight again (pion doubles the wait after each try). pion's
// default is a second, so each flight lost on the way cost the call's
// first picture a second more; browsers start at 50 ms or their RTT
// estimate. 200 ms is above a mobile path's usual round trip, so a slow
// path sees few needless repeats, and those are a few hundred bytes.
// TestCallsConnectAtTenPercentLoss measures the difference.
const dtlsRetransmit = 200 * time.Millisecond

// The DTLS server (the terminal: the phone answers as the client) skips
// its cookie round trip (HelloVerifyRequest; SetDTLSInsecureSkipHelloVerify):
// one round trip less before the first picture. The cookie guards a
// server against spoofed handshakes that would make it send large flights
// to a victim; here DTLS starts only on the pair ICE has checked with the
// peer's credentials from the signed offer and answer, so the peer's
// address is proven already. It was off until 2026-12-06: with it the
// 64 kbit/s cell of TestImpairedCall failed 6 times in 9 (the parent's
// side sent 133 kbit/s into the link for the whole call, never stepping
// down). That was the estimate staying far above a full link
// (congestion.go, queueDrain): since it drains a queue the cell passed 9
// of 9 with the skip on.
//
// directAcceptanceWait is how long ICE waits, once a server-reflexive or
// peer-reflexive pair has worked, for a better one before it nominates it
// (pion's defaults: 500 ms and 1 s). A terminal behind a home router and a
// phone on a mobile network meet on such pairs in nearly every call (host
// pairs only on one LAN), so pion's waits were added to nearly every
// call's first picture. A relay pair still waits pion's 2 s for a direct
// one, as the relay costs the programme's server. See README's
// BenchmarkAnswerToFirstFrame figures for what it saves.
const directAcceptanceWait = 100 * time.Millisecond
