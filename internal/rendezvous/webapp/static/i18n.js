// The page's language: Simplified Chinese unless the browser asks for
// English first (navigator.languages); one language at a time, every
// sentence from the table in messages.js (loaded before the modules by
// index.html), which the service worker shares.

const I = self.tuanjuI18n;

/** lang is the page's language, "zh" or "en". */
export const lang = I.pick(navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language]);

/** t is the sentence key in the page's language, with its parameters. */
export function t(key, params) {
  return I.format(lang, key, params);
}

/** say puts the sentence key into el (its only text). */
export function say(el, key, params) {
  el.textContent = t(key, params);
}

/** list joins words as a sentence of the page's language lists them. */
export function list(words) {
  return words.reduce((a, b) => (a === null ? b : t('list.join', { a, b })), null) || '';
}

/**
 * applyPage sets <html lang> and fills every element with a data-msg
 * attribute with its sentence: index.html carries the Chinese, which an
 * English page replaces.
 */
export function applyPage() {
  document.documentElement.lang = I.htmlLang(lang);
  for (const el of document.querySelectorAll('[data-msg]')) say(el, el.dataset.msg);
  document.title = t('app.title');
}
