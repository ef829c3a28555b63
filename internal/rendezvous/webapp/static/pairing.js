// The pairing handshake and the call signatures, exactly as docs/protocol.md
// ("Pairing", "Calls") and the Go package pairing define them, with
// WebCrypto alone (ECDH/ECDSA P-256, HKDF, HMAC, SHA-256: all on old Android
// Chrome too). The label secret comes from the URL fragment, which the
// browser never sends to the server; nothing derived from it leaves the
// phone except MACs. The parent's long-term key is made here, non-extractable,
// and only ever signs.

import { b64url, unb64url, validID, base32 } from './util.js';

const enc = new TextEncoder();
const subtle = () => crypto.subtle;

export const MAX_SKEW_MS = 10 * 60 * 1000; // pairing.MaxSkew
const FINGERPRINT = /^sha-256 [0-9A-F]{2}(:[0-9A-F]{2}){31}$/;

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

const hmacKey = (raw) => subtle().importKey('raw', raw, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);

async function mac(key, text) {
  return b64url(new Uint8Array(await subtle().sign('HMAC', key, enc.encode(text))));
}

async function macOK(key, text, proof) {
  let sig;
  try {
    sig = unb64url(proof || '');
  } catch {
    return false;
  }
  return subtle().verify('HMAC', key, sig, enc.encode(text)); // constant time
}

async function sha256b64(text) {
  return b64url(new Uint8Array(await subtle().digest('SHA-256', enc.encode(text))));
}

/** deviceIdOf is the device ID an SPKI key (base64url) hashes to. */
export async function deviceIdOf(spkiB64) {
  const sum = new Uint8Array(await subtle().digest('SHA-256', unb64url(spkiB64)));
  return base32(sum.slice(0, 16));
}

const ecdsa = { name: 'ECDSA', hash: 'SHA-256' };

/** importDeviceKey imports a terminal's public key (base64url SPKI) for verifying. */
export function importDeviceKey(spkiB64) {
  return subtle().importKey('spki', unb64url(spkiB64), { name: 'ECDSA', namedCurve: 'P-256' }, true, ['verify']);
}

/** newParentKey makes the parent's long-term key pair; the private half can never leave WebCrypto. */
export function newParentKey() {
  return subtle().generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
}

/**
 * startHandshake begins pairing with the terminal of a link and returns the
 * pair_request's fields and the state the later steps need.
 */
export async function startHandshake(link) {
  const eph = await subtle().generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
  const ephPub = b64url(new Uint8Array(await subtle().exportKey('raw', eph.publicKey)));
  const nonce = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const secretKey = await hmacKey(link.secret);
  const proof = await mac(secretKey, `tuanju/v2 pair request\n${link.deviceId}\n${nonce}\n${ephPub}`);
  return {
    link, eph, nonce, ephPub,
    request: { type: 'pair_request', device_id: link.deviceId, nonce, ephemeral_key: ephPub, proof },
  };
}

/**
 * verifyAccept checks the terminal's pair_accept: its key hashes to the
 * label's device ID, it signed this exchange, and its proof shows it knows
 * the label secret and the ECDH secret. It throws 'wrong_device' or
 * 'bad_accept_proof'.
 */
export async function verifyAccept(hs, m) {
  const fail = (code) => { throw new Error(code); };
  if (!validID(m.pair_id) || typeof m.public_key !== 'string' || !FINGERPRINT.test(m.fingerprint || '')) fail('bad_accept_proof');
  let id;
  try {
    id = await deviceIdOf(m.public_key);
  } catch {
    fail('wrong_device');
  }
  if (id !== hs.link.deviceId) fail('wrong_device');
  let deviceKey;
  let z;
  try {
    deviceKey = await importDeviceKey(m.public_key);
    const et = await subtle().importKey('raw', unb64url(m.ephemeral_key), { name: 'ECDH', namedCurve: 'P-256' }, false, []);
    z = await subtle().deriveBits({ name: 'ECDH', public: et }, hs.eph.privateKey, 256);
  } catch {
    fail('bad_accept_proof');
  }
  const th = await sha256b64(['tuanju/v2 pair', hs.link.deviceId, m.pair_id, hs.nonce, hs.ephPub,
    m.ephemeral_key, m.public_key, m.fingerprint].join('\n'));
  const zKey = await subtle().importKey('raw', z, 'HKDF', false, ['deriveBits']);
  const k = new Uint8Array(await subtle().deriveBits(
    { name: 'HKDF', hash: 'SHA-256', salt: hs.link.secret, info: enc.encode(`tuanju/v2 pair keys\n${th}`) }, zKey, 512));
  const kt = await hmacKey(k.slice(0, 32));
  const kp = await hmacKey(k.slice(32));
  let sig;
  try {
    sig = unb64url(m.signature || '');
  } catch {
    fail('bad_accept_proof');
  }
  const signedOK = sig.length === 64 && await subtle().verify(ecdsa, deviceKey, sig, enc.encode(`tuanju/v2 pair accept\n${th}`));
  if (!signedOK || !(await macOK(kt, `tuanju/v2 pair accept\n${th}`, m.proof))) fail('bad_accept_proof');
  return { pairId: m.pair_id, th, kp, deviceKey, deviceKeySpki: m.public_key, fingerprint: m.fingerprint };
}

/** newToken is the parent's bearer token, made here and sent in pair_confirm: 32 random bytes, base64url. */
export function newToken() {
  return b64url(crypto.getRandomValues(new Uint8Array(32)));
}

/** confirm builds the pair_confirm that binds the parent's key to this exchange. */
export async function confirm(acc, parentKey) {
  const p = b64url(new Uint8Array(await subtle().exportKey('spki', parentKey.publicKey)));
  const text = `tuanju/v2 pair confirm\n${acc.th}\n${p}`;
  const signature = b64url(new Uint8Array(await subtle().sign(ecdsa, parentKey.privateKey, enc.encode(text))));
  return { type: 'pair_confirm', pair_id: acc.pairId, public_key: p, signature, proof: await mac(acc.kp, text) };
}

/**
 * checkSDP is the one SDP shape both ends accept (pairing.CheckSDP in Go):
 * printable ASCII lines ending in CRLF or LF and nothing else — no other
 * control character, no lone CR, no byte over 0x7E — starting "v=0", ending
 * with a line end, at most 15,000 bytes. A line that one parser reads and
 * another skips is how a relay could slip a second fingerprint past a check;
 * with this rule there is none. It throws 'bad_sdp'.
 */
export function checkSDP(sdp) {
  if (typeof sdp !== 'string' || sdp.length > 15000 || !sdp.startsWith('v=0') || !sdp.endsWith('\n')) throw new Error('bad_sdp');
  for (let i = 0; i < sdp.length; i++) {
    const c = sdp.charCodeAt(i);
    if (c === 10) continue;
    if (c === 13 && sdp.charCodeAt(i + 1) === 10) continue;
    if (c < 0x20 || c > 0x7e) throw new Error('bad_sdp');
  }
}

/**
 * sdpFingerprint returns the one DTLS fingerprint an SDP declares, in
 * canonical form, or throws: the SDP must pass checkSDP, and every
 * a=fingerprint line (the name in any letter case) must be SHA-256 and the
 * same.
 */
export function sdpFingerprint(sdp) {
  checkSDP(sdp);
  let fp = null;
  for (const raw of sdp.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (line.slice(0, 14).toLowerCase() !== 'a=fingerprint:') continue;
    const v = line.slice(14).trim();
    const sp = v.indexOf(' ');
    if (sp < 0) throw new Error('bad_fingerprint');
    const got = `${v.slice(0, sp).toLowerCase()} ${v.slice(sp + 1).trim().toUpperCase()}`;
    if (!FINGERPRINT.test(got) || (fp && got !== fp)) throw new Error('bad_fingerprint');
    fp = got;
  }
  if (!fp) throw new Error('bad_fingerprint');
  return fp;
}

/** sdpHash is the base64url SHA-256 of an SDP's exact bytes (after sdpFingerprint's checks). */
export async function sdpHash(sdp) {
  sdpFingerprint(sdp);
  return b64url(new Uint8Array(await subtle().digest('SHA-256', enc.encode(sdp))));
}

/** newNonce is a fresh call nonce: 256 random bits, base64url (43 characters). */
export function newNonce() {
  return b64url(crypto.getRandomValues(new Uint8Array(32)));
}

const NONCE = /^[A-Za-z0-9_-]{43}$/;

/**
 * callText is exactly what a call message's signature covers
 * (docs/protocol.md, "Calls"): the type, call, time, the ring's and the
 * accept's nonces, and the offer's and answer's SDP hashes, each only from
 * the step that has it on, and an ICE restart's number. b is the call's
 * binding {callId, ringNonce, acceptNonce, offerHash, restart}; h the
 * message's own SDP hash.
 */
function callText(type, b, signedAt, h) {
  const ok = (v) => NONCE.test(v || '');
  if (!validID(b.callId) || !ok(b.ringNonce)) throw new Error('bad_binding');
  let accept = '';
  let offer = '';
  let answer = '';
  if (type !== 'ring') {
    if (!['accept', 'prepare', 'offer', 'answer'].includes(type)) throw new Error('bad_binding');
    // The caller's prepare of its own call signs no accept nonce (the
    // callee's offer brings it): its line stays empty, as pairing/callsig.go.
    const own = type === 'prepare' && !b.acceptNonce;
    if (!own && !ok(b.acceptNonce)) throw new Error('bad_binding');
    accept = own ? '' : b.acceptNonce;
    if (type === 'offer') offer = h;
    if (type === 'answer') {
      if (!ok(b.offerHash)) throw new Error('bad_binding');
      offer = b.offerHash;
      answer = h;
    }
  }
  const text = ['tuanju/v3 call', type, b.callId, signedAt, b.ringNonce, accept, offer, answer].join('\n');
  const restart = b.restart || 0;
  if (!Number.isInteger(restart) || restart < 0 || restart > 1000 || (restart && !hasSDP(type))) throw new Error('bad_binding');
  // An ICE restart's offer and answer sign a ninth line (pairing/callsig.go).
  return restart ? `${text}\nrestart ${restart}` : text;
}

const hasSDP = (type) => type === 'offer' || type === 'answer';

/**
 * signCall returns {signed_at, signature} for a ring, accept or answer over
 * the call's binding b (and, for an answer, its exact sdp).
 */
export async function signCall(privateKey, type, b, sdp) {
  const signedAt = new Date(Math.floor(Date.now() / 1000) * 1000).toISOString().replace('.000Z', 'Z');
  const h = hasSDP(type) ? await sdpHash(sdp) : '';
  const sig = await subtle().sign(ecdsa, privateKey, enc.encode(callText(type, b, signedAt, h)));
  return { signed_at: signedAt, signature: b64url(new Uint8Array(sig)) };
}

/**
 * verifyCall checks that a ring, accept or offer was signed by the paired
 * terminal over the call's binding b (which holds this page's own nonce
 * from the accept on), within the time window, and that an offer passes
 * checkSDP and carries exactly the fingerprint pinned at pairing; the
 * signature covers every byte of it. It resolves to true or false.
 */
export async function verifyCall(pairing, m, b) {
  try {
    const at = Date.parse(m.signed_at);
    if (!(Math.abs(Date.now() - at) <= MAX_SKEW_MS)) return false;
    let h = '';
    if (m.type === 'offer') {
      if (sdpFingerprint(m.sdp) !== pairing.fingerprint) return false;
      h = await sdpHash(m.sdp);
    } else if (m.sdp !== undefined) {
      return false;
    }
    const sig = unb64url(m.signature || '');
    if (sig.length !== 64) return false;
    return await subtle().verify(ecdsa, pairing.deviceKey, sig, enc.encode(callText(m.type, b, m.signed_at, h)));
  } catch {
    return false;
  }
}
