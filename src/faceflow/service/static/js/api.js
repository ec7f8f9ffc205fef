// The faceflow HTTP API as the page uses it: XMLHttpRequest (for upload progress events),
// errors as ApiError with the server's stable code, and the API key kept in sessionStorage.

const KEY_STORAGE = "faceflow.apiKey";

export function storedKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE);
  } catch {
    return null; // storage disabled: the key lives only as long as the page
  }
}

export function storeKey(key) {
  try {
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // Nothing to do: without storage the user is asked again after a reload.
  }
}

/** The codes of a server too busy to answer now (503): trying again later may work. */
export const BUSY = new Set(["overloaded", "queue_full", "deadline_exceeded", "worker_crashed", "unavailable"]);

/** The codes of a refusal for the moment, not of the request: the same request may go through later. */
const FOR_NOW = new Set(["network", "rate_limited", "not_ready", ...BUSY]);

/**
 * An error the API answered with (`{"error": {"code", "message", ...}}`) or a network failure.
 * `proxied` is true for an answer without the API's error body: something in front of faceflow
 * (a proxy, a gateway) answered for it, and `code` is the nearest of the API's codes to its status.
 */
export class ApiError extends Error {
  constructor({ status, code, message, details = {}, retryAfter = null, proxied = false }) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter;
    this.proxied = proxied;
  }

  /** Whether the same request may go through later. By its code, not only by a Retry-After: a
   * proxy's 429 or 503 often comes without one (nginx's limit_req sends none), and faceflow's
   * own always has one. */
  get retryable() {
    return this.retryAfter !== null || FOR_NOW.has(this.code);
  }
}

/** Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or null. */
export function parseRetryAfter(value) {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(1, Math.ceil(seconds));
  const when = Date.parse(value);
  return Number.isNaN(when) ? null : Math.max(1, Math.ceil((when - Date.now()) / 1000));
}

/** Server-Timing as [{name, ms}] in the server's order. */
export function parseServerTiming(value) {
  if (!value) return [];
  return value
    .split(",")
    .map((part) => {
      const [name, ...params] = part.trim().split(";");
      const duration = params.map((p) => p.trim()).find((p) => p.startsWith("dur="));
      return { name: name.trim(), ms: duration ? Number(duration.slice(4)) : null };
    })
    .filter((timing) => timing.name);
}

function parseHeaders(raw) {
  const headers = new Map();
  for (const line of raw.trim().split(/[\r\n]+/)) {
    const at = line.indexOf(":");
    if (at > 0) headers.set(line.slice(0, at).trim().toLowerCase(), line.slice(at + 1).trim());
  }
  return headers;
}

/**
 * The code of an answer without the API's JSON: a proxy's own page, answered before faceflow saw
 * the request (or for a faceflow that is gone). Until 2026-12-07 every 4xx of a proxy read as
 * `bad_request` ("could not read the request"), and its 429 or 503 was not tried again.
 *
 * - 413: the proxy's body limit (nginx's client_max_body_size, 1 MB unless set), which may be
 *   lower than faceflow's own.
 * - 429 and 503: the proxy's rate limit (nginx's limit_req answers 503 unless limit_req_status
 *   says otherwise), or no server behind it to take the request (HAProxy's 503): busy for now.
 * - 502 and 504: faceflow behind it is down, or does not answer (deploy/nginx.conf gives up
 *   connecting after 2 s): for the person the server cannot be reached, and later may work.
 * - 401 and 403: the proxy's own sign-in (basic auth) or access rule; not faceflow's API key, so
 *   their own codes: asking for a key could not get past it.
 * - 408 and 431: the proxy's client_body_timeout and its header limit, as faceflow's own.
 */
const PROXY_CODES = new Map([
  [401, "proxy_unauthorized"],
  [403, "proxy_forbidden"],
  [404, "not_found"],
  [408, "request_timeout"],
  [413, "too_large"],
  [429, "rate_limited"],
  [431, "headers_too_large"],
  [502, "network"],
  [503, "unavailable"],
  [504, "network"],
]);

function codeOfStatus(status) {
  return PROXY_CODES.get(status) ?? (status >= 500 ? "internal" : "bad_request");
}

async function errorFrom(status, headers, blob) {
  let error = null;
  try {
    const body = JSON.parse(await blob.text());
    // Only faceflow's own error body: another JSON (an API gateway's {"message": …}) is a proxy's.
    if (typeof body?.error === "object" && typeof body.error?.code === "string") error = body.error;
  } catch {
    // Not JSON (a proxy's HTML page, say): the status says what happened, below.
  }
  const retryAfter = parseRetryAfter(headers.get("retry-after"));
  if (!error) return new ApiError({ status, code: codeOfStatus(status), message: `HTTP ${status}`, retryAfter, proxied: true });
  const { code, message, ...details } = error;
  return new ApiError({ status, code, message: message ?? `HTTP ${status}`, details, retryAfter });
}

/**
 * One API call. Resolves with {status, headers (Map, lower-case names), blob, elapsedMs,
 * json()} for a 2xx answer; rejects with ApiError otherwise, or with an AbortError DOMException
 * when `signal` aborts it.
 *
 * `image` (a File/Blob) is sent as the multipart field `image`; `onUploadProgress(fraction)` gets
 * 0..1 while it is sent, `onResponseStart()` is called when the answer starts to arrive. `key`
 * overrides the stored API key (to test a new one).
 */
export function request(path, { method = "GET", params = {}, image = null, onUploadProgress = null, onResponseStart = null, signal = null, key = undefined } = {}) {
  const url = new URL(path, document.baseURI);
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, String(value));
  }
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new DOMException("aborted", "AbortError"));
      return;
    }
    const xhr = new XMLHttpRequest();
    const started = performance.now();
    xhr.open(method, url);
    xhr.responseType = "blob";
    const apiKey = key === undefined ? storedKey() : key;
    if (apiKey) xhr.setRequestHeader("Authorization", `Bearer ${apiKey}`);
    if (onUploadProgress) {
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable && event.total > 0) onUploadProgress(event.loaded / event.total);
      });
      xhr.upload.addEventListener("load", () => onUploadProgress(1));
    }
    if (onResponseStart) {
      xhr.addEventListener("readystatechange", () => {
        if (xhr.readyState === XMLHttpRequest.HEADERS_RECEIVED) onResponseStart();
      });
    }
    const onAbort = () => xhr.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    const settle = () => signal?.removeEventListener("abort", onAbort);

    xhr.addEventListener("load", async () => {
      settle();
      const headers = parseHeaders(xhr.getAllResponseHeaders());
      const blob = xhr.response ?? new Blob();
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve({
          status: xhr.status,
          headers,
          blob,
          elapsedMs: performance.now() - started,
          json: async () => JSON.parse(await blob.text()),
        });
      } else {
        reject(await errorFrom(xhr.status, headers, blob));
      }
    });
    xhr.addEventListener("error", () => {
      settle();
      reject(new ApiError({ status: 0, code: "network", message: "the server could not be reached" }));
    });
    xhr.addEventListener("abort", () => {
      settle();
      reject(new DOMException("aborted", "AbortError"));
    });

    let body = null;
    if (image) {
      body = new FormData();
      body.append("image", image, image.name ?? "image");
    }
    xhr.send(body);
  });
}

export function isAbort(error) {
  return error instanceof DOMException && error.name === "AbortError";
}
