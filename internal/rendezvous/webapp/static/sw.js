// Service worker: keeps the app shell (these few static files) on the phone
// so the app opens without data and installs as a PWA. It never touches the
// signalling socket (/ws) or anything that is not a GET of a shell file.
// Shell files are served from the cache and refreshed in the background, so a
// new release reaches the phone on the next opening; bump VERSION to drop the
// old cache at once.

const VERSION = 'tuanju-shell-v4'; // v4: calls resumed after a lost socket, signed ICE restarts
const SHELL = [
  '/',
  '/app.js',
  '/call.js',
  '/keystore.js',
  '/pairing.js',
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
