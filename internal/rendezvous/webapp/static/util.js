// Small encoding helpers shared by the page's modules. The formats are the
// ones docs/protocol.md fixes: IDs are 16 random bytes as lower-case base32
// without padding (26 characters); binary values are base64url without padding.

const B32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** base32 encodes bytes as lower-case RFC 4648 base32 without padding. */
export function base32(bytes) {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = ((value << 8) | b) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}

/** newID returns a fresh random ID (call_id) of 26 characters. */
export function newID() {
  return base32(crypto.getRandomValues(new Uint8Array(16)));
}

const idPattern = /^[a-z2-7]{26}$/;

/** validID reports whether s has the shape of a protocol ID. */
export function validID(s) {
  return typeof s === 'string' && idPattern.test(s);
}

/** b64url encodes bytes as base64url without padding. */
export function b64url(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** unb64url decodes base64url without padding; it throws on anything else. */
export function unb64url(s) {
  if (typeof s !== 'string' || !/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) {
    throw new Error('not base64url');
  }
  const bin = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** randomB64url returns n random bytes as base64url. */
export function randomB64url(n) {
  return b64url(crypto.getRandomValues(new Uint8Array(n)));
}

/** dataUsed formats a byte count for people who pay per MB (the same in both languages). */
export function dataUsed(bytes) {
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}
