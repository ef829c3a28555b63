// Ring tones synthesized with WebAudio, so the app needs no sound files (and
// no data to fetch them). Browsers start an AudioContext "suspended" until the
// user has touched the page (autoplay policy); unlock() is called on every tap
// so the context is running by the time a call comes in, and the incoming
// screen tells the parent to tap when it is still blocked. Vibration works
// without a tap on Android.

let ctx = null;
let loop = null;

function context() {
  if (!ctx) {
    const AC = window.AudioContext || window.webkitAudioContext;
    if (!AC) return null;
    ctx = new AC();
  }
  return ctx;
}

/** unlock creates or resumes the audio context; call it from a user gesture. */
export function unlock() {
  const c = context();
  if (c && c.state === 'suspended') c.resume().catch(() => {});
}

/** blocked reports whether sound cannot play yet (no tap since page load). */
export function blocked() {
  const c = context();
  return !c || c.state !== 'running';
}

function tone(c, t, freq, dur, vol) {
  const osc = c.createOscillator();
  const gain = c.createGain();
  osc.type = 'sine';
  osc.frequency.value = freq;
  gain.gain.setValueAtTime(0, t);
  gain.gain.linearRampToValueAtTime(vol, t + 0.02);
  gain.gain.setValueAtTime(vol, t + dur - 0.03);
  gain.gain.linearRampToValueAtTime(0, t + dur);
  osc.connect(gain).connect(c.destination);
  osc.start(t);
  osc.stop(t + dur + 0.01);
}

const patterns = {
  // A bright two-note trill, 1.2 s on, 1.8 s off, with vibration.
  incoming: { every: 3000, vibrate: [600, 300, 600], play(c, t) {
    for (let i = 0; i < 12; i++) tone(c, t + i * 0.1, i % 2 ? 660 : 880, 0.1, 0.35);
  } },
  // China's ringback tone: 425 Hz, 1 s on, 4 s off, quiet.
  ringback: { every: 5000, vibrate: null, play(c, t) {
    tone(c, t, 425, 1.0, 0.12);
  } },
};

/** start plays "incoming" or "ringback" in a loop until stop(). */
export function start(kind) {
  stop();
  const p = patterns[kind];
  const once = () => {
    const c = context();
    if (c && c.state === 'running') p.play(c, c.currentTime + 0.05);
    // Chrome allows vibration only after the page has been tapped once.
    if (p.vibrate && canVibrate()) navigator.vibrate(p.vibrate);
  };
  once();
  loop = setInterval(once, p.every);
}

export function stop() {
  if (loop) clearInterval(loop);
  loop = null;
  if (canVibrate()) navigator.vibrate(0);
}

function canVibrate() {
  const ua = navigator.userActivation;
  return !!navigator.vibrate && (!ua || ua.hasBeenActive);
}
