// The ID-photo panel: spec, background, shading, format and size cap; a debounced preview through
// POST /v1/id-photo?response=json (the server caches the matte per upload, so recolouring the
// same photo is quick), its compliance report, and downloads of the photo and a print sheet.

import { isAbort, request } from "./api.js";
import { base64ToBlob, byId, debounce, downloadBlob, h } from "./dom.js";
import { formatBytes, formatMs } from "./messages.js";
import { clearNotice, showError, showNotice } from "./notice.js";

const PREVIEW_DELAY_MS = 250;
const DEFAULT_SPEC = "cn-1inch";
const UNITS = { deg: "°", pct: "%", percent: "%" };

function formatNumber(value) {
  return Math.abs(value) >= 100 ? String(Math.round(value)) : String(Number(value.toPrecision(3)));
}

/** A check's value or allowed range as text: numbers rounded, [low, high] as "low–high". */
export function formatValue(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") return formatNumber(value);
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (Array.isArray(value)) return value.map(formatValue).join("–");
  if (typeof value === "object") {
    if ("min" in value || "max" in value) return `${formatValue(value.min)}–${formatValue(value.max)}`;
    return Object.entries(value).map(([k, v]) => `${k} ${formatValue(v)}`).join(", ");
  }
  return String(value);
}

/** "head_height_ratio" → "Head height ratio". */
export function checkLabel(name) {
  const label = String(name).replaceAll("_", " ");
  return label.charAt(0).toUpperCase() + label.slice(1);
}

/** A check's measured value with its unit ("19 mm", "1.27°"). */
export function checkValue(check) {
  const value = formatValue(check.value);
  if (!check.unit || typeof check.value !== "number") return value;
  const unit = UNITS[check.unit] ?? check.unit;
  return unit.length === 1 && !/[a-z]/i.test(unit) ? `${value}${unit}` : `${value} ${unit}`;
}

/** "EU passport · 35×45 mm"; a title that already names its size is kept as it is. */
function specTitle(spec) {
  return spec.title.includes("mm") ? spec.title : `${spec.title} · ${spec.width_mm}×${spec.height_mm} mm`;
}

function badge(status) {
  return h("span", { className: `badge badge--${status}` }, status);
}

function checkItem(check) {
  const allowed = check.allowed !== undefined && check.allowed !== null ? h("small", {}, ` · allowed ${formatValue(check.allowed)}`) : null;
  return h(
    "li",
    { className: `check check--${check.status}` },
    badge(check.status),
    h("span", { className: "check__name" }, checkLabel(check.name)),
    h("span", { className: "check__value" }, checkValue(check), allowed),
    check.note ? h("span", { className: "check__note" }, check.note) : null,
  );
}

export class IdPhotoPanel {
  #form = byId("idphoto-form");
  #spec = byId("spec");
  #specDetail = byId("spec-detail");
  #swatches = byId("swatches");
  #customRadio = byId("background-custom");
  #customColour = byId("custom-colour");
  #customChip = byId("custom-chip");
  #gradient = byId("gradient");
  #format = byId("format");
  #maxKb = byId("max-kb");
  #maxKbError = byId("max-kb-error");
  #transparent = byId("transparent");
  #notice = byId("idphoto-notice");
  #result = byId("idphoto-result");
  #preview = byId("idphoto-preview");
  #image = byId("idphoto-img");
  #busy = byId("idphoto-busy");
  #facts = byId("idphoto-facts");
  #checks = byId("checks");
  #issues = byId("issues");
  #summary = byId("report-summary");
  #allChecks = byId("all-checks-summary");
  #status = byId("report-status");
  #empty = byId("idphoto-empty");
  #make = byId("make-idphoto");
  #downloadPhoto = byId("download-photo");
  #sheet = byId("sheet");
  #downloadSheet = byId("download-sheet");

  #specs = new Map();
  #available = false;
  #source = null; // the Photo the panel works on
  #controller = null;
  #made = null; // {blob, params} of the shown preview
  #imageUrl = null;
  #schedule = debounce(() => this.make({ unlessShown: true }), PREVIEW_DELAY_MS);

  constructor(queue, { limits, askKey }) {
    this.queue = queue;
    this.limits = limits;
    this.askKey = askKey;
    queue.addEventListener("change", () => this.#follow(queue.selected));
    this.#form.addEventListener("submit", (event) => event.preventDefault());
    this.#form.addEventListener("change", (event) => this.#changed(event));
    this.#customColour.addEventListener("input", () => {
      this.#customRadio.checked = true;
      this.#changed();
    });
    this.#maxKb.addEventListener("input", () => this.#changed());
    this.#make.addEventListener("click", () => {
      this.#schedule.cancel();
      this.make();
    });
    this.#downloadPhoto.addEventListener("click", () => this.#savePhoto());
    this.#downloadSheet.addEventListener("click", () => this.#saveSheet());
    this.#paintCustomChip();
  }

  /** Load the specs; without the ID-photo API the panel says so and stays disabled. */
  async init() {
    try {
      const response = await request("v1/id-photo/specs");
      const { specs, sheets } = await response.json();
      if (Array.isArray(sheets) && sheets.length) {
        this.#sheet.replaceChildren(...sheets.map((paper) => h("option", { value: paper.key }, paper.title)));
      }
      this.#specs = new Map(specs.map((spec) => [spec.key, spec]));
      this.#spec.replaceChildren(
        ...specs.map((spec) => h("option", { value: spec.key }, specTitle(spec))),
      );
      this.#spec.value = this.#specs.has(DEFAULT_SPEC) ? DEFAULT_SPEC : (specs[0]?.key ?? "");
      this.#available = specs.length > 0;
      this.#describeSpec();
    } catch (error) {
      this.#available = false;
      this.#setEnabled(false);
      this.#empty.hidden = true;
      if (error.code === "not_found") {
        showNotice(this.#notice, { tone: "info", title: "ID photos unavailable", text: "This server does not offer the ID-photo API." });
      } else {
        showError(this.#notice, error, { onRetry: () => this.init() });
      }
      return;
    }
    this.#setEnabled(true);
    this.#follow(this.queue.selected);
  }

  #setEnabled(enabled) {
    for (const control of this.#form.elements) control.disabled = !enabled;
    if (enabled) this.#syncTransparent();
    this.#updateButtons();
  }

  #describeSpec() {
    const spec = this.#specs.get(this.#spec.value);
    this.#specDetail.textContent = spec ? `${spec.width_px}×${spec.height_px} px at ${spec.dpi} dpi` : "";
  }

  #paintCustomChip() {
    this.#customChip.style.setProperty("--chip", this.#customColour.value);
  }

  /** Disable what the server would refuse: a transparent background is PNG only, and the size
   * cap applies to JPEG only. */
  #syncTransparent() {
    const transparent = this.#transparent.checked;
    if (transparent) this.#format.value = "png";
    this.#format.disabled = transparent;
    this.#swatches.disabled = transparent;
    this.#gradient.disabled = transparent;
    this.#maxKb.disabled = this.#format.value !== "jpeg";
  }

  #changed(event) {
    if (event?.target === this.#spec) this.#describeSpec();
    if (event?.target === this.#transparent || event?.target === this.#format) this.#syncTransparent();
    this.#paintCustomChip();
    const validKb = this.#maxKb.checkValidity() && (this.#maxKb.value === "" || Number.isInteger(Number(this.#maxKb.value)));
    this.#maxKbError.hidden = validKb;
    this.#maxKb.setAttribute("aria-invalid", String(!validKb));
    if (!validKb) {
      this.#schedule.cancel();
      return;
    }
    if (this.#source) this.#schedule();
  }

  /** The query for the current choices. */
  #params() {
    const chosen = this.#form.elements.namedItem("background").value;
    const params = {
      spec: this.#spec.value,
      background: chosen === "custom" ? this.#customColour.value : chosen,
      gradient: this.#gradient.value,
    };
    return params;
  }

  #follow(photo) {
    const ready = photo?.status === "done" ? photo : null;
    if (ready === this.#source || !this.#available) return;
    this.#source = ready;
    this.#schedule.cancel();
    this.#controller?.abort();
    this.#clearResult();
    clearNotice(this.#notice);
    this.#empty.hidden = Boolean(ready);
    this.#updateButtons();
    if (!ready) return;
    const count = ready.result.face_count;
    if (count === 1) {
      this.make();
    } else {
      const code = count === 0 ? "no_face" : "multiple_faces";
      showError(this.#notice, { code, message: "", details: { face_count: count } });
    }
  }

  #clearResult() {
    this.#made = null;
    this.#result.hidden = true;
    this.#status.hidden = true;
    if (this.#imageUrl) URL.revokeObjectURL(this.#imageUrl);
    this.#imageUrl = null;
  }

  #updateButtons(busy = false) {
    const usable = this.#available && Boolean(this.#source);
    this.#make.disabled = !usable || busy;
    this.#downloadPhoto.disabled = !usable || busy || !this.#made;
    this.#downloadSheet.disabled = !usable || !this.#made;
    this.#sheet.disabled = !usable;
  }

  /**
   * Make the preview for the current choices now, replacing any request still running. With
   * `unlessShown`, choices that end where they started (a colour dragged and put back) cost nothing.
   */
  async make({ unlessShown = false } = {}) {
    const photo = this.#source;
    if (!photo || !this.#available) return;
    const params = { ...this.#params(), format: this.#format.value, transparent: this.#transparent.checked, max_kb: this.#maxKb.disabled ? "" : this.#maxKb.value, response: "json" };
    if (unlessShown && !this.#controller && this.#made && JSON.stringify(this.#made.params) === JSON.stringify(params)) return;
    this.#controller?.abort();
    const controller = new AbortController();
    this.#controller = controller;
    this.#busy.hidden = false;
    this.#preview.setAttribute("aria-busy", "true");
    this.#updateButtons(true);
    try {
      const response = await request("v1/id-photo", { method: "POST", params, image: photo.file, signal: controller.signal });
      const body = await response.json();
      if (controller.signal.aborted) return;
      clearNotice(this.#notice);
      this.#show(body, response, params);
    } catch (error) {
      if (isAbort(error)) return;
      if ((error.code === "unauthorized" || error.code === "forbidden") && (await this.askKey(error))) {
        this.make();
        return;
      }
      this.#clearResult();
      showError(this.#notice, error, { limits: this.limits(), onRetry: error.retryable ? () => this.make() : null });
    } finally {
      if (this.#controller === controller) {
        this.#controller = null;
        this.#busy.hidden = true;
        this.#preview.removeAttribute("aria-busy");
        this.#updateButtons();
      }
    }
  }

  #show(body, response, params) {
    const blob = base64ToBlob(body.image_base64, body.media_type);
    if (this.#imageUrl) URL.revokeObjectURL(this.#imageUrl);
    this.#imageUrl = URL.createObjectURL(blob);
    this.#image.src = this.#imageUrl;
    this.#image.width = body.width;
    this.#image.height = body.height;
    this.#made = { blob, params, mediaType: body.media_type };
    this.#result.hidden = false;
    const cache = response.headers.get("x-cache");
    const facts = [
      `${body.width}×${body.height} px`,
      body.dpi ? `${body.dpi} dpi` : null,
      formatBytes(blob.size),
      formatMs(response.elapsedMs),
      cache ? `cache ${cache}` : null,
    ].filter(Boolean);
    // One span per fact, so a line breaks between facts, never inside one.
    this.#facts.replaceChildren(...facts.flatMap((fact, i) => [i ? " · " : "", h("span", {}, fact)]));
    const report = body.report ?? { status: "pass", checks: [] };
    this.#status.hidden = false;
    this.#status.className = `badge badge--${report.status}`;
    this.#status.textContent = { pass: "Compliant", warn: "Check warnings", fail: "Not compliant" }[report.status] ?? report.status;
    const checks = report.checks ?? [];
    const counts = { pass: 0, warn: 0, fail: 0 };
    for (const check of checks) counts[check.status] = (counts[check.status] ?? 0) + 1;
    this.#summary.textContent =
      counts.warn || counts.fail
        ? [`${counts.pass} passed`, counts.warn ? `${counts.warn} ${counts.warn === 1 ? "warning" : "warnings"}` : null, counts.fail ? `${counts.fail} failed` : null].filter(Boolean).join(" · ")
        : `All ${checks.length} checks passed`;
    // Warnings and failures are shown with their notes; the full list is one click away.
    this.#issues.replaceChildren(...checks.filter((check) => check.status !== "pass").map(checkItem));
    this.#checks.replaceChildren(...checks.map(checkItem));
    this.#allChecks.textContent = `All ${checks.length} checks`;
  }

  #savePhoto() {
    if (!this.#made) return;
    const extension = this.#made.mediaType === "image/png" ? "png" : "jpg";
    downloadBlob(this.#made.blob, `id-photo-${this.#made.params.spec}.${extension}`);
  }

  async #saveSheet() {
    const photo = this.#source;
    if (!photo) return;
    const label = this.#downloadSheet.textContent;
    this.#downloadSheet.disabled = true;
    this.#downloadSheet.textContent = "Preparing…";
    const params = { ...this.#params(), sheet: this.#sheet.value };
    try {
      const response = await request("v1/id-photo/sheet", { method: "POST", params, image: photo.file });
      downloadBlob(response.blob, `id-photo-${params.spec}-sheet-${params.sheet}.jpg`);
    } catch (error) {
      showError(this.#notice, error, { limits: this.limits(), onRetry: error.retryable ? () => this.#saveSheet() : null });
    } finally {
      this.#downloadSheet.textContent = label;
      this.#updateButtons();
    }
  }
}
