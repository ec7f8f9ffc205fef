// What to tell a person about each error code the API can return, and number formatting.

import { BUSY } from "./api.js";
import { language, plural, t } from "./i18n.js";

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

/** The codes of a fault of the server's own (500): its English message meant nothing to a person,
 * and nothing on the Chinese page. */
const SERVER_FAULT = new Set(["internal", "model_error", "unknown_model", "model_missing", "model_checksum_mismatch", "model_fetch_failed"]);

/** " (sheet)" / "（sheet）": the setting the server names, in the page's punctuation. */
const named = (parameter) => (!parameter ? "" : language() === "zh" ? `（${parameter}）` : ` (${parameter})`);

/**
 * {title, text, retryAfter, needsKey} for an ApiError (or anything with code/message/details),
 * in the page's language. `limits` is /v1/info's limits object, when known, to quote the
 * server's actual limits.
 */
export function describeError(error, limits = null) {
  const details = error.details ?? {};
  const retryAfter = error.retryAfter ?? null;
  const code = error.code ?? "internal";
  const said = (title, text, extra = {}) => ({ title: t(title), text: t(text, extra.vars), ...extra.more });
  // A proxy's 503 (api.js codeOfStatus) is no count of photos at work: only that it takes none now.
  if (BUSY.has(code)) return said("error.busy", error.proxied ? "error.busyProxyText" : "error.busyText", { more: { retryAfter } });
  switch (code) {
    case "too_large": {
      const limit = limits?.max_upload_bytes;
      if (!limit) return said("error.tooLarge", "error.tooLargeText");
      // A proxy's 413: its limit is below faceflow's, which quoted alone would read as room to spare.
      return said("error.tooLarge", error.proxied ? "error.tooLargeProxyLimit" : "error.tooLargeLimit", { vars: { limit: formatBytes(limit) } });
    }
    case "unsupported_format":
      return said("error.format", "error.formatText");
    case "undecodable":
      return said("error.undecodable", "error.undecodableText");
    case "too_many_pixels": {
      // The server names the limit of the photo's format (a PNG's is lower than a JPEG's).
      const limit = details.max_pixels ?? limits?.max_pixels;
      // Megapixels in English; Chinese counts in 万 (ten thousand): "4000 万像素", not "40 百万像素".
      const vars = { mp: Math.round(limit / 1e6), wan: Math.round(limit / 1e4) };
      return limit ? said("error.pixels", "error.pixelsLimit", { vars }) : said("error.pixels", "error.pixelsText");
    }
    case "too_many_scans":
      // A PNG or GIF in too many chunks or blocks carries its format; a JPEG's scans do not.
      return said("error.scans", error.format ? "error.piecesText" : "error.scansText");
    case "bad_dimensions": {
      // Said in the page's language from the sides and limits the server names: its message
      // is English.
      const { width, height, min_side_px: min, max_side_px: max } = details;
      if ([width, height, min, max].every(Number.isFinite)) {
        return said("error.dimensions", "error.dimensionsLimit", { vars: { width, height, min, max } });
      }
      return said("error.dimensions", "error.dimensionsText", { vars: { message: error.message } });
    }
    case "empty":
      return said("error.empty", "error.emptyText");
    case "unreadable": // the page's own: the browser could not read the file (uploads.js)
      return said("error.unreadable", "error.unreadableText");
    case "no_face":
      return said("error.noFace", "error.noFaceText");
    case "multiple_faces": {
      const count = Number(details.face_count);
      const found = Number.isFinite(count) && count > 1 ? plural("faces.count", count) : t("error.multipleSome");
      return said("error.multiple", "error.multipleText", { vars: { found } });
    }
    case "no_subject":
      return said("error.noSubject", "error.noSubjectText");
    case "rate_limited":
      return said("error.rate", "error.rateText", { more: { retryAfter } });
    case "not_ready":
      return said("error.starting", "error.startingText", { more: { retryAfter } });
    case "unauthorized":
      return said("error.unauthorized", "error.unauthorizedText", { more: { needsKey: true } });
    case "forbidden":
      return said("error.forbidden", "error.forbiddenText", { more: { needsKey: true } });
    // A proxy's own sign-in or access rule (api.js codeOfStatus): no API key gets past it.
    case "proxy_unauthorized":
      return said("error.signIn", "error.signInText");
    case "proxy_forbidden":
      return said("error.refused", "error.refusedText");
    case "not_found":
      return said("error.notFound", "error.notFoundText");
    case "source_expired":
      return said("error.sourceExpired", "error.sourceExpiredText");
    case "operation_disabled":
      return said("error.disabled", "error.disabledText");
    case "expired":
      return said("error.expired", "error.expiredText");
    case "job_failed":
      return said("error.jobFailed", "error.jobFailedText", { vars: { message: details.failure ?? error.message } });
    case "request_timeout":
      return said("error.timeout", "error.timeoutText");
    case "headers_too_large":
      return said("error.headersTooLarge", "error.headersTooLargeText");
    case "conflict":
      return said("error.conflict", "error.conflictText");
    case "network":
      return said("error.network", "error.networkText", { more: { retryAfter: retryAfter ?? 2 } });
    case "invalid_parameter":
      if (details.min_achievable_kb !== undefined) {
        return said("error.capSmall", "error.capSmallText", { vars: { kb: details.min_achievable_kb } });
      }
      // The page's own fields keep to the server's bounds: a setting refused is a page older than
      // the server, or something in between; the server's English sentence told a person nothing.
      return said("error.rejected", "error.rejectedSettingText", { vars: { parameter: named(details.parameter) } });
    case "out_of_range":
      return said("error.outOfRange", "error.outOfRangeText", { vars: { parameter: details.parameter ?? "", min: details.min ?? "", max: details.max ?? "" } });
    case "missing_field": // the page always sends its photo: something in between lost it
      return said("error.rejected", "error.rejectedMissingText");
    case "bad_request": // also a proxy's 4xx page (api.js codeOfStatus)
      return said("error.rejected", "error.rejectedBadText");
    default:
      if (SERVER_FAULT.has(code) || error.status >= 500) return said("error.other", "error.serverFaultText");
      return { title: t("error.other"), text: error.message || t("error.otherText") };
  }
}
