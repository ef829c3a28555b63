// Call alerts: how the parent hears the child when this page is closed or
// cannot play its ring (docs/notifications.md).
//   - Web Push: with the parent's permission the page subscribes with the
//     server's VAPID key (notify_status) and hands the subscription over its
//     socket (push_subscribe); the service worker (sw.js) rings.
//   - SMS and voice calls, where the programme offers them: the parent's
//     number, given with consent (phone_set) and removable (phone_clear).
//   - A ring the parent hears: when the open page may not play sound
//     (autoplay), it asks the service worker to ring with a notification.
//   - Tapping a notification opens the page with ?answer=<call> or
//     ?decline=<call>, or (page open) the worker posts the action to it; the
//     page acts once its socket brings that call's ring.
// It keeps its state in window.tuanju.alerts for the tests.

import { validID, unb64url } from './util.js';
import { lang, say } from './i18n.js';

// An action from a notification is for a ring that arrives within this.
const ACTION_FOR_MS = 90000;
// How long the page waits for its ring to start sounding before it rings
// with a notification instead.
const AUTOPLAY_GRACE_MS = 400;

const $ = (id) => document.getElementById(id);

let send = () => false;
let act = () => false;
let state = null; // window.tuanju.alerts
let pending = null; // {action, callId, at}: a tapped notification's call, not rung yet
let synced = false; // this socket has had its subscription refreshed
let folded = false; // the card was folded away once alerts were on

function supported() {
  return 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window && window.isSecureContext;
}

function permission() {
  return 'Notification' in window ? Notification.permission : 'unsupported';
}

/**
 * init wires call alerts to the page.
 * @param {object} o
 * @param {object} o.hooks window.tuanju; alerts are kept in hooks.alerts.
 * @param {(m: object) => boolean} o.send sends on the parent socket.
 * @param {(action: string, callId: string) => boolean} o.onAction answers
 *   ("answer") or declines ("decline") the ringing call callId; false when
 *   that call is not ringing here (yet).
 */
export function init(o) {
  send = o.send;
  act = o.onAction;
  state = { permission: permission(), push: supported() ? 'unknown' : 'unsupported', subscribed: false, sms: false, voice: false, phoneHint: '', notices: [] };
  o.hooks.alerts = state;
  const q = new URLSearchParams(location.search);
  for (const a of ['answer', 'decline']) {
    const id = q.get(a);
    if (validID(id)) pending = { action: a, callId: id, at: Date.now() };
  }
  if (location.search) history.replaceState(null, '', location.pathname + location.hash);
  if ('serviceWorker' in navigator) navigator.serviceWorker.addEventListener('message', onWorkerMessage);
  wire();
  render();
}

function onWorkerMessage(ev) {
  const m = ev.data || {};
  if (m.type === 'tuanju-sw') {
    state.notices.push(m);
    if (state.notices.length > 50) state.notices.shift();
  } else if (m.type === 'tuanju-call-action' && validID(m.call_id) && (m.action === 'answer' || m.action === 'decline')) {
    if (!act(m.action, m.call_id)) pending = { action: m.action, callId: m.call_id, at: Date.now() };
  }
}

/** takeAction returns what a tapped notification asked for call callId ("answer", "decline") once. */
export function takeAction(callId) {
  const p = pending;
  if (!p || p.callId !== callId || Date.now() - p.at > ACTION_FOR_MS) return null;
  pending = null;
  return p.action;
}

/** onWelcome: a new socket. With the parent's permission, refresh the subscription. */
export function onWelcome() {
  synced = false;
  state.permission = permission();
  if (state.permission === 'granted' && supported()) send({ type: 'notify_status' });
}

/** onStatus takes the server's notify_status. */
export function onStatus(m) {
  state.sms = !!m.sms;
  state.voice = !!m.voice;
  state.phoneHint = m.phone_hint || '';
  state.vapidKey = m.vapid_key || '';
  if (typeof m.subscribed === 'boolean') {
    state.subscribed = m.subscribed;
    if (m.subscribed) state.push = 'on';
  }
  if (!m.vapid_key && state.push !== 'unsupported') state.push = 'off';
  render();
  if (!synced && m.vapid_key && permission() === 'granted' && supported()) {
    synced = true;
    subscribe(m.vapid_key);
  }
}

/** onError takes an error about a notification message; it reports whether it was one. */
export function onError(m) {
  if (!['push_subscribe', 'push_unsubscribe', 'phone_set', 'phone_clear', 'notify_status'].includes(m.ref_type)) return false;
  if (m.ref_type === 'push_subscribe') state.push = 'refused';
  else if (m.ref_type === 'phone_set') state.phoneError = m.code;
  render();
  return true;
}

// subscribe makes (or renews) this browser's subscription for the server's
// key and hands it to the server.
async function subscribe(key) {
  try {
    const reg = await navigator.serviceWorker.ready;
    const want = unb64url(key);
    let sub = await reg.pushManager.getSubscription();
    const have = sub && sub.options && sub.options.applicationServerKey ? new Uint8Array(sub.options.applicationServerKey) : null;
    if (sub && (!have || have.length !== want.length || have.some((b, i) => b !== want[i]))) {
      await sub.unsubscribe();
      sub = null;
    }
    if (!sub) sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: want });
    const j = sub.toJSON();
    send({ type: 'push_subscribe', endpoint: j.endpoint, p256dh: j.keys.p256dh, auth: j.keys.auth });
  } catch (e) {
    // No push service in this browser (Chrome without Google's services,
    // an in-app browser): SMS is the way.
    console.warn('tuanju: push subscription failed:', e && e.name);
    state.push = 'failed';
    render();
  }
}

async function turnOn() {
  if (!supported()) {
    state.push = 'unsupported';
    render();
    send({ type: 'notify_status' }); // are text messages offered?
    return;
  }
  state.permission = await Notification.requestPermission();
  synced = false;
  render();
  // The answer carries the key (onStatus subscribes, if permitted) and
  // says whether text messages are offered instead.
  send({ type: 'notify_status' });
}

// ringing: the call callId rings on this open page. If its sound cannot
// play (the browser allows no sound before a tap), ring with a
// notification instead, which has its own sound and vibration.
export function ringing(callId, blocked) {
  setTimeout(async () => {
    if (!blocked() || permission() !== 'granted' || !('serviceWorker' in navigator)) return;
    const reg = await navigator.serviceWorker.getRegistration();
    const w = reg && (reg.active || reg.waiting || reg.installing);
    if (w) w.postMessage({ type: 'tuanju-ring', call_id: callId, at: new Date().toISOString(), lang });
  }, AUTOPLAY_GRACE_MS);
}

/** callOver: the call is answered, declined or ended here: the ring notification goes. */
export async function callOver(callId) {
  if (!validID(callId) || !('serviceWorker' in navigator)) return;
  try {
    const reg = await navigator.serviceWorker.getRegistration();
    const w = reg && reg.active;
    if (w) w.postMessage({ type: 'tuanju-call-over', call_id: callId });
  } catch {
    // no worker: no notification either
  }
}

// normalizePhone turns what a parent types into E.164: spaces and dashes
// go, a mainland mobile number (11 digits, starting 1) gets +86, a 00
// prefix becomes +. It returns null for anything that is not a number.
export function normalizePhone(s) {
  let p = String(s || '').replace(/[\s\-().]/g, '');
  if (p.startsWith('00')) p = '+' + p.slice(2);
  if (/^1[3-9]\d{9}$/.test(p)) p = '+86' + p;
  return /^\+[1-9]\d{6,14}$/.test(p) ? p : null;
}

function savePhone(ev) {
  ev.preventDefault();
  state.phoneError = '';
  const phone = normalizePhone($('phone-input').value);
  if (!phone) state.phoneError = 'bad_phone';
  else if (!$('phone-consent').checked) state.phoneError = 'no_consent';
  else if (!send({ type: 'phone_set', phone, consent: true })) state.phoneError = 'offline';
  else $('phone-input').value = '';
  render();
}

function wire() {
  const details = $('alerts');
  if (!details) return;
  // Opened by the parent: ask what reaches them (not on the page's own
  // open and close, so a page nobody touches sends nothing).
  details.querySelector('summary').addEventListener('click', () => {
    if (!details.open) send({ type: 'notify_status' });
  });
  $('alerts-on').onclick = turnOn;
  $('phone-form').addEventListener('submit', savePhone);
  $('phone-remove').onclick = () => {
    send({ type: 'phone_clear' });
  };
}

// phoneErrors: why a number was not taken.
const phoneErrors = {
  bad_phone: 'phone.err.bad_phone',
  no_consent: 'phone.err.no_consent',
  offline: 'phone.err.offline',
};

// render says which way the child's calls will reach this parent.
function render() {
  const summary = $('alerts-status');
  if (!summary) return;
  let line = 'alerts.status.off';
  if (state.push === 'on') line = 'alerts.status.on';
  else if (state.permission === 'denied') line = 'alerts.status.denied';
  else if (state.push === 'failed' || state.push === 'unsupported' || state.push === 'refused') line = 'alerts.status.unsupported';
  say(summary, line);
  if (state.push === 'on' && !folded) {
    folded = true;
    $('alerts').open = false; // done: out of the way, one tap to look again
  }
  $('alerts-on').hidden = state.push === 'on' || state.push === 'unsupported' || state.permission === 'denied';
  $('sms-box').hidden = !state.sms;
  const saved = !!state.phoneHint;
  $('phone-form').hidden = saved;
  $('phone-saved').hidden = !saved;
  if (saved) say($('phone-saved-text'), state.voice ? 'sms.saved_voice' : 'sms.saved_sms', { phone: state.phoneHint });
  const err = phoneErrors[state.phoneError] || (state.phoneError ? 'phone.err.other' : null);
  $('phone-error').hidden = !err;
  if (err) say($('phone-error'), err);
}
