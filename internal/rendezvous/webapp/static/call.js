// Call owns one RTCPeerConnection. The terminal always makes the SDP offer
// (docs/protocol.md, "Calls"), so the page only ever answers. Media is capped
// to a low-data profile because parents pay for every megabyte: the offer's
// b=TIAS lines say the terminal's profile (the browser caps its encoders to
// them by itself), and lowData() below is the page's own ceiling on top.

const MAX_CANDIDATES = 50; // per side per call, as the server enforces
const MAX_CANDIDATE_BYTES = 255; // protocol.MaxCandidateBytes: the server refuses longer ones
const VIDEO_MAX_BITRATE = 250000;
const AUDIO_MAX_BITRATE = 24000;
const MAX_FRAMERATE = 15;
// IPv4 + UDP headers, which the phone's data plan counts but getStats does not.
const PACKET_OVERHEAD = 28;

/**
 * localMedia asks for the camera and microphone in the low-data shape. If the
 * camera is refused or missing, it falls back to audio only; if that fails
 * too it returns null and the parent can still see and hear the child.
 */
export async function localMedia() {
  const md = navigator.mediaDevices;
  if (!md || !md.getUserMedia) return null;
  try {
    return await md.getUserMedia({
      audio: true,
      video: { width: 320, height: 240, frameRate: 15, facingMode: 'user' },
    });
  } catch (e) {
    console.warn('tuanju: camera unavailable, trying audio only:', e.name);
  }
  try {
    return await md.getUserMedia({ audio: true });
  } catch (e) {
    console.warn('tuanju: microphone unavailable, receiving only:', e.name);
    return null;
  }
}

export function emptyStats() {
  return {
    // For tests that judge a call over an impaired path:
    // freezeCount and totalFreezesDuration (seconds) are the browser's own
    // count of the picture's pauses; concealedSamples the part of the
    // audio samples played that the decoder made up (lost or late packets,
    // and the sender's DTX pauses); videoFramesSent, videoNacks and
    // videoRetransmitted the pictures the phone sent, the NACKs it got
    // and the packets it sent again.
    video: { framesDecoded: 0, bytesReceived: 0, keyFramesDecoded: 0, frameWidth: 0, frameHeight: 0, freezeCount: 0, totalFreezesDuration: 0 },
    audio: { bytesReceived: 0, totalSamplesReceived: 0, concealedSamples: 0, packetsReceived: 0, packetsLost: 0 },
    outbound: { videoBytesSent: 0, audioBytesSent: 0, audioPacketsSent: 0, videoFramesSent: 0, videoNacks: 0, videoRetransmitted: 0, videoHeaderBytesSent: 0, videoRetransmittedBytes: 0, videoTargetBitrate: 0, availableOutgoingBitrate: 0, videoRtx: false },
    // What the call costs on the phone's data plan, both ways: dataSent
    // (the parent's camera and microphone) and dataReceived (the child's),
    // with their packets' IP and UDP headers; dataBytes is their sum.
    dataSent: 0,
    dataReceived: 0,
    dataBytes: 0,
    rttMs: null,
    lossPct: 0,
    fps: 0,
    // The selected path: this side's candidate type (host, srflx, prflx,
    // relay) and, through a relay, how the phone reaches it (udp, tcp, tls).
    route: { localType: '', relayProtocol: '' },
  };
}

export class Call {
  /**
   * @param {object} o
   * @param {string} o.callId
   * @param {RTCIceServer[]} o.iceServers from ring/ringing
   * @param {string} o.policy ice_transport_policy, "all" or "relay"
   * @param {Promise<MediaStream|null>|null} o.media local camera/mic (may be
   *   pending); null: a prepared call, whose media join at attach
   * @param {(m: object) => void} o.send sends a signalling message
   * @param {(track: MediaStreamTrack) => void} o.onTrack
   * @param {(state: string) => void} o.onState gets the RTCPeerConnection connectionState
   */
  constructor(o) {
    Object.assign(this, o);
    this.pc = null;
    this.pending = []; // remote candidates that came before the offer
    this.sent = 0;
    this.stream = null;
    this.closed = false;
    this.answered = false; // the answer is made: attach replaces tracks
  }

  async handleOffer(sdp) {
    if (this.pc) throw new Error('second offer for one call');
    const pc = new RTCPeerConnection({
      iceServers: this.iceServers || [],
      iceTransportPolicy: this.policy === 'relay' ? 'relay' : 'all',
      bundlePolicy: 'max-bundle',
      rtcpMuxPolicy: 'require',
    });
    this.pc = pc;
    pc.onicecandidate = (e) => this.sendCandidate(e.candidate);
    pc.ontrack = (e) => this.onTrack(e.track);
    pc.onconnectionstatechange = () => this.onState(pc.connectionState);

    const prepared = !this.media;
    if (!prepared) {
      this.stream = await this.media;
      if (this.closed) return;
    }
    if (this.stream) {
      // Added before the remote offer is applied: the offer's audio and video
      // sections then take these transceivers, so we send as well as receive.
      for (const track of this.stream.getTracks()) pc.addTrack(track, this.stream);
    }
    await pc.setRemoteDescription({ type: 'offer', sdp });
    if (prepared) {
      // The parent has not answered yet: the answer says we will send,
      // and camera and microphone join these senders at attach, with no
      // new offer and answer. Until then they send nothing.
      for (const t of pc.getTransceivers()) t.direction = 'sendrecv';
    }
    for (const c of this.pending.splice(0)) await this.addCandidate(c);
    await pc.setLocalDescription(await pc.createAnswer());
    if (this.closed) return;
    this.send({ type: 'answer', call_id: this.callId, sdp: pc.localDescription.sdp });
    this.answered = true;
    if (prepared && this.stream) await this.joinTracks(); // attach came while answering
    await this.lowData();
  }

  /**
   * attach sends the camera and microphone (a promise of them) in a call
   * prepared while it rang, on the senders its answer made.
   */
  async attach(media) {
    this.media = media;
    const stream = await media;
    if (this.closed || !stream) return;
    this.stream = stream;
    if (!this.answered) return; // handleOffer joins them once it has answered
    await this.joinTracks();
    await this.lowData();
  }

  async joinTracks() {
    for (const track of this.stream.getTracks()) {
      const tr = this.pc.getTransceivers().find((t) => t.receiver.track.kind === track.kind && !t.sender.track);
      if (tr) await tr.sender.replaceTrack(track);
    }
  }

  /**
   * handleRestart answers the terminal's ICE restart offer (already
   * checked: signed over the call and the restart's number) with an answer
   * carrying that number.
   */
  async handleRestart(sdp, restart) {
    if (!this.pc || this.closed) return;
    await this.pc.setRemoteDescription({ type: 'offer', sdp });
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    if (this.closed) return;
    this.sent = 0; // a new socket's candidates count afresh at the server
    this.send({ type: 'answer', call_id: this.callId, sdp: this.pc.localDescription.sdp, restart });
  }

  /** setIceServers takes fresh TURN credentials (a resumed call's). */
  setIceServers(iceServers) {
    if (!this.pc) return;
    try {
      this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers });
    } catch (e) {
      console.warn('tuanju: keeping the old ICE servers:', e);
    }
  }

  /** lowData caps what the phone sends: 250 kbit/s, 15 fps video; 24 kbit/s audio. */
  async lowData() {
    for (const sender of this.pc.getSenders()) {
      if (!sender.track) continue;
      const p = sender.getParameters();
      if (!p.encodings || p.encodings.length === 0) continue;
      for (const enc of p.encodings) {
        if (sender.track.kind === 'video') {
          enc.maxBitrate = VIDEO_MAX_BITRATE;
          enc.maxFramerate = MAX_FRAMERATE;
        } else {
          enc.maxBitrate = AUDIO_MAX_BITRATE;
        }
      }
      try {
        await sender.setParameters(p);
      } catch (e) {
        console.warn('tuanju: cannot cap bitrate:', e);
      }
    }
  }

  sendCandidate(c) {
    // The null event (end of gathering) and empty candidates carry nothing the
    // terminal needs, so they are not sent; neither is anything over the limits.
    if (this.closed || !c || !c.candidate) return;
    if (this.sent >= MAX_CANDIDATES || c.candidate.length > MAX_CANDIDATE_BYTES) return;
    const init = { candidate: c.candidate };
    if (c.sdpMid != null) init.sdpMid = c.sdpMid;
    if (c.sdpMLineIndex != null) init.sdpMLineIndex = c.sdpMLineIndex;
    if (c.usernameFragment) init.usernameFragment = c.usernameFragment;
    this.sent++;
    this.send({ type: 'candidate', call_id: this.callId, candidate: init });
  }

  async addCandidate(c) {
    if (!this.pc || !this.pc.remoteDescription) {
      this.pending.push(c);
      return;
    }
    try {
      await this.pc.addIceCandidate(c);
    } catch (e) {
      console.warn('tuanju: bad remote candidate:', e);
    }
  }

  setMuted(muted) {
    if (!this.stream) return;
    for (const t of this.stream.getAudioTracks()) t.enabled = !muted;
  }

  /** stats summarizes getStats for the quality readout and the test hook. */
  async stats() {
    const out = emptyStats();
    if (!this.pc) return out;
    const report = await this.pc.getStats();
    let lost = 0;
    let got = 0;
    report.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        out.video.framesDecoded += s.framesDecoded || 0;
        out.video.bytesReceived += s.bytesReceived || 0;
        out.video.keyFramesDecoded += s.keyFramesDecoded || 0;
        out.video.frameWidth = s.frameWidth || out.video.frameWidth;
        out.video.frameHeight = s.frameHeight || out.video.frameHeight;
        out.video.freezeCount += s.freezeCount || 0;
        out.video.totalFreezesDuration += s.totalFreezesDuration || 0;
        out.fps = s.framesPerSecond || 0;
      } else if (s.type === 'inbound-rtp' && s.kind === 'audio') {
        out.audio.bytesReceived += s.bytesReceived || 0;
        out.audio.totalSamplesReceived += s.totalSamplesReceived || 0;
        out.audio.concealedSamples += s.concealedSamples || 0;
        out.audio.packetsReceived += s.packetsReceived || 0;
        out.audio.packetsLost += s.packetsLost || 0;
      } else if (s.type === 'outbound-rtp') {
        if (s.kind === 'video') {
          out.outbound.videoBytesSent += s.bytesSent || 0;
          out.outbound.videoFramesSent += s.framesSent || 0;
          out.outbound.videoNacks += s.nackCount || 0;
          out.outbound.videoRetransmitted += s.retransmittedPacketsSent || 0;
          out.outbound.videoHeaderBytesSent += s.headerBytesSent || 0;
          out.outbound.videoRetransmittedBytes += s.retransmittedBytesSent || 0;
          out.outbound.videoTargetBitrate = s.targetBitrate || 0;
          out.outbound.videoRtx = !!s.rtxSsrc;
        } else {
          out.outbound.audioBytesSent += s.bytesSent || 0;
          out.outbound.audioPacketsSent += s.packetsSent || 0;
        }
      } else if (s.type === 'transport') {
        out.dataSent += (s.bytesSent || 0) + PACKET_OVERHEAD * (s.packetsSent || 0);
        out.dataReceived += (s.bytesReceived || 0) + PACKET_OVERHEAD * (s.packetsReceived || 0);
      } else if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') {
        if (s.currentRoundTripTime != null) out.rttMs = Math.round(s.currentRoundTripTime * 1000);
        out.outbound.availableOutgoingBitrate = s.availableOutgoingBitrate || 0;
      }
      if (s.type === 'inbound-rtp') {
        lost += Math.max(0, s.packetsLost || 0);
        got += s.packetsReceived || 0;
      }
    });
    out.dataBytes = out.dataSent + out.dataReceived;
    out.lossPct = got + lost > 0 ? (100 * lost) / (got + lost) : 0;
    report.forEach((s) => {
      if (s.type !== 'transport' || !s.selectedCandidatePairId) return;
      const pair = report.get(s.selectedCandidatePairId);
      const local = pair && report.get(pair.localCandidateId);
      if (local) out.route = { localType: local.candidateType || '', relayProtocol: local.relayProtocol || '' };
    });
    return out;
  }

  /** close ends the connection and, unless keepMedia, camera and microphone. */
  close(keepMedia = false) {
    this.closed = true;
    if (this.pc) this.pc.close();
    if (this.media && !keepMedia) this.media.then((s) => s && s.getTracks().forEach((t) => t.stop())).catch(() => {});
  }
}
