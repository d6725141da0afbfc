// Words on screen come from one dictionary per language: zh-CN by default, English on request.
import zhCN from "./i18n/zh-CN.js";
import en from "./i18n/en.js";

const DICTIONARIES = { "zh-CN": zhCN, en };
const KEY = "prepaid.lang";
let current = DICTIONARIES[localStorage.getItem(KEY)] ? localStorage.getItem(KEY) : "zh-CN";
document.documentElement.lang = current;

export function lang() {
  return current;
}

export function setLang(code) {
  current = DICTIONARIES[code] ? code : "zh-CN";
  localStorage.setItem(KEY, current);
  document.documentElement.lang = current;
}

export function otherLang() {
  return current === "zh-CN" ? "en" : "zh-CN";
}

// The text of `key` with {name} placeholders filled; the key itself if a word is missing.
export function t(key, vars = {}) {
  const text = DICTIONARIES[current][key] ?? DICTIONARIES.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (vars[name] ?? `{${name}}`).toString());
}
