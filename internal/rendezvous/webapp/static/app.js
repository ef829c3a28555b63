// Tuanju parent app: pairing, home (presence + call log), incoming and
// outgoing ringing, and the video call. One state at a time, mirrored on
// <body data-state> so style.css shows one screen and tests can wait on it.
//
// Test hooks (window.tuanju), read-only for tests:
//   state      "pairing" | "home" | "incoming" | "outgoing" | "call" | "ended"
//   online     the child's terminal is online (presence)
//   revoked    it is offline because the programme revoked it
//   connected  this page's socket is authenticated
//   lastError  the last error code shown to the parent (protocol codes such as
//              "already_paired", or page codes "bad_accept_proof",
//              "wrong_device", "bad_link", "insecure_context", "no_answer",
//              "ice_failed", "not_from_terminal")
//   refused    how many rings, accepts and offers this page refused because
//              the paired terminal had not signed them
//   alerts     call alerts (push.js): {permission, push, subscribed, sms, voice,
//              phoneHint, notices: what the service worker reported showing}
//   stats()    resolves to a summary of the call's getStats (see call.js
//              emptyStats): {video:{framesDecoded, bytesReceived,
//              keyFramesDecoded, frameWidth, frameHeight}, audio:{bytesReceived,
//              totalSamplesReceived}, outbound:{videoBytesSent, audioBytesSent}, …}

import { Signal } from './signal.js';
import { parseLink, secureCryptoAvailable, startHandshake, verifyAccept, confirm, newParentKey, newToken, signCall, verifyCall, newNonce, sdpHash } from './pairing.js';
import { savePairing, loadPairing, clearPairing } from './keystore.js';
import { Call, localMedia, emptyStats } from './call.js';
import * as ringer from './ringer.js';
import * as push from './push.js';
import { newID, validID, when, dataUsed } from './util.js';

const RING_TIMEOUT_MS = 45000; // the caller gives up (hangup no_answer)
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
  online: false,
  revoked: false,
  pairingPending: false,
  connected: false,
  lastError: null,
  refused: 0,
  stats: async () => (cur && cur.rtc ? cur.rtc.stats() : lastStats || emptyStats()),
};
window.tuanju = hooks;

let signal = null;
let keys = null; // the stored pairing: {parentKey, deviceKey, deviceId, fingerprint}
let cur = null; // the call in progress: {id, dir: 'in'|'out', ice, policy, rtc, timers}
let lastStats = null;
let endedTimer = null;

function setState(s) {
  hooks.state = s;
  document.body.dataset.state = s;
}

function fail(code) {
  hooks.lastError = code;
}

// zh wraps Chinese text so it is styled and announced as Chinese.
function bilingual(el, en, zh) {
  el.textContent = en + ' ';
  if (zh) {
    const span = document.createElement('span');
    span.lang = 'zh';
    span.textContent = zh;
    el.append(span);
  }
}

function show(el, on) {
  el.hidden = !on;
}

// ---------------------------------------------------------------- pairing

const pairErrors = {
  already_paired: ['This terminal is already paired with another phone. Ask the technician to reset it.', '该终端已与另一部手机配对。请联系技术人员重置。'],
  device_offline: ["The child's terminal is not online. Check that it is switched on and connected to the internet, then try again.", '孩子的终端不在线。请确认终端已开机并联网，然后重试。'],
  unknown_device: ['The server does not know this terminal. Check that you scanned the label on the right terminal, or ask the technician.', '服务器找不到这个终端。请确认扫描了正确的标签，或联系技术人员。'],
  rate_limited: ['Too many tries. Please wait one minute, then try again.', '尝试次数太多。请等一分钟后再试。'],
  bad_accept_proof: ['The confirmation did not come from your terminal, so this phone was NOT paired. Try again; if it keeps happening, tell the technician.', '确认信息不是来自您的终端，手机未配对。请重试；如果一直这样，请联系技术人员。'],
  wrong_device: ['Another device answered instead of the terminal on the label, so this phone was NOT paired. Tell the technician.', '应答的不是标签上的终端，手机未配对。请联系技术人员。'],
  bad_link: ['This pairing link is damaged. Scan the QR label on the terminal again.', '配对链接不完整。请重新扫描终端上的二维码。'],
  insecure_context: ['This page was not opened over a secure (https://) connection, so the phone cannot do the pairing safely. Open the link from the QR label exactly as printed.', '此页面没有通过安全连接（https://）打开，无法安全配对。请按二维码上的链接打开。'],
  internal: ['The server had a problem. Please try again in a few minutes.', '服务器出错。请过几分钟再试。'],
  pair_unfinished: ['The pairing did not finish, so this phone is NOT paired. Scan the QR label on the terminal to pair again.', '配对没有完成，手机未配对。请重新扫描终端上的二维码。'],
  auth_failed: ['This phone is no longer paired with the terminal. Scan the QR label on the terminal to pair again.', '这部手机已不再与终端配对。请重新扫描终端上的二维码。'],
  unpaired: ['This terminal was reset, so this phone is no longer paired with it. To pair again, hold the terminal\'s button for 3 seconds until the blue light glows, then scan its QR code.', '终端已被重置，这部手机已不再与它配对。如需重新配对，请按住终端按钮3秒，直到蓝灯亮起，然后扫描二维码。'],
};

const rejectReasons = {
  timeout: ['The button on the terminal was not pressed within one minute. Try again, then press the big button.', '一分钟内没有按终端上的按钮。请重试并按大按钮。'],
  declined: ['Pairing was cancelled on the terminal (the button was held down). Try again and give the button a short press.', '终端上取消了配对（按住了按钮）。请重试，并短按按钮。'],
  bad_secret: ['The terminal did not accept this link. Scan the QR label on the terminal again.', '终端不接受此链接。请重新扫描终端上的二维码。'],
  bad_proof: ['The terminal could not confirm this phone. Try again.', '终端无法确认这部手机。请重试。'],
  store_failed: ['The terminal could not save the pairing: its storage is full or failing. Nothing was paired. Ask the technician to check the terminal.', '终端无法保存配对：存储空间已满或出现故障。配对没有完成。请联系技术员检查终端。'],
  not_pairable: ['The terminal is not open for pairing. Hold its button for 3 seconds until the blue light glows, then try again.', '终端现在不能配对。请按住终端按钮3秒，直到蓝灯亮起，然后重试。'],
};

function pairError(code, reason) {
  fail(code);
  let text = pairErrors[code];
  if (code === 'pair_rejected') {
    text = rejectReasons[reason] || [`The terminal refused to pair (${reason || 'no reason'}). Try again.`, '终端拒绝配对。请重试。'];
  }
  if (!text) text = [`Something went wrong (${code}). Please try again.`, '出错了，请重试。'];
  bilingual($('pair-error'), text[0], text[1]);
  show($('pair-error'), true);
  show($('pair-hint'), false);
  show($('pair-retry'), code !== 'already_paired' && code !== 'bad_link' && code !== 'insecure_context');
  bilingual($('pair-status'), 'Not paired.', '未配对。');
}

function showScanHelp() {
  setState('pairing');
  bilingual($('pair-status'), 'This phone is not paired yet.', '这部手机还没有配对。');
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
    bilingual($('pair-status'), 'Waiting for the terminal…', '正在等待终端…');
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
      if (st === 'reconnecting') bilingual($('pair-status'), 'Reconnecting…', '正在重新连接…');
      if (st === 'connecting') bilingual($('pair-status'), 'Connecting…', '正在连接…');
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

// sendSigned sends a ring, accept or answer of the current call, signed
// with the parent's key over the call's binding (docs/protocol.md, "Calls"):
// a ring or accept first gets a fresh nonce of this page's own.
async function sendSigned(m) {
  const c = cur;
  if (!c || c.id !== m.call_id) return false;
  if (m.type === 'ring') {
    m.nonce = newNonce();
    c.bind = { callId: c.id, ringNonce: m.nonce };
  } else if (m.type === 'accept') {
    m.nonce = newNonce();
    c.bind.acceptNonce = m.nonce;
  }
  Object.assign(m, await signCall(keys.parentKey.privateKey, m.type, c.bind, m.sdp));
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
  if (m.type === 'accept' && cur.dir === 'out' && !cur.bind.acceptNonce) return { ...cur.bind, acceptNonce: m.nonce || '' };
  if (m.type === 'offer' && !m.restart && cur.bind.acceptNonce && !cur.bind.offerHash) return { ...cur.bind };
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
    if (m.type === 'accept') cur.bind.acceptNonce = m.nonce;
    if (m.type === 'offer') {
      cur.bind.offerHash = await sdpHash(m.sdp);
      cur.bind.restart = m.restart || 0;
    }
  }
  return true;
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
      if (st === 'reconnecting') bilingual(banner, 'No connection — reconnecting…', '网络断开，正在重新连接…');
      show(banner, st === 'reconnecting');
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
    endCall(null, ['Connection lost', '网络断开'], ['The internet connection dropped.', '网络连接中断了。']);
    return;
  }
  if (c.detached) return;
  c.detached = true;
  bilingual($('call-status'), 'Reconnecting…', '正在重新连接…');
  show($('call-status'), true);
  c.resumeTimer = setTimeout(() => {
    if (cur === c && c.detached) endCall(null, ['Connection lost', '网络断开'], ['The internet connection dropped.', '网络连接中断了。']);
  }, RESUME_GRACE_MS);
  c.timers.push(c.resumeTimer);
}

function renderPresence() {
  const p = $('presence');
  p.classList.toggle('online', hooks.online);
  $('call').classList.toggle('offline', !hooks.online);
  if (hooks.online) bilingual($('presence-text'), "Child's terminal is online", '终端在线');
  else if (hooks.revoked) bilingual($('presence-text'), "Child's terminal is switched off by the programme", '终端已被项目停用');
  else bilingual($('presence-text'), "Child's terminal is offline", '终端离线');
  const note = $('home-note');
  if (hooks.pairingPending) {
    bilingual($('presence-text'), 'Finishing the pairing…', '正在完成配对…');
    bilingual(note, 'The terminal went offline while pairing. Pairing finishes (or is undone) as soon as it is back online; keep this page open.',
      '配对时终端断线了。终端重新上线后，配对会完成（或取消）；请保持此页面打开。');
  } else if (hooks.revoked && !hooks.online) {
    bilingual(note, 'The programme has switched this terminal off (for example, it was reported lost or stolen). Please contact the programme or the school.',
      '项目已停用这台终端（例如报告丢失或被盗）。请联系项目方或学校。');
  } else if (!hooks.online) {
    bilingual(note, 'The terminal is offline now. It may be switched off or have no internet.', '终端现在不在线，可能已关机或没有网络。');
  }
  show(note, !hooks.online);
}

const outcomes = {
  answered: ['answered', '已接通'],
  missed: ['missed', '未接'],
  declined: ['declined', '已拒绝'],
  cancelled: ['cancelled', '已取消'],
  failed: ['failed', '失败'],
  interrupted: ['interrupted', '中断'],
  ringing: ['ringing', '响铃中'],
};

// callLength says how long a call lasted, in whole minutes, as a parent reads
// a phone bill; a short call is "under 1 min", never rounded up to one.
function callLength(ms) {
  const mins = Math.round(ms / 60000);
  if (!(mins >= 1)) return ['under 1 min', '不到1分钟'];
  return [`${mins} min`, `${mins}分钟`];
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
    const o = outcomes[c.outcome] || [c.outcome, ''];
    let text = `${fromChild ? 'Your child called' : 'You called'} ${when(started)} — ${o[0]}`;
    let zh = o[1];
    if (c.outcome === 'answered' && c.answered_at && c.ended_at) {
      const [en, zhLen] = callLength(new Date(c.ended_at) - new Date(c.answered_at));
      text += `, ${en}`;
      zh += `，${zhLen}`;
    }
    bilingual(li, text, zh);
    list.append(li);
  }
  show($('call-log-empty'), list.children.length === 0);
  const badge = $('missed-badge');
  badge.textContent = String(unseen);
  show(badge, unseen > 0);
  const summary = $('missed-summary');
  if (newestMissed) {
    bilingual(summary, `Your child called ${when(newestMissed)} — missed`, '孩子来电未接');
  }
  show(summary, !!newestMissed);
  document.title = unseen ? `(${unseen}) Tuanju 团聚` : 'Tuanju 团聚';
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
      hooks.online = !!m.peer_online;
      hooks.revoked = !m.peer_online && m.reason === 'revoked';
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
    if (m.type === 'offer' && !m.restart && cur && cur.id === m.call_id) endCall('failed', ['Call failed', '通话失败'], ['The answer did not come from your child\'s terminal.', '应答不是来自孩子的终端。']);
    return;
  }
  if (!cur || m.call_id !== cur.id) return; // the call ended while checking
  switch (m.type) {
    case 'ringing':
      cur.ice = m.ice_servers || cur.ice;
      cur.policy = m.ice_transport_policy || cur.policy;
      bilingual($('outgoing-status'), "Ringing at your child's home…", '对方响铃中…');
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
      if (hooks.state === 'outgoing') enterCall(); // accept may have been lost
      if (hooks.state !== 'call') return;
      cur.rtc.handleOffer(m.sdp).catch((e) => {
        console.error('tuanju: answering the offer failed:', e);
        endCall('failed', ['Call failed', '通话失败'], ['The video call could not be set up.', '无法建立视频通话。']);
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
  if (cur) endCall(null, ['Call ended', '通话结束'], '');
  showScanHelp();
  pairError(code);
  show($('pair-retry'), false);
}

function onError(m) {
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
    endCall(null, ['Call ended', '通话结束'], ['The connection was lost.', '连接已断开。']);
    return;
  }
  if (m.ref_type === 'ring' || m.code === 'busy' || m.code === 'not_paired') {
    const texts = {
      busy: ['Busy', '对方忙'],
      not_paired: ['Not paired', '未配对'],
    };
    endCall(null, texts[m.code] || ['Call failed', '呼叫失败'], m.code === 'busy' ? ['The terminal is already in a call.', '终端正在通话中。'] : [`The server said: ${m.code}.`, `服务器返回：${m.code}。`]);
  }
}

// ---------------------------------------------------------------- calls

function onRing(m) {
  if (!validID(m.call_id)) return;
  if (cur) return; // the server never rings us during a call; ignore if it does
  clearTimeout(endedTimer);
  cur = { id: m.call_id, dir: 'in', bind: { callId: m.call_id, ringNonce: m.nonce }, ice: m.ice_servers || [], policy: m.ice_transport_policy || 'all', rtc: null, timers: [] };
  setState('incoming');
  ringer.unlock(); // sounds at once where the browser allows it without a tap (an installed app)
  ringer.start('incoming');
  show($('incoming-hint'), ringer.blocked());
  push.ringing(m.call_id, ringer.blocked); // else a notification rings (push.js)
  const tapped = push.takeAction(m.call_id); // the notification that opened this page
  if (tapped) onAlertAction(tapped, m.call_id);
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
    bilingual($('home-note'), 'No connection to the server yet. Please wait a moment.', '尚未连接服务器，请稍候。');
    show($('home-note'), true);
    return;
  }
  clearTimeout(endedTimer);
  const id = newID();
  cur = { id, dir: 'out', ice: [], policy: 'all', rtc: null, timers: [] };
  sendSigned({ type: 'ring', call_id: id });
  bilingual($('outgoing-status'), 'Connecting…', '连接中…');
  setState('outgoing');
  ringer.start('ringback');
  cur.timers.push(setTimeout(() => {
    fail('no_answer');
    endCall('no_answer', ['No answer', '无人接听'], ['Nobody pressed the button. Try again later.', '没有人按按钮。请稍后再试。']);
  }, RING_TIMEOUT_MS));
}

function enterCall() {
  ringer.stop();
  push.callOver(cur.id);
  cur.timers.forEach(clearTimeout);
  cur.timers = [];
  setState('call');
  bilingual($('call-status'), 'Connecting…', '连接中…');
  show($('call-status'), true);
  $('call-quality').textContent = '';
  setMuteLabel(false);
  const media = localMedia();
  media.then((s) => {
    if (s && cur && cur.media === media) $('local-video').srcObject = s;
    show($('local-video'), !!(s && s.getVideoTracks().length));
  });
  cur.media = media;
  cur.rtc = new Call({
    callId: cur.id,
    iceServers: cur.ice,
    policy: cur.policy,
    media,
    send: (m) => (m.type === 'answer' ? sendSigned(m) : signal.send(m)),
    onTrack: onRemoteTrack,
    onState: onConnectionState,
  });
  requestWakeLock();
  cur.timers.push(setTimeout(() => {
    if (hooks.state === 'call' && !cur.connected) {
      fail('ice_failed');
      endCall('failed', ['Call failed', '通话失败'], ['Could not connect the video. The network may be too weak.', '视频无法连接，网络可能太弱。']);
    }
  }, CONNECT_TIMEOUT_MS));
  cur.timers.push(setInterval(updateQuality, 2000));
}

function onRemoteTrack(track) {
  const el = track.kind === 'video' ? $('remote-video') : $('remote-audio');
  el.srcObject = new MediaStream([track]);
  // autoplay covers most phones; play() helps where it does not. An
  // AbortError only means a newer track replaced this one.
  el.play().catch((e) => {
    if (e.name !== 'AbortError') console.warn('tuanju: play', track.kind, e.name);
  });
}

function onConnectionState(state) {
  if (!cur) return;
  if (state === 'connected') {
    cur.connected = true;
    show($('call-status'), false);
    updateQuality();
  } else if (state === 'disconnected') {
    bilingual($('call-status'), 'Weak connection…', '信号弱…');
    show($('call-status'), true);
  } else if (state === 'failed') {
    fail('ice_failed');
    endCall('failed', ['Call failed', '通话失败'], ['The connection was lost.', '连接已断开。']);
  }
}

async function updateQuality() {
  if (!cur || !cur.rtc) return;
  const s = await cur.rtc.stats();
  if (!cur) return;
  let q = ['Good', '良好', 'good'];
  if (s.rttMs == null) q = ['…', '', 'unknown'];
  else if (s.rttMs > 800 || s.lossPct > 8) q = ['Poor', '差', 'poor'];
  else if (s.rttMs > 300 || s.lossPct > 2) q = ['Fair', '一般', 'fair'];
  const el = $('call-quality');
  el.className = `call-quality ${q[2]}`;
  el.textContent = `${q[0]} ${q[1]} · ${dataUsed(s.dataBytes)}`;
}

function onRemoteHangup(reason) {
  const state = hooks.state;
  if (state === 'incoming') {
    // The terminal says why the ring ended: the child let go (cancel), the
    // ring ran out (no_answer), or the terminal dropped off the network.
    const texts = {
      answered_elsewhere: [['Answered on another device', '已在其他设备接听'], ''],
      cancel: [['Missed call', '未接来电'], ['Your child hung up before you answered.', '您接听前孩子挂断了。']],
      no_answer: [['Missed call', '未接来电'], ['Your child called, but nobody answered in time.', '孩子来电，但没有及时接听。']],
      peer_left: [['Missed call', '未接来电'], ["Your child's terminal went offline.", '孩子的终端已离线。']],
    };
    const [title, detail] = texts[reason] || [['Missed call', '未接来电'], ''];
    endCall(null, title, detail);
    return;
  }
  if (state === 'outgoing') {
    const texts = {
      unavailable: [["Your child's terminal is offline", '终端不在线'], ['It may be switched off or have no internet.', '它可能已关机或没有网络。']],
      decline: [['Call declined', '对方已拒绝'], ''],
      busy: [['Busy', '对方忙'], ['The terminal is already in a call.', '终端正在通话中。']],
      no_answer: [['No answer', '无人接听'], ['Nobody pressed the button. Try again later.', '没有人按按钮。请稍后再试。']],
    };
    const [title, detail] = texts[reason] || [['No answer', '无人接听'], ''];
    endCall(null, title, detail);
    return;
  }
  if (reason === 'failed' || reason === 'peer_left') {
    endCall(null, ['Call ended', '通话结束'], reason === 'failed' ? ['The connection was lost.', '连接已断开。'] : ['The terminal went offline.', '终端已离线。']);
    return;
  }
  endCall(null, ['Call ended', '通话结束'], '');
}

/**
 * endCall ends the current call: it sends hangup with `reason` unless that is
 * null (the other side or the server already ended it), releases camera and
 * connection, and shows the ended screen before going back home. title and
 * detail are [English, Chinese] pairs; detail may be ''.
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
  bilingual($('ended-title'), title[0], title[1]);
  let [en, zh] = detail || ['', ''];
  if (c.rtc && lastStats && lastStats.dataBytes > 0) {
    en += `${en ? ' ' : ''}Data used: ${dataUsed(lastStats.dataBytes)}.`;
    zh += `已用流量：${dataUsed(lastStats.dataBytes)}。`;
  }
  bilingual($('ended-detail'), en, zh);
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
  if (m) bilingual($('mute-label'), 'Unmute', '取消静音');
  else bilingual($('mute-label'), 'Mute', '静音');
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
  $('hangup').onclick = () => endCall('hangup', ['Call ended', '通话结束'], '');
  $('mute').onclick = () => {
    if (!cur || !cur.rtc) return;
    setMuteLabel(!muted);
    cur.rtc.setMuted(muted);
  };
  $('ended-ok').onclick = toHome;
}

async function boot() {
  wire();
  push.init({ hooks, send: (m) => !!signal && signal.send(m), onAction: onAlertAction, bilingual });
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
