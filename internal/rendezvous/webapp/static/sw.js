// Service worker: keeps the app shell (these few static files) on the phone
// so the app opens without data and installs as a PWA. It never touches the
// signalling socket (/ws) or anything that is not a GET of a shell file.
// Shell files are served from the cache and refreshed in the background, so a
// new release reaches the phone on the next opening; bump VERSION to drop the
// old cache at once.
//
// It also rings the phone when the page is closed (docs/notifications.md):
// a Web Push "ring" shows a call notification that rings (sound and
// vibration again every few seconds while the child calls), with Answer and
// Decline; tapping it opens the page straight into the call. A "missed"
// push replaces it with a missed-call notification that says when; an
// "answered" one (another of the parent's phones took the call) silences it.
// Its words are the page's (messages.js), in the language the browser asks
// for, as the page picks it (or the page's own, when a page asks it to ring).

importScripts('/messages.js');

const VERSION = 'tuanju-shell-v6'; // v6: one language at a time (messages.js, i18n.js)
const SHELL = [
  '/',
  '/app.js',
  '/call.js',
  '/i18n.js',
  '/messages.js',
  '/keystore.js',
  '/pairing.js',
  '/push.js',
  '/ringer.js',
  '/signal.js',
  '/util.js',
  '/style.css',
  '/manifest.webmanifest',
  '/icon-192.png',
  '/icon-512.png',
];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(VERSION).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== VERSION).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== 'GET' || url.origin !== self.location.origin) return;
  // "/" and "/pair" are the same page; the pairing secret is in the
  // fragment, which never reaches the service worker or the server.
  const key = req.mode === 'navigate' && (url.pathname === '/' || url.pathname === '/pair') ? '/' : url.pathname;
  if (!SHELL.includes(key)) return; // /ws and everything else: straight to the network
  event.respondWith(
    caches.open(VERSION).then(async (cache) => {
      const cached = await cache.match(key);
      const fresh = fetch(req).then((res) => {
        if (res.ok && res.type === 'basic') cache.put(key, res.clone());
        return res;
      });
      if (cached) {
        event.waitUntil(fresh.catch(() => {}));
        return cached;
      }
      return fresh;
    }),
  );
});

// ---------------------------------------------------------------- call alerts

const ID = /^[a-z2-7]{26}$/;
// RING_FOR_MS: how long a ring notification keeps ringing; the caller (the
// terminal) gives up after 45 s, the server after 60 s.
const RING_FOR_MS = 60000;
const RING_EVERY_MS = 6000;
const RING_VIBRATE = [800, 400, 800, 400, 800, 400, 800];

// ringing: call ID → the ring notification's loop, until answered, declined,
// dismissed, missed or over.
const ringing = new Map();

const I = self.tuanjuI18n;
// langOf is the language of a notification: the page's, when a page asked
// for it, else the browser's preference, as the page would pick it.
function langOf(asked) {
  return I.LANGS.includes(asked) ? asked : I.pick(self.navigator.languages || [self.navigator.language]);
}
const t = (lang, key, params) => I.format(lang, key, params);

const pad2 = (n) => String(n).padStart(2, '0');
// clock: 24-hour HH:MM, as phones in China show it.
const clock = (d) => `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;

function tagOf(callId) {
  return `tuanju-call-${callId}`;
}

// tell gives every open page of the app a message (the page keeps them for
// its tests, window.tuanju.alerts.notices, and acts on some).
async function tell(msg) {
  const wins = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  for (const w of wins) w.postMessage(msg);
  return wins;
}

function ringOptions(callId, at, lang) {
  return {
    body: t(lang, 'notify.ring_body'),
    tag: tagOf(callId),
    renotify: true,
    requireInteraction: true,
    vibrate: RING_VIBRATE,
    icon: '/icon-192.png',
    badge: '/icon-192.png',
    timestamp: at.getTime(),
    actions: [
      { action: 'answer', title: t(lang, 'incoming.answer') },
      { action: 'decline', title: t(lang, 'incoming.decline') },
    ],
    data: { type: 'ring', call_id: callId, at: at.toISOString() },
  };
}

async function show(title, options) {
  await self.registration.showNotification(title, options);
  await tell({
    type: 'tuanju-sw', event: 'shown', kind: options.data.type, call_id: options.data.call_id, title, body: options.body,
    tag: options.tag, requireInteraction: !!options.requireInteraction, vibrate: options.vibrate || [],
    actions: (options.actions || []).map((a) => a.action),
  });
}

// ring shows the call notification and shows it again (its sound and
// vibration) every RING_EVERY_MS until the call is over for this phone.
async function ring(callId, at, lang) {
  if (ringing.has(callId)) return;
  const loop = { stop: null };
  const over = new Promise((resolve) => { loop.stop = resolve; });
  ringing.set(callId, loop);
  const until = Math.min(Date.now(), at.getTime()) + RING_FOR_MS;
  try {
    for (;;) {
      await show(t(lang, 'notify.ring_title'), ringOptions(callId, at, lang));
      const wait = Math.min(RING_EVERY_MS, until - Date.now());
      if (wait <= 0) break;
      const stopped = await Promise.race([over.then(() => true), new Promise((r) => setTimeout(() => r(false), wait))]);
      if (stopped) return;
    }
    // Rang out without a word from the server: the child gave up.
    await closeCall(callId);
  } finally {
    ringing.delete(callId);
  }
}

function stopRinging(callId) {
  const loop = ringing.get(callId);
  if (loop) loop.stop();
}

async function closeCall(callId) {
  const ns = await self.registration.getNotifications({ tag: tagOf(callId) });
  for (const n of ns) if (n.data && n.data.type === 'ring') n.close();
}

async function missed(callId, at, lang) {
  stopRinging(callId);
  await show(t(lang, 'ended.missed'), {
    body: t(lang, 'notify.missed_body', { time: clock(at) }),
    tag: tagOf(callId),
    renotify: true,
    vibrate: [200, 100, 200],
    icon: '/icon-192.png',
    badge: '/icon-192.png',
    timestamp: at.getTime(),
    data: { type: 'missed', call_id: callId, at: at.toISOString() },
  });
}

// pageAnswers reports whether a page of the app is in front of the parent:
// it rings by itself (its socket brings the ring), so the service worker
// only tells it.
async function pageAnswers() {
  const wins = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  return wins.some((w) => w.visibilityState === 'visible' && w.focused);
}

async function answered(callId, at, lang) {
  stopRinging(callId);
  await closeCall(callId);
  if (await pageAnswers()) return; // the page in front took it
  // A push must show something; this one replaces the ring, quietly.
  await show(t(lang, 'notify.answered_title'), {
    body: t(lang, 'ended.answered_elsewhere'),
    tag: tagOf(callId),
    silent: true,
    icon: '/icon-192.png',
    badge: '/icon-192.png',
    timestamp: at.getTime(),
    data: { type: 'answered', call_id: callId, at: at.toISOString() },
  });
}

async function onPush(msg) {
  const ok = msg && ['ring', 'missed', 'answered'].includes(msg.type) && typeof msg.call_id === 'string' && ID.test(msg.call_id);
  if (!ok) return;
  let at = new Date(msg.at);
  if (isNaN(at)) at = new Date();
  await tell({ type: 'tuanju-sw', event: 'push', kind: msg.type, call_id: msg.call_id });
  const lang = langOf();
  if (msg.type === 'missed') {
    await missed(msg.call_id, at, lang);
    return;
  }
  if (msg.type === 'answered') {
    await answered(msg.call_id, at, lang);
    return;
  }
  if (await pageAnswers()) return;
  await ring(msg.call_id, at, lang);
}

self.addEventListener('push', (event) => {
  let msg = null;
  try {
    msg = event.data ? event.data.json() : null;
  } catch {
    msg = null;
  }
  event.waitUntil(onPush(msg));
});

// clickURL is the page a tap opens when no page of the app is open: straight
// into the call (the page answers or declines it once its socket brings the
// ring), or home for a missed call.
function clickURL(data, action) {
  if (!data || !ID.test(data.call_id || '') || data.type !== 'ring') return '/';
  return action === 'decline' ? `/?decline=${data.call_id}` : `/?answer=${data.call_id}`;
}

async function onClick(data, action) {
  const callId = data && data.call_id;
  if (callId) stopRinging(callId);
  const act = data && data.type === 'ring' ? (action === 'decline' ? 'decline' : 'answer') : 'open';
  const url = clickURL(data, action);
  const wins = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const win = wins.find((w) => new URL(w.url).origin === self.location.origin);
  if (win) {
    win.postMessage({ type: 'tuanju-call-action', action: act, call_id: callId });
    if (act !== 'decline') {
      try {
        await win.focus();
      } catch {
        // not allowed outside a real tap (tests): the page acts anyway
      }
    }
    return { posted: act, url };
  }
  await self.clients.openWindow(url);
  return { opened: url, url };
}

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  event.waitUntil(onClick(event.notification.data, event.action));
});

self.addEventListener('notificationclose', (event) => {
  const d = event.notification.data;
  if (d && d.call_id) stopRinging(d.call_id);
});

// Messages from the app's pages:
//   tuanju-ring {call_id, at, lang}  the open page cannot play its ring
//                               (autoplay blocked): ring with a notification
//                               instead, in the page's language
//   tuanju-call-over {call_id}  the page answered, declined or saw the call end
//   tuanju-test-click {tag, action}  the tests' stand-in for a tap on a
//                               notification (nothing a page cannot do itself)
self.addEventListener('message', (event) => {
  const m = event.data || {};
  const callId = typeof m.call_id === 'string' && ID.test(m.call_id) ? m.call_id : null;
  if (m.type === 'tuanju-ring' && callId) {
    const at = new Date(m.at);
    event.waitUntil(ring(callId, isNaN(at) ? new Date() : at, langOf(m.lang)));
  } else if (m.type === 'tuanju-call-over' && callId) {
    stopRinging(callId);
    event.waitUntil(closeCall(callId));
  } else if (m.type === 'tuanju-test-click' && typeof m.tag === 'string') {
    const port = event.ports && event.ports[0];
    event.waitUntil(self.registration.getNotifications({ tag: m.tag }).then(async (ns) => {
      if (!ns.length) {
        if (port) port.postMessage({ error: 'no notification with tag ' + m.tag });
        return;
      }
      const n = ns[0];
      n.close();
      const r = await onClick(n.data, m.action || '');
      if (port) port.postMessage(r);
    }));
  }
});
