// The pairing's keys live in IndexedDB, which (unlike localStorage) can hold
// CryptoKey objects: the parent's private key stays non-extractable, so even
// script running in this page can use it to sign but never read it out.

const DB = 'tuanju';
const STORE = 'keys';
const ID = 'pairing';

function open() {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open(DB, 1);
    r.onupgradeneeded = () => r.result.createObjectStore(STORE);
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

async function tx(mode, f) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const t = db.transaction(STORE, mode);
      const req = f(t.objectStore(STORE));
      t.oncomplete = () => resolve(req.result);
      t.onerror = () => reject(t.error);
      t.onabort = () => reject(t.error);
    });
  } finally {
    db.close();
  }
}

/**
 * savePairing stores {parentKey: CryptoKeyPair, deviceKey: CryptoKey,
 * deviceId, fingerprint}: what the page needs to sign its calls and to
 * recognise its terminal's.
 */
export function savePairing(p) {
  return tx('readwrite', (s) => s.put(p, ID));
}

/** loadPairing resolves to the stored pairing or null. */
export async function loadPairing() {
  try {
    const p = await tx('readonly', (s) => s.get(ID));
    if (p && p.parentKey && p.parentKey.privateKey && p.deviceKey && p.fingerprint) return p;
  } catch (e) {
    console.warn('tuanju: cannot read the pairing keys:', e);
  }
  return null;
}

/** clearPairing forgets the keys (the terminal was reset, or the server dropped us). */
export function clearPairing() {
  return tx('readwrite', (s) => s.delete(ID)).catch(() => {});
}
