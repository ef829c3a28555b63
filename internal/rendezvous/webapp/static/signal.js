// Signal keeps one authenticated WebSocket to the rendezvous server open:
// it answers the challenge with the caller's hello, hands every other message
// to onMessage, and reconnects with exponential backoff and jitter when the
// socket drops (phones lose their network all the time).
//
// It also notices a link that died without a word: a page cannot see the
// server's WebSocket pings, and a socket through a dead link stays "open"
// for minutes. So when it has heard nothing for QUIET_MS it sends ping, and
// a pong (or anything) not back within PROBE_TIMEOUT_MS drops the socket
// and reconnects; the browser's offline event drops it at once, and its
// online event (or the page shown again) probes at once. While the socket
// is down the page says "reconnecting", never what it knew before.

const SUBPROTOCOL = 'tuanju.v3';
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30000;
const WELCOME_TIMEOUT_MS = 15000;
const CLOSE_AUTH_FAILED = 4001;
// A few bytes every QUIET_MS on an idle page; a dead link is noticed
// within QUIET_MS + PROBE_TIMEOUT_MS (33 s), at once when the browser knows
// it is offline, and within PROBE_TIMEOUT_MS when its network comes back or
// the page is shown again.
const QUIET_MS = 25000;
const PROBE_TIMEOUT_MS = 8000;

export class Signal {
  /**
   * @param {object} o
   * @param {() => object} o.hello builds the hello message (called per socket).
   * @param {(m: object) => void} o.onMessage gets every message but challenge.
   * @param {(s: string) => void} o.onStatus gets "connecting", "ready",
   *   "reconnecting" or "stopped".
   */
  constructor({ hello, onMessage, onStatus }) {
    this.hello = hello;
    this.onMessage = onMessage;
    this.onStatus = onStatus || (() => {});
    this.ws = null;
    this.ready = false;
    this.stopped = false;
    this.attempt = 0;
    this.timer = null;
    this.quiet = null; // fires QUIET_MS after the server last said anything: ping
    this.probing = null; // fires PROBE_TIMEOUT_MS after an unanswered ping: drop
    this.kick = () => this.reconnectNow();
    this.lost = () => this.drop('the browser is offline');
    window.addEventListener('online', this.kick);
    window.addEventListener('offline', this.lost);
    document.addEventListener('visibilitychange', this.kick);
  }

  url() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}/ws`;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  connect() {
    clearTimeout(this.timer);
    this.timer = null;
    this.ready = false;
    this.onStatus(this.attempt === 0 ? 'connecting' : 'reconnecting');
    let ws;
    try {
      ws = new WebSocket(this.url(), SUBPROTOCOL);
    } catch (e) {
      console.error('tuanju: websocket', e);
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    const welcomeTimer = setTimeout(() => ws.close(4000, 'no welcome'), WELCOME_TIMEOUT_MS);
    ws.onopen = () => {
      if (ws.protocol !== SUBPROTOCOL) ws.close(1002, 'subprotocol');
    };
    ws.onmessage = (ev) => {
      if (ws !== this.ws || typeof ev.data !== 'string') return;
      if (this.ready) this.heard();
      let m;
      try {
        m = JSON.parse(ev.data);
      } catch {
        console.error('tuanju: server sent invalid JSON');
        return;
      }
      if (!m || typeof m.type !== 'string') return;
      if (m.type === 'challenge') {
        this.sendRaw(ws, this.hello());
        return;
      }
      if (m.type === 'pong') return; // heard() is all it is for
      if (m.type === 'welcome') {
        clearTimeout(welcomeTimer);
        this.ready = true;
        this.attempt = 0;
        this.heard();
        this.onStatus('ready');
      }
      this.onMessage(m);
    };
    ws.onclose = (ev) => {
      clearTimeout(welcomeTimer);
      if (ws !== this.ws) return;
      this.ws = null;
      this.ready = false;
      this.stopWatch();
      if (this.stopped) return;
      if (ev.code === CLOSE_AUTH_FAILED) {
        this.stop();
        return;
      }
      this.scheduleReconnect();
    };
  }

  scheduleReconnect() {
    if (this.stopped || this.timer) return;
    // Full jitter between half and all of the backoff, so that a village of
    // phones that lost the same cell tower does not come back in lockstep.
    const max = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    const delay = max / 2 + Math.random() * (max / 2);
    this.attempt++;
    this.onStatus('reconnecting');
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect();
    }, delay);
  }

  /**
   * reconnectNow skips the backoff wait (network came back, page shown); a
   * socket that claims to be up is asked to prove it.
   */
  reconnectNow() {
    if (this.stopped || document.visibilityState === 'hidden') return;
    if (this.ready) {
      this.probe();
      return;
    }
    if (this.timer) this.connect();
  }

  // heard: the server said something, so the link is alive now; if it
  // says nothing for QUIET_MS, ask.
  heard() {
    this.stopWatch();
    this.quiet = setTimeout(() => this.probe(), QUIET_MS);
  }

  stopWatch() {
    clearTimeout(this.quiet);
    clearTimeout(this.probing);
    this.quiet = null;
    this.probing = null;
  }

  // probe asks the server for a sign of life (ping, answered with pong);
  // without one within PROBE_TIMEOUT_MS the link is dead.
  probe() {
    if (this.probing || !this.ready || !this.ws) return;
    if (this.sendRaw(this.ws, { type: 'ping' })) {
      this.probing = setTimeout(() => this.drop('no answer to ping'), PROBE_TIMEOUT_MS);
    }
  }

  /**
   * drop gives up on the socket: its link is dead (no pong, the browser is
   * offline). It does not wait for a close handshake that cannot arrive: the
   * page says "reconnecting" now and connects again.
   */
  drop(why) {
    const ws = this.ws;
    if (!ws || this.stopped) return;
    console.warn('tuanju: dropping the socket:', why);
    this.ws = null;
    this.ready = false;
    this.stopWatch();
    ws.onmessage = null;
    ws.onclose = null;
    try {
      ws.close(4000, 'link dead');
    } catch {
      // closing is a courtesy
    }
    this.scheduleReconnect();
  }

  /** send sends one message if the socket is authenticated; it reports whether it did. */
  send(m) {
    if (!this.ws || !this.ready) return false;
    return this.sendRaw(this.ws, m);
  }

  sendRaw(ws, m) {
    if (ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(m));
    return true;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    window.removeEventListener('online', this.kick);
    window.removeEventListener('offline', this.lost);
    document.removeEventListener('visibilitychange', this.kick);
    this.stopWatch();
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    if (ws) ws.close(1000, 'bye');
    this.onStatus('stopped');
  }
}
