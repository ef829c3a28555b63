// Signal keeps one authenticated WebSocket to the rendezvous server open:
// it answers the challenge with the caller's hello, hands every other message
// to onMessage, and reconnects with exponential backoff and jitter when the
// socket drops (phones lose their network all the time).

const SUBPROTOCOL = 'tuanju.v3';
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30000;
const WELCOME_TIMEOUT_MS = 15000;
const CLOSE_AUTH_FAILED = 4001;

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
    this.kick = () => this.reconnectNow();
    window.addEventListener('online', this.kick);
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
      if (m.type === 'welcome') {
        clearTimeout(welcomeTimer);
        this.ready = true;
        this.attempt = 0;
        this.onStatus('ready');
      }
      this.onMessage(m);
    };
    ws.onclose = (ev) => {
      clearTimeout(welcomeTimer);
      if (ws !== this.ws) return;
      this.ws = null;
      this.ready = false;
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

  /** reconnectNow skips the backoff wait (network came back, page shown). */
  reconnectNow() {
    if (this.stopped || !this.timer || document.visibilityState === 'hidden') return;
    this.connect();
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
    document.removeEventListener('visibilitychange', this.kick);
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    if (ws) ws.close(1000, 'bye');
    this.onStatus('stopped');
  }
}
