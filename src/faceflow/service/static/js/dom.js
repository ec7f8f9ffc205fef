// Small DOM helpers shared by the page's modules.

/** The element with this id; throws early when the page and the script disagree. */
export function byId(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`missing element #${id}`);
  return element;
}

/**
 * Create an element: h("td", {className: "num"}, "42"). Properties are assigned, except
 * `dataset`/`attrs` (merged as data- and plain attributes); children may be strings or nodes.
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  const { dataset, attrs, ...rest } = props;
  Object.assign(element, rest);
  if (dataset) Object.assign(element.dataset, dataset);
  if (attrs) for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, value);
  element.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return element;
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** An SVG element with attributes. */
export function svg(tag, attrs = {}) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, String(value));
  return element;
}

/** Call `fn` once `waitMs` have passed without another call; `.flush()` runs a pending call now. */
export function debounce(fn, waitMs) {
  let timer = 0;
  let pending = null;
  const debounced = (...args) => {
    pending = args;
    clearTimeout(timer);
    timer = setTimeout(() => {
      const callArgs = pending;
      pending = null;
      fn(...callArgs);
    }, waitMs);
  };
  debounced.cancel = () => {
    clearTimeout(timer);
    pending = null;
  };
  return debounced;
}

/** Save a blob under a file name through a temporary link (no pop-up, CSP-friendly). */
export function downloadBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  // The download has started by now; keep the URL a little longer for slow browsers.
  setTimeout(() => URL.revokeObjectURL(url), 30_000);
}

/** A file name without its extension, safe to build download names from ("a/b.jpg" → "a_b"). */
export function baseName(fileName) {
  const name = fileName || "photo";
  const dot = name.lastIndexOf(".");
  return (dot > 0 ? name.slice(0, dot) : name).replace(/[\\/:*?"<>|]+/g, "_") || "photo";
}

/** A Blob from base64 text, as the JSON responses carry images. */
export function base64ToBlob(text, mediaType) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return new Blob([bytes], { type: mediaType });
}
