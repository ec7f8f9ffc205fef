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

/** An error the API answered with (`{"error": {"code", "message", ...}}`) or a network failure. */
export class ApiError extends Error {
  constructor({ status, code, message, details = {}, retryAfter = null }) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter;
  }

  get retryable() {
    return this.retryAfter !== null || this.code === "network";
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

/** The code of an answer without the API's JSON: a proxy's page. A proxy in front of faceflow
 * (deploy/nginx.conf) answers 502 or 504 itself when faceflow is down or does not answer: for the
 * person, the server cannot be reached, and trying again later may work. */
function codeOfStatus(status) {
  if (status === 404) return "not_found";
  if (status === 502 || status === 504) return "network";
  return status >= 500 ? "internal" : "bad_request";
}

async function errorFrom(status, headers, blob) {
  let error = {};
  try {
    error = JSON.parse(await blob.text()).error ?? {};
  } catch {
    // Not our JSON (a proxy's HTML page, say): fall back to the status line below.
  }
  const { code, message, ...details } = error;
  return new ApiError({
    status,
    code: code ?? codeOfStatus(status),
    message: message ?? `HTTP ${status}`,
    details,
    retryAfter: parseRetryAfter(headers.get("retry-after")),
  });
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
