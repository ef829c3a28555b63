// Pairing proofs, exactly as docs/protocol.md ("Pairing") and the Go package
// pairing define them. The secret comes from the URL fragment, which the
// browser never sends to the server; only HMACs of it leave the phone.

import { b64url, unb64url, validID } from './util.js';

const enc = new TextEncoder();

/**
 * parseLink reads "#d=<device>&s=<secret>". It returns null when the fragment
 * is not a pairing link at all, and throws when it is one but is damaged.
 */
export function parseLink(hash) {
  const frag = (hash || '').replace(/^#/, '');
  if (!frag) return null;
  const p = new URLSearchParams(frag);
  if (!p.has('d') && !p.has('s')) return null;
  const deviceId = p.get('d') || '';
  let secret;
  try {
    secret = unb64url(p.get('s') || '');
  } catch {
    secret = null;
  }
  if (!validID(deviceId) || !secret || secret.length !== 16) {
    throw new Error('bad_link');
  }
  return { deviceId, secret };
}

/** secureCryptoAvailable: WebCrypto's subtle API exists only on https:// or localhost. */
export function secureCryptoAvailable() {
  return typeof crypto !== 'undefined' && !!crypto.subtle && window.isSecureContext !== false;
}

/** importSecret makes an HMAC-SHA256 key that can only sign and verify. */
export function importSecret(secret) {
  return crypto.subtle.importKey('raw', secret, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
}

/** requestProof = HMAC-SHA256(secret, "tuanju/v1 pair request\n" + device_id + "\n" + nonce). */
export async function requestProof(key, deviceId, nonce) {
  const msg = enc.encode(`tuanju/v1 pair request\n${deviceId}\n${nonce}`);
  return b64url(new Uint8Array(await crypto.subtle.sign('HMAC', key, msg)));
}

/**
 * verifyAcceptProof checks the terminal's q = HMAC-SHA256(secret, "tuanju/v1
 * pair accept\n" + device_id + "\n" + nonce + "\n" + pair_id). WebCrypto's
 * verify compares in constant time. Only a terminal that knows the secret (and
 * whose button was pressed) can produce q, so a server cannot pair on its own.
 */
export async function verifyAcceptProof(key, deviceId, nonce, pairId, proof) {
  let sig;
  try {
    sig = unb64url(proof);
  } catch {
    return false;
  }
  const msg = enc.encode(`tuanju/v1 pair accept\n${deviceId}\n${nonce}\n${pairId}`);
  return crypto.subtle.verify('HMAC', key, sig, msg);
}
