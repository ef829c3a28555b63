package media

import (
	"github.com/pion/interceptor"
)

// rtxPayloadType is the payload type offered for RTX (RFC 4588) beside
// H.264's 125.
//
// The offer lists RTX so that the parent's browser resends what the
// terminal asks for on a stream of its own, the way its congestion control
// and retransmission are tuned for. In TestBrowserImpairedCall's rows, both
// with the terminal's REMB cap (receive.go, capBitrate): at 10% loss the
// terminal decoded 14.8–15.2 of Chromium's 15 pictures a second with RTX and
// no key frame asked for, 12.8–14.3 without it, with 4 key frames asked for
// in two runs of three and 7 of 12 and 5 of 25 NACKs answered; under
// 150 ± 50 ms, 14.8–15.2 against 9.5–12.2. pion unwraps the RTX packets into
// the track; the NACK requester counts them as arrived (nackrequest.go).
const rtxPayloadType = 124

// mediaStreamResender is the NACK responder with RTX off for what we send:
// the packets a peer asks for go again on the media stream, as without RTX.
// The terminal's own sender keeps to the form every peer and the pion
// phone decode alike; the offer lists RTX only for what it receives.
type mediaStreamResender struct{ interceptor.Factory }

func (f mediaStreamResender) NewInterceptor(id string) (interceptor.Interceptor, error) {
	i, err := f.Factory.NewInterceptor(id)
	if err != nil {
		return nil, err
	}
	return noRTXSending{i}, nil
}

type noRTXSending struct{ interceptor.Interceptor }

func (n noRTXSending) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	c := *info
	c.SSRCRetransmission, c.PayloadTypeRetransmission = 0, 0
	return n.Interceptor.BindLocalStream(&c, w)
}
