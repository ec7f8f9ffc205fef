// What to tell a person about each error code the API can return, and number formatting.

export function formatBytes(bytes) {
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(bytes >= 10 * 1024 * 1024 ? 0 : 1)} MB`;
  if (bytes >= 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${bytes} B`;
}

export function formatMs(ms) {
  if (ms === null || !Number.isFinite(ms)) return "–";
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  return `${ms >= 10 ? Math.round(ms) : ms.toFixed(1)} ms`;
}

const BUSY = new Set(["overloaded", "queue_full", "deadline_exceeded", "worker_crashed", "unavailable"]);

/**
 * {title, text, retryAfter, needsKey} for an ApiError (or anything with code/message/details).
 * `limits` is /v1/info's limits object, when known, to quote the server's actual limits.
 */
export function describeError(error, limits = null) {
  const details = error.details ?? {};
  const retryAfter = error.retryAfter ?? null;
  const code = error.code ?? "internal";
  if (BUSY.has(code)) {
    return { title: "The server is busy", text: "Too many photos are being processed right now.", retryAfter };
  }
  switch (code) {
    case "too_large": {
      const limit = limits?.max_upload_bytes;
      return { title: "File too large", text: limit ? `Photos may be at most ${formatBytes(limit)}.` : "This photo is larger than the server accepts." };
    }
    case "unsupported_format":
      return { title: "Not an image", text: "This file is not an image faceflow can read. Choose a JPEG, PNG, WebP or GIF photo." };
    case "undecodable":
      return { title: "Damaged image", text: "The file looks like an image but could not be decoded; it may be truncated or corrupt." };
    case "too_many_pixels": {
      const limit = limits?.max_pixels;
      return { title: "Image too big", text: limit ? `The image has too many pixels (at most ${Math.round(limit / 1e6)} megapixels). Scale it down and try again.` : "The image has too many pixels. Scale it down and try again." };
    }
    case "bad_dimensions":
      return { title: "Unusual image size", text: `The image is too small or its sides are out of range. ${error.message}` };
    case "empty":
      return { title: "Empty file", text: "The file is empty." };
    case "no_face":
      return { title: "No face found", text: "faceflow found no face in this photo. Use a clear, front-facing photo." };
    case "multiple_faces": {
      const count = Number(details.face_count);
      const found = Number.isFinite(count) && count > 1 ? `${count} faces` : "several faces";
      return { title: "Several faces", text: `This photo has ${found}; an ID photo needs exactly one person. Crop the photo to one face.` };
    }
    case "rate_limited":
      return { title: "Too many requests", text: "You have reached this server's request limit.", retryAfter };
    case "not_ready":
      return { title: "The server is starting", text: "The models are still loading.", retryAfter };
    case "unauthorized":
      return { title: "API key needed", text: "This server asks for an API key.", needsKey: true };
    case "forbidden":
      return { title: "API key not accepted", text: "The API key was not accepted. Enter a valid key.", needsKey: true };
    case "not_found":
      return { title: "Not available", text: "This server does not offer that feature." };
    case "conflict":
      return { title: "Not possible right now", text: error.message };
    case "network":
      return { title: "Connection problem", text: "The server could not be reached. Check that faceflow is running.", retryAfter: retryAfter ?? 2 };
    case "invalid_parameter":
      if (details.min_achievable_kb !== undefined) {
        return { title: "Size cap too small", text: `At this size the smallest possible file is ${details.min_achievable_kb} KB. Raise the cap or clear it.` };
      }
      return { title: "Request rejected", text: error.message };
    case "missing_field":
    case "bad_request":
      return { title: "Request rejected", text: error.message };
    default:
      return { title: "Something went wrong", text: error.message || "The server could not process this request." };
  }
}
