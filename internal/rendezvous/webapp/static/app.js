// Tuanju parent app: pairing, home (presence + call log), incoming and
// outgoing ringing, and the video call. One state at a time, mirrored on
// <body data-state> so style.css shows one screen and tests can wait on it.
//
// Every sentence comes from messages.js, in one language: Chinese unless
// the browser asks for English (i18n.js).
//
// Test hooks (window.tuanju), read-only for tests:
//   state      "pairing" | "home" | "incoming" | "outgoing" | "call" | "ended"
//   lang       the page's language, "zh" or "en"
//   online     the child's terminal is online, as far as this page knows
//              (false while this page's own socket is down)
//   revoked    it is offline because the programme revoked it
//   health     what the page shows of the terminal: "connecting" (this
//              page's socket is down: it does not know), "ready", "online"
//              (a terminal that reports no health), "in_call",
//              "needs_repair", "offline", "revoked", "pairing_pending"
//   faults     the parts at fault the terminal named (needs_repair)
//   budget     the terminal's monthly data budget as it reported it, or
//              null: {total, used (bytes), limit ("normal", "low",
//              "very-low", "audio-only": what a call starts at), until
//              ("YYYY-MM-DD", the unit's date the month ends), text}
//   connected  this page's socket is authenticated
//   lastError  the last error code shown to the parent (protocol codes such as
//              "already_paired", or page codes "bad_accept_proof",
//              "wrong_device", "bad_link", "insecure_context", "no_answer",
//              "ice_failed", "not_from_terminal")
//   refused    how many rings, accepts and offers this page refused because
//              the paired terminal had not signed them
//   prepared   the call ID of the ringing call whose connection is up before
//              it was answered (prepare: ICE and DTLS done while it rings,
//              the child's call or the parent's own), "" while none is
//   alerts     call alerts (push.js): {permission, push, subscribed, sms, voice,
//              phoneHint, notices: what the service worker reported showing}
//   stats()    resolves to a summary of the call's getStats (see call.js
//              emptyStats): {video:{framesDecoded, bytesReceived,
//              keyFramesDecoded, frameWidth, frameHeight, freezeCount,
//              totalFreezesDuration}, audio:{bytesReceived,
//              totalSamplesReceived, concealedSamples, packetsReceived,
//              packetsLost}, outbound:{videoBytesSent, audioBytesSent,
//              videoFramesSent, videoNacks, videoRetransmitted},
//              dataSent, dataReceived, dataBytes (their sum), …}

import { Signal } from './signal.js';
import { parseLink, secureCryptoAvailable, startHandshake, verifyAccept, confirm, newParentKey, newToken, signCall, verifyCall, newNonce, sdpHash } from './pairing.js';
import { savePairing, loadPairing, clearPairing } from './keystore.js';
import { Call, localMedia, emptyStats } from './call.js';
import * as ringer from './ringer.js';
import * as push from './push.js';
import { newID, validID, dataUsed } from './util.js';
import { lang, t, say, list, applyPage } from './i18n.js';

const RING_TIMEOUT_MS = 45000; // the caller gives up (hangup no_answer)
// MAX_PREPARES: the terminal answers at most this many prepares of one
// call (the first, and two after prepared connections that failed).
const MAX_PREPARES = 3;
const CONNECT_TIMEOUT_MS = 30000; // accepted but media never flowed
const ENDED_SCREEN_MS = 3500;
// RESUME_GRACE_MS: a call whose media flows goes on this long without this
// page's socket (a network change, a server restart) while the page logs in
// again and resumes it (docs/protocol.md, "Resuming a call"), as the
// terminal and the server wait.
const RESUME_GRACE_MS = 75000;
const CRED_KEY = 'tuanju.credential';

const $ = (id) => document.getElementById(id);

const hooks = {
  state: 'pairing',
  lang,
  online: false,
  revoked: false,
  health: 'connecting',
  faults: [],
  // presence: the server's last word on the terminal (welcome, presence).
  presence: { online: false, revoked: false, health: '', faults: [], budget: null },
  budget: null,
  pairingPending: false,
  connected: false,
  lastError: null,
  refused: 0,
  prepared: '',
  stats: async () => (cur && cur.rtc ? cur.rtc.stats() : lastStats || emptyStats()),
};
window.tuanju = hooks;

let signal = null;
let keys = null; // the stored pairing: {parentKey, deviceKey, deviceId, fingerprint}
// cur is the call in progress: {id, dir: 'in'|'out', ice, policy, rtc,
// timers, bind (its binding: pairing.js callText), …}. The page's own call,
// prepared (prepareOwn), also has prepares (how many it sent), asked (a
// prepare awaits the terminal's offer), offered (bind's accept nonce came
// with that offer, no accept yet) and held (the terminal's tracks, kept
// off the screen until the accept).
let cur = null;
let lastStats = null;
let endedTimer = null;

function setState(s) {
  hooks.state = s;
  document.body.dataset.state = s;
  if (s === 'call') renderCallBudget();
}

function fail(code) {
  hooks.lastError = code;
}

function show(el, on) {
  el.hidden = !on;
}

// ---------------------------------------------------------------- pairing

// pairErrors: the sentence for each error the pairing can end with.
const pairErrors = {
  already_paired: 'pair.err.already_paired',
  device_offline: 'pair.err.device_offline',
  unknown_device: 'pair.err.unknown_device',
  rate_limited: 'pair.err.rate_limited',
  pair_busy: 'pair.err.pair_busy',
  bad_accept_proof: 'pair.err.bad_accept_proof',
  wrong_device: 'pair.err.wrong_device',
  bad_link: 'pair.err.bad_link',
  insecure_context: 'pair.err.insecure_context',
  internal: 'pair.err.internal',
  pair_unfinished: 'pair.err.pair_unfinished',
  auth_failed: 'pair.err.auth_failed',
  unpaired: 'pair.err.unpaired',
};

// rejectReasons: the terminal's reasons for pair_reject.
const rejectReasons = {
  timeout: 'pair.reject.timeout',
  declined: 'pair.reject.declined',
  bad_secret: 'pair.reject.bad_secret',
  bad_proof: 'pair.reject.bad_proof',
  store_failed: 'pair.reject.store_failed',
  not_pairable: 'pair.reject.not_pairable',
};

function pairError(code, reason) {
  fail(code);
  if (code === 'pair_rejected' && rejectReasons[reason]) say($('pair-error'), rejectReasons[reason]);
  else if (code === 'pair_rejected') say($('pair-error'), 'pair.reject.other', { reason: reason || '?' });
  else if (pairErrors[code]) say($('pair-error'), pairErrors[code]);
  else say($('pair-error'), 'pair.err.other', { code });
  show($('pair-error'), true);
  show($('pair-hint'), false);
  show($('pair-retry'), code !== 'already_paired' && code !== 'bad_link' && code !== 'insecure_context');
  say($('pair-status'), 'pair.not_paired');
}

function showScanHelp() {
  setState('pairing');
  say($('pair-status'), 'pair.not_yet');
  show($('pair-scan'), true);
}

async function startPairing(link) {
  setState('pairing');
  if (!secureCryptoAvailable()) {
    pairError('insecure_context');
    return;
  }
  let hs = null; // the handshake of the latest request
  let acc = null; // the terminal's verified accept
  let parentKey = null;
  let halted = false;
  let done = false;
  // cred: the credential kept before the confirm left. From then on only a
  // login can say how the pairing ended (docs/protocol.md, "Pairing").
  let cred = null;
  const toLogin = () => {
    done = true;
    signal.stop();
    history.replaceState(null, '', '/');
    startParent(cred);
  };

  const sendRequest = async () => {
    halted = false;
    acc = null;
    hs = await startHandshake(link);
    if (!signal.send(hs.request)) return;
    show($('pair-error'), false);
    show($('pair-retry'), false);
    say($('pair-status'), 'pair.waiting');
    show($('pair-hint'), true);
  };

  const onMessage = async (m) => {
    switch (m.type) {
      case 'welcome':
        if (cred && !done) toLogin(); // reconnected after the confirm
        else if (!done && !halted) sendRequest();
        break;
      case 'error':
        halted = true;
        if (cred && !done) {
          // After the confirm: a refusal by the terminal rolled the pairing
          // back; anything else (it went offline, the server timed out or
          // failed) may still end paired, and the login will say.
          if (m.code === 'pair_rejected' && m.message !== 'timeout') {
            done = true;
            localStorage.removeItem(CRED_KEY);
            await clearPairing();
            keys = null;
            pairError(m.code, m.message);
          } else {
            toLogin();
          }
          return;
        }
        pairError(m.code, m.message);
        break;
      case 'pair_accept': {
        // The terminal's button was pressed. Check that the answer comes
        // from the terminal on the label before giving it this phone's key.
        const mine = hs;
        try {
          acc = await verifyAccept(mine, m);
        } catch (e) {
          halted = true;
          pairError(e.message === 'wrong_device' ? 'wrong_device' : 'bad_accept_proof');
          return;
        }
        if (hs !== mine) return; // a newer request replaced this one meanwhile
        parentKey = parentKey || (await newParentKey());
        // Keep the credential (parent ID = pair ID, a token of our own) and
        // the keys before the confirm leaves: if this phone dies now, it
        // still learns at its next start whether it is paired.
        keys = { parentKey, deviceKey: acc.deviceKey, deviceId: link.deviceId, fingerprint: acc.fingerprint };
        await savePairing(keys);
        cred = { parent_id: acc.pairId, token: newToken(), device_id: link.deviceId, pending: true };
        localStorage.setItem(CRED_KEY, JSON.stringify(cred));
        const c = await confirm(acc, parentKey);
        c.token = cred.token;
        signal.send(c);
        break;
      }
      case 'paired': {
        const ok = cred !== null && acc !== null && m.parent_id === cred.parent_id &&
          m.device_id === link.deviceId && m.pair_id === acc.pairId;
        if (!ok) {
          halted = true;
          pairError('bad_accept_proof');
          return;
        }
        toLogin();
        break;
      }
    }
  };

  $('pair-retry').onclick = () => {
    if (signal.ready) sendRequest();
    else halted = false; // the next welcome sends it
  };
  signal = newPairingSignal(onMessage);
}

// inOrder runs an async handler one message at a time, in arrival order:
// checking a signature takes a moment, and a hangup must not overtake the
// ring it ends.
function inOrder(handler) {
  let queue = Promise.resolve();
  return (m) => {
    queue = queue.then(() => handler(m)).catch((e) => console.error('tuanju: handling', m.type, e));
  };
}

function newPairingSignal(onMessage) {
  const s = new Signal({
    hello: () => ({ type: 'hello', role: 'pairing' }),
    onMessage: inOrder(onMessage),
    onStatus: (st) => {
      hooks.connected = st === 'ready';
      if (st === 'reconnecting') say($('pair-status'), 'status.reconnecting');
      if (st === 'connecting') say($('pair-status'), 'status.connecting');
    },
  });
  s.start();
  return s;
}

// ---------------------------------------------------------------- home

// loadCredential resolves to the stored login if the pairing's keys are
// there too: without them no call could be signed or checked.
async function loadCredential() {
  let c = null;
  try {
    c = JSON.parse(localStorage.getItem(CRED_KEY) || 'null');
  } catch {
    // a damaged entry is the same as none
  }
  if (!c || !validID(c.parent_id) || typeof c.token !== 'string' || !c.token) return null;
  keys = await loadPairing();
  if (!keys || keys.deviceId !== c.device_id) {
    localStorage.removeItem(CRED_KEY);
    return null;
  }
  return c;
}

// sendSigned sends a ring, prepare, accept or answer of the current call,
// signed with the parent's key over the call's binding (docs/protocol.md,
// "Calls"): a ring, prepare or accept first gets a fresh nonce of this
// page's own — an accept after a prepare, the prepare's. The prepare of the
// page's own call carries none: it signs the ring's nonce alone, and the
// terminal's offer brings the accept nonce.
async function sendSigned(m) {
  const c = cur;
  if (!c || c.id !== m.call_id) return false;
  let b = c.bind;
  if (m.type === 'ring') {
    m.nonce = newNonce();
    c.bind = { callId: c.id, ringNonce: m.nonce };
    b = c.bind;
  } else if (m.type === 'prepare' && c.dir === 'out') {
    b = { callId: c.id, ringNonce: c.bind.ringNonce };
  } else if (m.type === 'prepare' || (m.type === 'accept' && !c.prepared)) {
    m.nonce = newNonce();
    c.bind.acceptNonce = m.nonce;
    c.prepared = m.type === 'prepare';
  } else if (m.type === 'accept') {
    m.nonce = c.bind.acceptNonce;
  }
  Object.assign(m, await signCall(keys.parentKey.privateKey, m.type, b, m.sdp));
  return signal.send(m);
}

// seen: call IDs of the terminal's rings already shown, so a replayed ring
// cannot ring this phone again.
const seenRings = new Set();

// bindingFor is what a message from the terminal must be signed over: a
// ring its own nonce; an accept of our ring, our ring's nonce and its own;
// an offer, both nonces (and its own bytes). null: nothing of ours awaits it.
function bindingFor(m) {
  if (m.type === 'ring') return { callId: m.call_id, ringNonce: m.nonce || '' };
  if (!cur || cur.id !== m.call_id || !cur.bind) return null;
  const ring = { callId: cur.bind.callId, ringNonce: cur.bind.ringNonce };
  if (m.type === 'offer' && m.nonce !== undefined) {
    // Only the terminal's first offer to this page's prepare of its own
    // ringing call carries a nonce: the one its accept will bring.
    const asked = cur.dir === 'out' && hooks.state === 'outgoing' && cur.asked && !m.restart;
    return asked ? { ...ring, acceptNonce: m.nonce } : null;
  }
  // After the terminal's offer to our prepare, its accept may bring another
  // nonce than the offer's (it dropped that connection): over the ring's
  // and its own, as any accept.
  if (m.type === 'accept' && cur.dir === 'out' && (!cur.bind.acceptNonce || cur.offered)) return { ...ring, acceptNonce: m.nonce || '' };
  // A prepared call may get a second first offer: the terminal's, made
  // afresh at the accept when its prepared connection failed.
  if (m.type === 'offer' && !m.restart && cur.bind.acceptNonce && (!cur.bind.offerHash || cur.prepared)) {
    return { callId: cur.bind.callId, ringNonce: cur.bind.ringNonce, acceptNonce: cur.bind.acceptNonce };
  }
  // An ICE restart: after the first offer, numbered above the last one.
  if (m.type === 'offer' && Number.isInteger(m.restart) && m.restart > (cur.bind.restart || 0) && cur.bind.offerHash) return { ...cur.bind, restart: m.restart };
  return null;
}

// fromTerminal checks a ring, accept or offer against the terminal's key,
// the call's binding and the fingerprint pinned at pairing; what fails is
// counted and dropped. What passes joins the call's binding.
async function fromTerminal(m) {
  const b = bindingFor(m);
  const ok = keys && b && (await verifyCall(keys, m, b)) && !(m.type === 'ring' && seenRings.has(m.call_id));
  if (!ok) {
    hooks.refused++;
    fail('not_from_terminal');
    console.warn(`tuanju: refusing a ${m.type} the paired terminal did not sign`);
    return false;
  }
  if (m.type === 'ring') seenRings.add(m.call_id);
  else if (cur && cur.id === m.call_id) {
    if (m.type === 'accept') takeAccept(cur, m.nonce);
    if (m.type === 'offer') {
      if (m.nonce !== undefined) {
        cur.bind.acceptNonce = m.nonce;
        cur.offered = true;
        cur.asked = false;
      }
      cur.bind.offerHash = await sdpHash(m.sdp);
      cur.bind.restart = m.restart || 0;
    }
  }
  return true;
}

// takeAccept records the terminal's verified accept of the page's call.
// After its offer to our prepare, an accept bringing that offer's nonce
// goes on over the prepared connection; any other nonce means the terminal
// dropped that connection, so the page drops its own and answers the
// fresh first offer that follows, signed over the new nonce.
function takeAccept(c, nonce) {
  if (c.offered && nonce !== c.bind.acceptNonce) unprepare(c);
  c.offered = false;
  c.asked = false;
  c.bind.acceptNonce = nonce;
}

// parentCred is the credential the parent socket logs in with.
let parentCred = null;

function startParent(cred) {
  parentCred = cred;
  setState('home');
  signal = new Signal({
    hello: () => ({ type: 'hello', role: 'parent', parent_id: cred.parent_id, token: cred.token }),
    onMessage: inOrder(onParentMessage),
    onStatus: (st) => {
      hooks.connected = st === 'ready';
      const banner = $('banner');
      if (st === 'reconnecting') say(banner, 'banner.reconnecting');
      show(banner, st === 'reconnecting');
      // Until its welcome, this page does not know how the terminal is:
      // it must not go on saying what it said before its link went.
      if (st !== 'ready') renderPresence();
      if (st === 'ready' && cur && cur.detached) {
        // Logged in again: take the call back (the answer is resumed).
        signal.send({ type: 'resume', call_id: cur.id });
      } else if (st !== 'ready' && cur) {
        socketLost();
      }
    },
  });
  signal.start();
}

// socketLost: the page's socket dropped. A call whose media flows goes on
// (media does not pass through the server) until the socket is back and the
// call resumed, or RESUME_GRACE_MS; any other call ends.
function socketLost() {
  const c = cur;
  if (!(hooks.state === 'call' && c.connected)) {
    endCall(null, 'ended.connection_lost', 'detail.connection_dropped');
    return;
  }
  if (c.detached) return;
  c.detached = true;
  say($('call-status'), 'status.reconnecting');
  show($('call-status'), true);
  c.resumeTimer = setTimeout(() => {
    if (cur === c && c.detached) endCall(null, 'ended.connection_lost', 'detail.connection_dropped');
  }, RESUME_GRACE_MS);
  c.timers.push(c.resumeTimer);
}

// healthOf is what the page can say of the terminal now (hooks.health).
function healthOf() {
  if (hooks.pairingPending) return 'pairing_pending';
  if (!hooks.connected) return 'connecting';
  if (!hooks.presence.online) return hooks.presence.revoked ? 'revoked' : 'offline';
  // A terminal that reports nothing (an older one), or a word this page
  // does not know yet: online, and no more.
  return ['ready', 'in_call', 'needs_repair'].includes(hooks.presence.health) ? hooks.presence.health : 'online';
}

// renderPresence shows the terminal's health as the terminal reported it
// (docs/protocol.md, "Presence"), and nothing while this page's own socket
// is down: then it does not know.
function renderPresence() {
  const h = healthOf();
  hooks.health = h;
  hooks.online = hooks.connected && hooks.presence.online;
  hooks.revoked = hooks.connected && hooks.presence.revoked;
  hooks.faults = h === 'needs_repair' ? hooks.presence.faults.slice() : [];
  const p = $('presence');
  p.dataset.health = h;
  p.classList.toggle('online', h === 'ready' || h === 'online' || h === 'in_call');
  $('call').classList.toggle('offline', h !== 'ready' && h !== 'online');
  const parts = hooks.faults.filter((f) => PARTS[f]).map((f) => t(PARTS[f]));
  if (h === 'needs_repair' && parts.length) say($('presence-text'), 'presence.needs_repair_parts', { parts: list(parts) });
  else say($('presence-text'), `presence.${h}`);
  const notes = { pairing_pending: 'note.pairing_pending', revoked: 'note.revoked', offline: 'note.offline', needs_repair: 'note.needs_repair', connecting: 'note.connecting' };
  if (notes[h]) say($('home-note'), notes[h]);
  show($('home-note'), !!notes[h]);
  renderBudget();
}

// LIMITS: what a call may start at under the data budget (protocol.Limit*).
const LIMITS = ['normal', 'low', 'very-low', 'audio-only'];

// budgetOf checks a budget from the server (docs/protocol.md, "Data
// budget"); anything malformed is no budget. until keeps the unit's own
// date: the month ends at the unit's midnight, wherever the parent is.
function budgetOf(b) {
  if (!b || typeof b !== 'object') return null;
  const total = b.total_bytes;
  const used = b.used_bytes;
  const d = typeof b.until === 'string' ? /^(\d{4})-(\d{2})-(\d{2})T/.exec(b.until) : null;
  if (!Number.isSafeInteger(total) || total <= 0 || !Number.isSafeInteger(used) || used < 0 || !LIMITS.includes(b.limit) || !d) return null;
  return { total, used, limit: b.limit, until: `${d[1]}-${d[2]}-${d[3]}`, month: Number(d[2]), day: Number(d[3]) };
}

const mb = (bytes) => String(Math.round(bytes / 1e6));

// renderBudget shows the month's data: used of total, what calls start
// at, until when; and, when calls are voice only, why.
function renderBudget() {
  const b = hooks.connected ? hooks.presence.budget : null;
  const el = $('budget');
  hooks.budget = null;
  show(el, !!b);
  if (!b) return;
  const p = { used: mb(b.used), total: mb(b.total), until: t('budget.until', { month: b.month, day: b.day }) };
  if (b.limit === 'audio-only') say(el, b.used >= b.total ? 'budget.spent' : 'budget.low', p);
  else say(el, 'budget.used', { ...p, limit: t(`budget.limit.${b.limit.replace('-', '_')}`) });
  el.dataset.limit = b.limit;
  hooks.budget = { total: b.total, used: b.used, limit: b.limit, until: b.until, text: el.textContent };
}

// renderCallBudget says, in a call, that it is voice only because of the
// budget (the terminal's offer then has no video).
function renderCallBudget() {
  const voice = !!hooks.budget && hooks.budget.limit === 'audio-only';
  if (voice) say($('call-budget'), 'call.voice_only');
  show($('call-budget'), voice);
}

// PARTS: the parts a terminal may name at fault (protocol.Fault*).
const PARTS = { button: 'part.button', camera: 'part.camera', microphone: 'part.microphone', speaker: 'part.speaker', storage: 'part.storage' };

// outcomes: the call log's outcomes (docs/protocol.md, "Call log").
const outcomes = {
  answered: 'outcome.answered',
  missed: 'outcome.missed',
  declined: 'outcome.declined',
  cancelled: 'outcome.cancelled',
  failed: 'outcome.failed',
  interrupted: 'outcome.interrupted',
  ringing: 'outcome.ringing',
};

// callLength says how long a call lasted, in whole minutes, as a parent reads
// a phone bill; a short call is "under 1 min", never rounded up to one.
function callLength(ms) {
  const n = Math.round(ms / 60000);
  if (!(n >= 1)) return t('length.short');
  return t('length.minutes', { n });
}

const pad2 = (n) => String(n).padStart(2, '0');

/** clock formats a date as 24-hour HH:MM, as phones in China show it. */
function clock(d) {
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}

/** when says "at 19:02" today, "yesterday at 19:02", or "on 3/28 at 19:02" (今天, 昨天, 3月28日). */
function when(d, now = new Date()) {
  const day = (x) => new Date(x.getFullYear(), x.getMonth(), x.getDate()).getTime();
  const diff = Math.round((day(now) - day(d)) / 86400000);
  const time = clock(d);
  if (diff === 0) return t('when.today', { time });
  if (diff === 1) return t('when.yesterday', { time });
  return t('when.date', { month: d.getMonth() + 1, day: d.getDate(), time });
}

function renderLog(calls) {
  const list = $('call-log');
  list.replaceChildren();
  let unseen = 0;
  let newestMissed = null;
  for (const c of calls.slice(0, 50)) {
    const started = new Date(c.started_at);
    if (isNaN(started)) continue;
    const fromChild = c.direction === 'from_terminal';
    const missed = fromChild && c.outcome === 'missed';
    if (missed && !c.seen) {
      unseen++;
      if (!newestMissed) newestMissed = started;
    }
    const li = document.createElement('li');
    li.className = `call ${fromChild ? 'in' : 'out'} ${c.outcome}${missed && !c.seen ? ' unseen' : ''}`;
    let outcome = outcomes[c.outcome] ? t(outcomes[c.outcome]) : t('outcome.other', { outcome: String(c.outcome) });
    if (c.outcome === 'answered' && c.answered_at && c.ended_at) {
      outcome = t('log.with_length', { outcome, length: callLength(new Date(c.ended_at) - new Date(c.answered_at)) });
    }
    say(li, fromChild ? 'log.from_child' : 'log.from_parent', { when: when(started), outcome });
    list.append(li);
  }
  show($('call-log-empty'), list.children.length === 0);
  const badge = $('missed-badge');
  badge.textContent = String(unseen);
  show(badge, unseen > 0);
  const summary = $('missed-summary');
  if (newestMissed) say(summary, 'log.missed_summary', { when: when(newestMissed) });
  show(summary, !!newestMissed);
  document.title = unseen ? t('app.title_unseen', { count: unseen }) : t('app.title');
  if (navigator.setAppBadge) (unseen ? navigator.setAppBadge(unseen) : navigator.clearAppBadge()).catch(() => {});
}

async function onParentMessage(m) {
  switch (m.type) {
    case 'welcome':
      if (parentCred && parentCred.pending) {
        // The first login with it: the pairing is stored on all sides.
        delete parentCred.pending;
        localStorage.setItem(CRED_KEY, JSON.stringify(parentCred));
      }
      hooks.pairingPending = false;
      push.onWelcome();
    // falls through
    case 'presence':
      hooks.presence = {
        online: !!m.peer_online,
        revoked: !m.peer_online && m.reason === 'revoked',
        health: m.peer_online && typeof m.health === 'string' ? m.health : '',
        faults: m.peer_online && Array.isArray(m.faults) ? m.faults.filter((f) => typeof f === 'string') : [],
        budget: m.peer_online ? budgetOf(m.budget) : null,
      };
      renderPresence();
      return;
    case 'call_log':
      renderLog(Array.isArray(m.calls) ? m.calls : []);
      return;
    case 'error':
      if (!push.onError(m)) onError(m);
      return;
    case 'notify_status':
      push.onStatus(m);
      return;
    case 'ring':
      if (!cur && validID(m.call_id) && (await fromTerminal(m))) onRing(m);
      else if (!cur) signal.send({ type: 'hangup', call_id: m.call_id, reason: 'decline' });
      return;
    case 'unpaired':
      onUnpaired();
      return;
  }
  if (!cur || m.call_id !== cur.id) return; // a stale message of an earlier call
  if ((m.type === 'accept' || m.type === 'offer') && !(await fromTerminal(m))) {
    // Not the terminal (a server in the middle, or a replay): no media to
    // it. A forged accept ends nothing (the real terminal may still answer
    // the ring), nor does a forged ICE restart (the media keeps what it
    // has); a forged first offer ends the call.
    if (m.type === 'offer' && !m.restart && cur && cur.id === m.call_id) endCall('failed', 'ended.call_failed', 'detail.not_from_terminal');
    return;
  }
  if (!cur || m.call_id !== cur.id) return; // the call ended while checking
  switch (m.type) {
    case 'ringing':
      cur.ice = m.ice_servers || cur.ice;
      cur.policy = m.ice_transport_policy || cur.policy;
      say($('outgoing-status'), 'outgoing.ringing');
      // The server has the call now: ask for the terminal's offer.
      if (cur.dir === 'out' && hooks.state === 'outgoing' && !cur.prepares) prepareOwn(cur);
      break;
    case 'accept':
      if (cur.dir === 'out' && hooks.state === 'outgoing') enterCall();
      break;
    case 'resumed':
      if (!cur.detached && !cur.connected) return;
      cur.detached = false;
      clearTimeout(cur.resumeTimer);
      show($('call-status'), false);
      if (cur.rtc && Array.isArray(m.ice_servers)) cur.rtc.setIceServers(m.ice_servers);
      break;
    case 'offer':
      if (m.restart) {
        // The terminal's signed ICE restart: new paths, same call.
        if (cur.rtc) {
          cur.rtc.handleRestart(m.sdp, m.restart).catch((e) => console.warn('tuanju: ICE restart failed:', e));
        }
        return;
      }
      if (m.nonce !== undefined) {
        // The terminal's offer to this page's prepare of its ringing call
        // (checked: fromTerminal took it only then).
        prepareMedia(m.sdp);
        return;
      }
      if (hooks.state === 'outgoing') enterCall(); // accept may have been lost
      if (hooks.state === 'incoming' && cur.prepared) {
        prepareMedia(m.sdp);
        return;
      }
      if (hooks.state !== 'call') return;
      if (cur.rtc.pc) {
        // A fresh first offer for a prepared call (its prepared
        // connection failed on the terminal): answered afresh.
        cur.rtc.close(true);
        cur.rtc = newCall(cur.media);
      }
      cur.rtc.handleOffer(m.sdp).catch((e) => {
        console.error('tuanju: answering the offer failed:', e);
        endCall('failed', 'ended.call_failed', 'detail.setup_failed');
      });
      break;
    case 'candidate':
      if (cur.rtc && m.candidate) cur.rtc.addCandidate(m.candidate);
      break;
    case 'hangup':
      onRemoteHangup(m.reason);
      break;
  }
}

// onUnpaired: the terminal was factory-reset. The server has deleted this
// phone's credential and is closing the socket (4003); drop it here too and
// say what happened. (Had this message been lost, the next login's
// auth_failed lands in the same place.)
function onUnpaired() {
  forgetPairing('unpaired');
}

// forgetPairing drops the credential and the pairing's keys, stops
// reconnecting and asks for the label again, saying why (code).
function forgetPairing(code) {
  fail(code);
  localStorage.removeItem(CRED_KEY);
  clearPairing();
  keys = null;
  signal.stop();
  if (cur) endCall(null, 'ended.call_ended', '');
  showScanHelp();
  pairError(code);
  show($('pair-retry'), false);
}

function onError(m) {
  // A prepare refused (another tab prepared, the call was answered
  // meanwhile) is no error to show: this tab's answer works as before.
  if (m.ref_type === 'prepare') return;
  fail(m.code);
  if (m.code === 'auth_failed') {
    // A credential never confirmed by a login is a pairing that did not
    // finish, not one that was taken away.
    forgetPairing(parentCred && parentCred.pending ? 'pair_unfinished' : 'auth_failed');
    return;
  }
  if (m.code === 'pairing_pending') {
    // The terminal has not yet said whether it stored this pairing: keep
    // the credential; the socket closes (1013) and the login is retried.
    hooks.pairingPending = true;
    renderPresence();
    return;
  }
  if (!cur || (m.call_id && m.call_id !== cur.id)) return;
  if (m.ref_type === 'resume') {
    // The server has no such call waiting: it ended while we were away.
    endCall(null, 'ended.call_ended', 'detail.connection_lost');
    return;
  }
  if (m.ref_type === 'ring' || m.code === 'busy' || m.code === 'not_paired') {
    if (m.code === 'busy') endCall(null, 'ended.busy', 'detail.busy');
    else if (m.code === 'not_paired') endCall(null, 'ended.not_paired', ['detail.server_said', { code: m.code }]);
    else endCall(null, 'ended.ring_failed', ['detail.server_said', { code: m.code }]);
  }
}

// ---------------------------------------------------------------- calls

function onRing(m) {
  if (!validID(m.call_id)) return;
  if (cur) return; // the server never rings us during a call; ignore if it does
  clearTimeout(endedTimer);
  hooks.prepared = '';
  cur = { id: m.call_id, dir: 'in', bind: { callId: m.call_id, ringNonce: m.nonce }, ice: m.ice_servers || [], policy: m.ice_transport_policy || 'all', rtc: null, timers: [] };
  setState('incoming');
  ringer.unlock(); // sounds at once where the browser allows it without a tap (an installed app)
  ringer.start('incoming');
  show($('incoming-hint'), ringer.blocked());
  push.ringing(m.call_id, ringer.blocked); // else a notification rings (push.js)
  // Ask for the terminal's offer now (docs/protocol.md, "Preparing a
  // call"): ICE and DTLS are done while the phone rings, so the child's
  // picture follows the tap on "answer" by about a frame. Nothing is sent
  // either way before that tap; it costs a few kilobytes.
  sendSigned({ type: 'prepare', call_id: m.call_id });
  const tapped = push.takeAction(m.call_id); // the notification that opened this page
  if (tapped) onAlertAction(tapped, m.call_id);
}

// prepareMedia answers the terminal's offer for the ringing call, with no
// camera or microphone: they join at the answer, or at the terminal's
// accept of the page's own call (enterCall).
function prepareMedia(sdp) {
  if (cur.rtc) cur.rtc.close(); // a second offer: the terminal prepared afresh
  const c = cur;
  const rtc = newCall(null);
  c.rtc = rtc;
  rtc.handleOffer(sdp).catch((e) => {
    console.warn('tuanju: preparing the call failed:', e);
    if (cur === c && c.rtc === rtc) prepareFailed(c);
  });
}

// prepareOwn asks for the terminal's offer while the page's own call rings
// (docs/protocol.md, "Preparing a call"), so ICE and DTLS are done before
// the child presses and the picture follows the press by about a frame.
// Nothing is sent either way before the accept. At most MAX_PREPARES a
// call: the terminal takes no more.
function prepareOwn(c) {
  if (c.prepares >= MAX_PREPARES) return;
  c.prepares++;
  c.asked = true;
  sendSigned({ type: 'prepare', call_id: c.id });
}

// prepareFailed drops a prepared connection that failed while its call
// rings; for the page's own call it asks for a fresh one.
function prepareFailed(c) {
  unprepare(c);
  if (c.dir === 'out' && cur === c && hooks.state === 'outgoing') prepareOwn(c);
}

// unprepare drops the ringing call's prepared connection. The call rings
// on; its accept then brings a fresh nonce, not the prepare's (the
// terminal's call), or the terminal's accept brings one of its own (the
// page's call), and the terminal makes a fresh offer (protocol.md,
// "Preparing a call").
function unprepare(c) {
  if (c.rtc) c.rtc.close();
  c.rtc = null;
  c.connected = false;
  c.prepared = false;
  c.offered = false;
  c.held = [];
  c.bind = { callId: c.bind.callId, ringNonce: c.bind.ringNonce };
  hooks.prepared = '';
}

// newCall is the call's media connection, sending media (a promise of the
// camera and microphone, or null: none yet).
function newCall(media) {
  return new Call({
    callId: cur.id,
    iceServers: cur.ice,
    policy: cur.policy,
    media,
    send: (m) => (m.type === 'answer' ? sendSigned(m) : signal.send(m)),
    onTrack: onRemoteTrack,
    onState: onConnectionState,
  });
}

// onAlertAction answers or declines the ringing call callId as a tap on
// its notification asked; false when that call is not ringing here.
function onAlertAction(action, callId) {
  if (!cur || cur.id !== callId || hooks.state !== 'incoming') return false;
  if (action === 'answer') answerCall();
  else endCall('decline', null);
  return true;
}

function answerCall() {
  ringer.unlock();
  if (!cur || hooks.state !== 'incoming') return;
  sendSigned({ type: 'accept', call_id: cur.id });
  enterCall();
}

function startOutgoing() {
  ringer.unlock();
  if (cur) return;
  if (!signal || !signal.ready) {
    say($('home-note'), 'note.no_server');
    show($('home-note'), true);
    return;
  }
  clearTimeout(endedTimer);
  hooks.prepared = '';
  const id = newID();
  cur = { id, dir: 'out', ice: [], policy: 'all', rtc: null, timers: [], prepares: 0, held: [] };
  sendSigned({ type: 'ring', call_id: id });
  say($('outgoing-status'), 'status.connecting');
  setState('outgoing');
  ringer.start('ringback');
  cur.timers.push(setTimeout(() => {
    fail('no_answer');
    endCall('no_answer', 'ended.no_answer', 'detail.nobody_pressed');
  }, RING_TIMEOUT_MS));
}

function enterCall() {
  ringer.stop();
  push.callOver(cur.id);
  cur.timers.forEach(clearTimeout);
  cur.timers = [];
  setState('call');
  say($('call-status'), 'status.connecting');
  show($('call-status'), true);
  $('call-quality').textContent = '';
  setMuteLabel(false);
  const media = localMedia();
  media.then((s) => {
    if (s && cur && cur.media === media) $('local-video').srcObject = s;
    show($('local-video'), !!(s && s.getVideoTracks().length));
  });
  cur.media = media;
  if (cur.rtc) {
    // Prepared while it rang: camera and microphone join that connection.
    cur.rtc.attach(media).catch((e) => console.warn('tuanju: sending camera and microphone failed:', e));
    for (const track of (cur.held || []).splice(0)) onRemoteTrack(track);
    if (cur.connected) onConnectionState('connected');
  } else {
    cur.rtc = newCall(media);
  }
  requestWakeLock();
  cur.timers.push(setTimeout(() => {
    if (hooks.state === 'call' && !cur.connected) {
      fail('ice_failed');
      endCall('failed', 'ended.call_failed', 'detail.video_failed');
    }
  }, CONNECT_TIMEOUT_MS));
  cur.timers.push(setInterval(updateQuality, 2000));
}

function onRemoteTrack(track) {
  if (cur && cur.dir === 'out' && hooks.state === 'outgoing') {
    // The page's own call, prepared: nothing of the child's is shown or
    // played before the terminal's accept (enterCall).
    cur.held.push(track);
    return;
  }
  const el = track.kind === 'video' ? $('remote-video') : $('remote-audio');
  el.srcObject = new MediaStream([track]);
  // autoplay covers most phones; play() helps where it does not. An
  // AbortError only means a newer track replaced this one.
  el.play().catch((e) => {
    if (e.name !== 'AbortError') console.warn('tuanju: play', track.kind, e.name);
  });
}

// onConnectionState follows the call's media path. A path that fails in a
// call whose media flowed is not the end of it: the browser calls a path
// failed ~30 s after it went quiet, and the terminal's ICE restart (once
// both ends are back, docs/protocol.md "Resuming a call") brings it back;
// the call waits for that RESUME_GRACE_MS, as the terminal and the server
// do (a path cut for 34 s ended the call at ~30 s before:
// TestPageKeepsCallThroughFailedPath). A call whose media never flowed
// ends at once.
function onConnectionState(state) {
  const c = cur;
  if (!c) return;
  if (hooks.state !== 'call') {
    // A prepared call's connection while the phone rings (prepareMedia):
    // nothing on the screen yet. One that fails is dropped (unprepare).
    if (state === 'connected') {
      c.connected = true;
      hooks.prepared = c.id;
    } else if (state === 'failed') {
      prepareFailed(c);
    }
    return;
  }
  if (state === 'connected') {
    c.connected = true;
    clearTimeout(c.pathTimer);
    c.pathTimer = null;
    if (!c.detached) show($('call-status'), false);
    updateQuality();
  } else if (state === 'disconnected') {
    say($('call-status'), 'call.weak');
    show($('call-status'), true);
  } else if (state === 'failed') {
    fail('ice_failed');
    if (!c.connected) {
      endCall('failed', 'ended.call_failed', 'detail.connection_lost');
      return;
    }
    say($('call-status'), 'status.reconnecting');
    show($('call-status'), true);
    if (c.pathTimer) return;
    c.pathTimer = setTimeout(() => {
      if (cur === c) endCall('failed', 'ended.call_failed', 'detail.connection_lost');
    }, RESUME_GRACE_MS);
    c.timers.push(c.pathTimer);
  }
}

async function updateQuality() {
  if (!cur || !cur.rtc) return;
  const s = await cur.rtc.stats();
  if (!cur) return;
  let q = 'good';
  if (s.rttMs == null) q = 'unknown';
  else if (s.rttMs > 800 || s.lossPct > 8) q = 'poor';
  else if (s.rttMs > 300 || s.lossPct > 2) q = 'fair';
  const el = $('call-quality');
  el.className = `call-quality ${q}`;
  // Both ways: what the phone sends costs the parent as much as what it
  // receives.
  say(el, 'call.quality', { quality: t(`quality.${q}`), ...dataOf(s) });
}

function onRemoteHangup(reason) {
  const state = hooks.state;
  if (state === 'incoming') {
    // The terminal says why the ring ended: the child let go (cancel), the
    // ring ran out (no_answer), or the terminal dropped off the network.
    const texts = {
      answered_elsewhere: ['ended.answered_elsewhere', ''],
      cancel: ['ended.missed', 'detail.child_hung_up'],
      no_answer: ['ended.missed', 'detail.nobody_in_time'],
      peer_left: ['ended.missed', 'detail.ring_terminal_offline'],
    };
    const [title, detail] = texts[reason] || ['ended.missed', ''];
    endCall(null, title, detail);
    return;
  }
  if (state === 'outgoing') {
    const texts = {
      unavailable: ['ended.terminal_offline', 'detail.maybe_off'],
      decline: ['ended.declined', ''],
      busy: ['ended.busy', 'detail.busy'],
      no_answer: ['ended.no_answer', 'detail.nobody_pressed'],
      // A terminal that needs repair refuses a ring at once.
      failed: hooks.health === 'needs_repair' ? ['ended.needs_repair', 'detail.needs_repair'] : ['ended.ring_failed', 'detail.failed'],
    };
    const [title, detail] = texts[reason] || ['ended.no_answer', ''];
    endCall(null, title, detail);
    return;
  }
  if (reason === 'failed' || reason === 'peer_left') {
    endCall(null, 'ended.call_ended', reason === 'failed' ? 'detail.connection_lost' : 'detail.terminal_offline');
    return;
  }
  endCall(null, 'ended.call_ended', '');
}

// dataOf is a call's data in the words of the meter: the total both ways,
// sent and received.
function dataOf(s) {
  return { total: dataUsed(s.dataBytes || 0), sent: dataUsed(s.dataSent || 0), received: dataUsed(s.dataReceived || 0) };
}

/**
 * endCall ends the current call: it sends hangup with `reason` unless that is
 * null (the other side or the server already ended it), releases camera and
 * connection, and shows the ended screen before going back home. title and
 * detail are message keys (messages.js), detail '' for none or [key,
 * params].
 */
async function endCall(reason, title, detail) {
  const c = cur;
  if (!c) return;
  cur = null;
  if (reason && signal) signal.send({ type: 'hangup', call_id: c.id, reason });
  ringer.stop();
  push.callOver(c.id);
  c.timers.forEach((t) => { clearTimeout(t); clearInterval(t); });
  releaseWakeLock();
  if (c.rtc) {
    try {
      lastStats = await c.rtc.stats();
    } catch {
      lastStats = null;
    }
    c.rtc.close();
  }
  $('remote-video').srcObject = null;
  $('remote-audio').srcObject = null;
  $('local-video').srcObject = null;
  if (cur) return; // a new call started while we were collecting stats
  if (!title) {
    toHome();
    return;
  }
  say($('ended-title'), title);
  const lines = [];
  if (detail) lines.push(Array.isArray(detail) ? t(detail[0], detail[1]) : t(detail));
  if (c.rtc && lastStats && lastStats.dataBytes > 0) lines.push(t('ended.data', dataOf(lastStats)));
  $('ended-detail').textContent = lines.join(lang === 'zh' ? '' : ' ');
  setState('ended');
  clearTimeout(endedTimer);
  endedTimer = setTimeout(toHome, ENDED_SCREEN_MS);
}

function toHome() {
  clearTimeout(endedTimer);
  if (cur) return;
  if (signal && !signal.stopped) setState('home');
}

let muted = false;
function setMuteLabel(m) {
  muted = m;
  $('mute').setAttribute('aria-pressed', String(m));
  $('mute').classList.toggle('on', m);
  say($('mute-label'), m ? 'call.unmute' : 'call.mute');
}

let wakeLock = null;
async function requestWakeLock() {
  try {
    if (navigator.wakeLock) wakeLock = await navigator.wakeLock.request('screen');
  } catch {
    wakeLock = null;
  }
}
function releaseWakeLock() {
  if (wakeLock) wakeLock.release().catch(() => {});
  wakeLock = null;
}

// ---------------------------------------------------------------- wiring

function wire() {
  // Any tap unlocks audio so the next ring can be heard (autoplay policy).
  document.addEventListener('pointerdown', ringer.unlock, { passive: true });
  document.addEventListener('keydown', ringer.unlock);
  $('incoming-hint').addEventListener('click', () => show($('incoming-hint'), false));

  $('call').onclick = startOutgoing;
  $('cancel').onclick = () => endCall('cancel', null);
  $('answer').onclick = answerCall;
  $('decline').onclick = () => {
    if (!cur || hooks.state !== 'incoming') return;
    endCall('decline', null);
  };
  $('hangup').onclick = () => endCall('hangup', 'ended.call_ended', '');
  $('mute').onclick = () => {
    if (!cur || !cur.rtc) return;
    setMuteLabel(!muted);
    cur.rtc.setMuted(muted);
  };
  $('ended-ok').onclick = toHome;
}

async function boot() {
  applyPage();
  wire();
  push.init({ hooks, send: (m) => !!signal && signal.send(m), onAction: onAlertAction });
  // A pairing link opened while the app is already showing (same page, new
  // fragment) does not load the page again; start over so it is handled.
  window.addEventListener('hashchange', () => {
    if (location.hash.includes('s=')) location.reload();
  });
  if ('serviceWorker' in navigator && window.isSecureContext) {
    navigator.serviceWorker.register('/sw.js').catch((e) => console.warn('tuanju: service worker:', e));
  }
  let link = null;
  try {
    link = parseLink(location.hash);
  } catch {
    history.replaceState(null, '', location.pathname);
    setState('pairing');
    pairError('bad_link');
    return;
  }
  if (link) {
    // The secret now lives only in this page's memory, not in the address bar
    // or the history, where the next person to use the phone could find it.
    history.replaceState(null, '', location.pathname);
    startPairing(link).catch((e) => {
      console.error('tuanju: pairing:', e);
      pairError('internal');
    });
    return;
  }
  const cred = await loadCredential();
  if (cred) {
    if (location.pathname !== '/') history.replaceState(null, '', '/');
    startParent(cred);
    return;
  }
  showScanHelp();
}

boot().catch((e) => {
  console.error('tuanju: start:', e);
  showScanHelp();
});
