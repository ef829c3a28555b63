// Package media captures, encodes, sends, receives and decodes a call's audio
// and video.
//
// The terminal is always the SDP offerer. A call looks like this:
//
//	api, _ := media.NewAPI(media.APIConfig{SettingEngine: se}) // se: the caller's ICE policy
//	pc, _ := api.NewPeerConnection(webrtc.Configuration{ICEServers: ...})
//	gate, _ := media.NewGate(light, sound) // the in-call light and the connect sound: gate.go
//	capture, err := gate.Open(ctx, media.CaptureConfig{ // light on, sound played, then open
//		Profile: media.LowData, Camera: media.SourceV4L2, Microphone: media.SourceSynthetic, Log: log,
//	})
//	if errors.Is(err, media.ErrNoCamera) { /* retry with media.AudioOnly, tell the self-test */ }
//	defer capture.Close()
//	for _, t := range capture.Tracks() { pc.AddTrack(t) }
//	recv := media.NewReceiver(media.ReceiverConfig{WriteRTCP: pc.WriteRTCP, Log: log})
//	pc.OnTrack(func(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) { recv.Handle(t, r) })
//	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
//		if s == webrtc.PeerConnectionStateConnected { capture.RequestKeyFrame() }
//	})
//	// offer, signal, answer; then read recv.Stats() and recv.LatestFrame().
//
// Encoding (packages h264enc, opusenc: mediadevices encoder builders) and
// decoding (h264dec, opusdec) use openh264 and libopus through thin cgo
// wrappers over the system's libraries, Debian's security-maintained
// libopenh264-dev and libopus-dev, found with pkg-config and linked
// statically, so the terminal stays one static binary. mediadevices' own
// codec packages, which link prebuilt archives bundled in its module
// (OpenH264 2.1.1, open to CVE-2025-27091), are not used. LinkedCodecs says
// which versions a binary carries. The sources are the simulated board's synthetic
// camera and microphone (package synth) or a V4L2 camera.
//
// A V4L2 camera that encodes H.264 itself is not re-encoded: the capture
// sends its access units as they come (passthrough.go, media/internal/h264cam), when it has an
// H.264 mode near the profile's size and rate and its stream is constrained
// baseline; a peer's PLI/FIR asks the camera for an IDR where the driver has
// the control, and the camera's SPS/PPS are put in front of IDRs that lack
// them. Otherwise the camera's raw or MJPEG modes go through openh264
// (camera_format.go). CaptureConfig.SoftwareEncode forces the latter.
package media
