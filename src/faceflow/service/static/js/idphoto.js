// The ID-photo panel: spec, background, shading, format and size cap; a debounced preview through
// POST /v1/id-photo?response=json, its compliance report, and downloads of the photo and a print
// sheet. The photo is uploaded once: the answer names it (X-Source, its content key) and every
// later change refers to it with `source=`, while the server still has its cut-out; when it no
// longer does (404 source_expired) the photo is sent again.

import { isAbort, request } from "./api.js";
import { base64ToBlob, baseName, byId, debounce, downloadBlob, h } from "./dom.js";
import { faceLabel, leftToRight } from "./faces.js";
import { checkHint, checkName, hasText, language, onLanguageChange, plural, specName, t } from "./i18n.js";
import { formatBytes, formatMs } from "./messages.js";
import { clearNotice, showError, showNotice } from "./notice.js";
import { PreviewDialog } from "./preview.js";
import { fillPrintSheet } from "./printreport.js";
import { AutoRetry } from "./retry.js";
import { uploadFor } from "./shrink.js";

const PREVIEW_DELAY_MS = 250;
const DEFAULT_SPEC = "cn-1inch";
const UNITS = { deg: "°", pct: "%", percent: "%" };

/** The face of several a person most likely wants: the biggest, counted from 1 left to right. */
function largestFace(faces) {
  const area = (face) => (face.box[2] - face.box[0]) * (face.box[3] - face.box[1]);
  let best = 0;
  faces.forEach((face, index) => {
    if (area(face) > area(faces[best])) best = index;
  });
  return best + 1;
}

function formatNumber(value) {
  return Math.abs(value) >= 100 ? String(Math.round(value)) : String(Number(value.toPrecision(3)));
}

/** A check's value or allowed range as text: numbers rounded, [low, high] as "low–high". */
export function formatValue(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") return formatNumber(value);
  if (typeof value === "boolean") return t(value ? "value.yes" : "value.no");
  // Words the server measures (a check's "none", "mouth covered"), in the page's language.
  if (typeof value === "string" && hasText(`value.${value}`)) return t(`value.${value}`);
  if (Array.isArray(value)) return value.map(formatValue).join("–");
  if (typeof value === "object") {
    if ("min" in value || "max" in value) return `${formatValue(value.min)}–${formatValue(value.max)}`;
    return Object.entries(value).map(([k, v]) => `${k} ${formatValue(v)}`).join(", ");
  }
  return String(value);
}

/** A bound in a limit's unit: "25 mm", "8°", "2%" (fractions as percentages). */
function limitNumber(value, unit) {
  if (unit === "fraction") return `${formatNumber(value * 100)}%`;
  const text = formatNumber(value);
  if (!unit) return text;
  const shown = UNITS[unit] ?? unit;
  return shown.length === 1 && !/[a-z]/i.test(shown) ? `${text}${shown}` : `${text} ${shown}`;
}

/**
 * What a check allows (the server's `limit`: min/max in a unit, what it measures, accepted
 * values or a rule) worded in the page's language; null when the server sent no limit.
 */
export function formatLimit(limit) {
  if (!limit || typeof limit !== "object") return null;
  if (limit.rule) return t(`limit.rule.${limit.rule}`);
  if (limit.one_of) return limit.one_of.map((name) => (hasText(`bg.${name}`) ? t(`bg.${name}`) : name)).join(t("limit.or"));
  const { min, max } = limit;
  const unit = limit.unit ?? "";
  let bound;
  if (min != null && max != null) {
    if (min === max) bound = t("limit.exactly", { n: limitNumber(min, unit) });
    else if (min === -max) bound = `±${limitNumber(max, unit)}`;
    else bound = `${limitNumber(min, unit === "fraction" ? unit : "")}–${limitNumber(max, unit)}`;
  } else if (min != null) bound = `≥ ${limitNumber(min, unit)}`;
  else if (max != null) bound = `≤ ${limitNumber(max, unit)}`;
  else return null;
  const text = limit.of ? t(`limit.of.${limit.of}`, { bound }) : bound;
  const also = limit.also ? formatLimit(limit.also) : null;
  return also ? t("limit.also", { main: text, also }) : text;
}

/** A check's allowed values in the page's language: its limit, else (English only) the text. */
export function checkAllowed(check) {
  const worded = formatLimit(check.limit);
  if (worded) return worded;
  return language() === "en" && check.allowed ? String(check.allowed) : null;
}

/** A check's name in the page's language. */
export function checkLabel(name) {
  return checkName(name);
}

/** A check's measured value with its unit ("19 mm", "1.27°"). */
export function checkValue(check) {
  // The server could not measure it (a busy backdrop): say so, not a bare dash.
  if (check.value === null || check.value === undefined) return t("value.notMeasured");
  // A fraction is shown in percent, as its limit is worded: "16.4%" against "≤ 12%", not 0.164.
  if (typeof check.value === "number" && !check.unit && check.limit?.unit === "fraction") return limitNumber(check.value, "fraction");
  const value = formatValue(check.value);
  if (!check.unit || typeof check.value !== "number") return value;
  const unit = UNITS[check.unit] ?? check.unit;
  return unit.length === 1 && !/[a-z]/i.test(unit) ? `${value}${unit}` : `${value} ${unit}`;
}

/** "EU passport · 35×45 mm"; a title that already names its size is kept as it is. */
function specTitle(spec) {
  const name = specName(spec);
  return name.includes("mm") ? name : `${name} · ${spec.width_mm}×${spec.height_mm} mm`;
}

function badge(status) {
  return h("span", { className: `badge badge--${status}` }, t(`badge.${status}`));
}

function checkItem(check) {
  const limit = checkAllowed(check);
  const allowed = limit ? h("small", {}, t("check.allowed", { value: limit })) : null;
  // The fix hint in the page's language when the server gives one; the measurement note (English,
  // from the server) in English only.
  const hint = check.status !== "pass" ? checkHint(check) : null;
  const note = language() === "en" ? check.note : null;
  return h(
    "li",
    { className: `check check--${check.status}` },
    badge(check.status),
    h("span", { className: "check__name" }, checkLabel(check.name)),
    h("span", { className: "check__value" }, checkValue(check), allowed),
    note ? h("span", { className: "check__note" }, note) : null,
    hint ? h("span", { className: "check__hint" }, hint) : null,
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
  #stale = byId("idphoto-stale");
  #facts = byId("idphoto-facts");
  #checks = byId("checks");
  #issues = byId("issues");
  #summary = byId("report-summary");
  #allChecks = byId("all-checks-summary");
  #status = byId("report-status");
  #empty = byId("idphoto-empty");
  #make = byId("make-idphoto");
  #makeReason = byId("make-reason");
  #downloadPhoto = byId("download-photo");
  #sheet = byId("sheet");
  #downloadSheet = byId("download-sheet");
  #downloadReport = byId("download-report");
  #progress = byId("idphoto-progress");
  #progressBar = byId("idphoto-progress-bar");
  #progressLabel = byId("idphoto-progress-label");
  #progressValue = byId("idphoto-progress-value");
  #announce = byId("idphoto-announce");
  #faceField = byId("face-field");
  #facePick = byId("face-pick");
  #nudges = [...byId("nudges").querySelectorAll("input[type=range]")];
  #nudgeReset = byId("nudge-reset");
  #touched = new Set(); // the nudges the person moved; the others follow the automatic layout
  #facesOf = null; // the photo whose faces the person picker lists
  #previewDialog = new PreviewDialog();

  #specs = new Map();
  #available = false;
  #source = null; // the Photo the panel works on
  #controller = null;
  #uploading = null; // {photo, cut} while the request on its way sends the photo itself
  #again = false; // the choices changed during that upload: make them once it is answered
  #made = null; // {blob, params, body, response} of the shown preview
  #specList = [];
  #papers = [];
  #bounds = {}; // [min, max] of the options with fixed bounds, as the server checks them
  #imageUrl = null;
  #said = null; // shows the notice on show, again in another language
  #sheetBusy = false; // a print sheet is on its way: one at a time
  #phase = null; // [phase, fraction] of the progress on show, to say again in another language
  #failed = false; // the last render failed: the photo on show is an older one
  #autoRetry = new AutoRetry(); // the render's, after a 429
  #sheetRetry = new AutoRetry(); // the print sheet's, after a 429
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
    for (const slider of this.#nudges) {
      slider.addEventListener("input", () => {
        this.#touched.add(slider.dataset.nudge);
        this.#showNudge(slider);
      });
    }
    this.#nudgeReset.addEventListener("click", () => {
      this.#touched.clear();
      this.make();
    });
    byId("preview-open").addEventListener("click", () => this.#openPreview());
    byId("print-report").addEventListener("click", () => this.#printReport());
    this.#make.addEventListener("click", () => {
      this.#schedule.cancel();
      this.make();
    });
    this.#downloadPhoto.addEventListener("click", () => this.#savePhoto());
    this.#downloadSheet.addEventListener("click", () => this.#saveSheet());
    this.#downloadReport.addEventListener("click", () => this.#saveReport());
    this.#paintCustomChip();
    onLanguageChange(() => this.#relabel());
  }

  /** An ID photo or a print sheet is on its way (leaving the page now would lose it). */
  get busy() {
    return Boolean(this.#controller) || this.#sheetBusy;
  }

  /** Redraw what this panel wrote in the old language. */
  #relabel() {
    this.#fillSelects();
    this.#applyBounds();
    const touched = new Set(this.#touched);
    const values = this.#nudges.map((slider) => slider.value);
    this.#describeSpec();
    // A new language changes no choice: the nudges stay where they were.
    this.#touched = touched;
    this.#nudges.forEach((slider, index) => {
      slider.value = values[index];
      this.#showNudge(slider);
    });
    this.#fillFaces(this.#source);
    if (this.#made) this.#show(this.#made.body, this.#made.response, this.#made.params);
    this.#syncStale();
    if (this.#phase) this.#setProgress(...this.#phase);
    // The data-i18n pass put the idle words back on a button still at work.
    if (this.#sheetBusy) this.#downloadSheet.textContent = t("idphoto.preparing");
    // The notice still on show (a Retry clears it) is said again in the new language.
    if (this.#notice.querySelector(".notice")) this.#said?.();
  }

  /** Show a notice with `say()`, and again with it whenever the language changes. */
  #say(say) {
    this.#said = say;
    say();
  }

  #unsay() {
    this.#said = null;
    clearNotice(this.#notice);
  }

  /** The size cap's range, the server's own (/v1/id-photo/specs `bounds`), so the page refuses
   * exactly what the server would, and says so in the current language. */
  #applyBounds() {
    const [low, high] = this.#bounds.max_kb ?? [];
    if (low === undefined || high === undefined) return;
    this.#maxKb.min = String(low);
    this.#maxKb.max = String(high);
    this.#maxKbError.textContent = t("idphoto.maxKbError", { min: low, max: high });
  }

  #fillSelects() {
    if (this.#papers.length) {
      const chosen = this.#sheet.value;
      this.#sheet.replaceChildren(...this.#papers.map((paper) => h("option", { value: paper.key }, t(`sheet.${paper.key}`) === `sheet.${paper.key}` ? paper.title : t(`sheet.${paper.key}`))));
      if (chosen) this.#sheet.value = chosen;
    }
    if (this.#specList.length) {
      const chosen = this.#spec.value;
      this.#spec.replaceChildren(...this.#specList.map((spec) => h("option", { value: spec.key }, specTitle(spec))));
      if (chosen) this.#spec.value = chosen;
    }
  }

  /** Load the specs; without the ID-photo API the panel says so and stays disabled. */
  async init() {
    try {
      const response = await request("v1/id-photo/specs");
      const { specs, sheets, bounds } = await response.json();
      if (Array.isArray(sheets) && sheets.length) this.#papers = sheets;
      this.#bounds = bounds ?? {};
      this.#applyBounds();
      this.#specs = new Map(specs.map((spec) => [spec.key, spec]));
      this.#specList = specs;
      this.#fillSelects();
      this.#spec.value = this.#specs.has(DEFAULT_SPEC) ? DEFAULT_SPEC : (specs[0]?.key ?? "");
      this.#available = specs.length > 0;
      this.#describeSpec();
    } catch (error) {
      this.#available = false;
      this.#setEnabled(false);
      this.#empty.hidden = true;
      if (error.code === "not_found") {
        this.#say(() => showNotice(this.#notice, { tone: "info", title: t("idphoto.unavailable"), text: t("idphoto.unavailableText") }));
      } else {
        this.#say(() => showError(this.#notice, error, { onRetry: () => this.init() }));
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
    this.#specDetail.textContent = spec ? t("idphoto.specDetail", { width: spec.width_px, height: spec.height_px, dpi: spec.dpi }) : "";
    // Each size has its own ranges: the sliders span them, and earlier nudges no longer apply.
    this.#touched.clear();
    for (const slider of this.#nudges) {
      const [low, high] = spec?.nudges?.[slider.dataset.nudge] ?? [0, 0];
      slider.min = String(low);
      slider.max = String(high);
      slider.value = String(slider.dataset.nudge.endsWith("_mm") && low > 0 ? (low + high) / 2 : 0);
      this.#showNudge(slider);
    }
  }

  #showNudge(slider) {
    const value = Number(slider.value);
    const text = slider.dataset.nudge === "roll_deg" ? t("nudge.deg", { value: value.toFixed(1) }) : t("nudge.mm", { value: value.toFixed(1) });
    byId(`${slider.id}-value`).textContent = text;
    slider.setAttribute("aria-valuetext", text);
  }

  /** Untouched sliders show where the automatic layout put the head (from the report). */
  #syncNudges(report, spec) {
    const measured = Object.fromEntries((report.checks ?? []).map((check) => [check.name, check.value]));
    const auto = {
      head_mm: typeof measured.head_height_ratio === "number" && spec ? measured.head_height_ratio * spec.height_mm : null,
      eye_line_mm: typeof measured.eye_line === "number" ? measured.eye_line : null,
      shift_mm: 0,
      roll_deg: 0,
    };
    for (const slider of this.#nudges) {
      const value = auto[slider.dataset.nudge];
      if (this.#touched.has(slider.dataset.nudge) || value === null) continue;
      slider.value = String(value);
      this.#showNudge(slider);
    }
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
    if (event?.target === this.#facePick) this.#touched.clear(); // another person, another head
    if (event?.target === this.#transparent || event?.target === this.#format) this.#syncTransparent();
    this.#paintCustomChip();
    const validKb = this.#maxKbValid();
    this.#maxKbError.hidden = validKb;
    this.#maxKb.setAttribute("aria-invalid", String(!validKb));
    if (!validKb) {
      this.#schedule.cancel();
    } else if (this.#source) {
      // A click (a colour, a size, a format) renders at once; typing and dragging a colour wait
      // until they pause.
      if (event?.type === "change" && event.target !== this.#maxKb && event.target !== this.#customColour) {
        this.#schedule.cancel();
        this.make({ unlessShown: true });
      } else {
        this.#schedule();
      }
    }
    this.#syncStale();
  }

  #maxKbValid() {
    return this.#maxKb.disabled || (this.#maxKb.checkValidity() && (this.#maxKb.value === "" || Number.isInteger(Number(this.#maxKb.value))));
  }

  /** The query for the current choices, as the preview is asked for. */
  #choices() {
    return { ...this.#params(), format: this.#format.value, transparent: this.#transparent.checked, max_kb: this.#maxKb.disabled ? "" : this.#maxKb.value, response: "json" };
  }

  /**
   * Why the photo on show is not the current choices' (null when it is): a field the page cannot
   * send, a render on its way (or about to start), or a render that failed. The photo stays, dimmed
   * and labelled, and cannot be downloaded, so a preview never silently disagrees with the form.
   */
  #staleness() {
    if (!this.#made) return null;
    if (!this.#maxKbValid()) return "maxKb";
    if (this.#controller) return "updating";
    if (JSON.stringify(this.#choices()) === JSON.stringify(this.#made.params)) return null;
    return this.#failed ? "failed" : "updating";
  }

  #syncStale() {
    const reason = this.#staleness();
    this.#result.classList.toggle("idphoto__result--stale", reason !== null);
    this.#status.classList.toggle("badge--stale", reason !== null); // the verdict is the old photo's too
    this.#busy.hidden = reason !== "updating";
    this.#stale.hidden = reason === null || reason === "updating";
    if (reason !== null && reason !== "updating") this.#stale.textContent = t(`idphoto.stale.${reason}`);
    this.#updateButtons();
  }

  /** The query for the current choices. */
  #params() {
    const chosen = this.#form.elements.namedItem("background").value;
    const params = {
      spec: this.#spec.value,
      background: chosen === "custom" ? this.#customColour.value : chosen,
      gradient: this.#gradient.value,
    };
    if (!this.#faceField.hidden) params.face = this.#facePick.value;
    for (const slider of this.#nudges) {
      if (this.#touched.has(slider.dataset.nudge)) params[slider.dataset.nudge] = slider.value;
    }
    return params;
  }

  #follow(photo) {
    const ready = photo?.status === "done" ? photo : null;
    if (ready === this.#source || !this.#available) return;
    this.#source = ready;
    this.#schedule.cancel();
    this.#autoRetry.reset();
    this.#sheetRetry.reset();
    this.#controller?.abort();
    this.#uploading = null;
    this.#again = false;
    this.#clearResult();
    this.#unsay();
    this.#empty.hidden = Boolean(ready);
    this.#touched.clear();
    this.#fillFaces(ready);
    this.#updateButtons();
    if (!ready) return;
    const count = ready.result.face_count;
    if (count === 0) {
      this.#say(() => showError(this.#notice, { code: "no_face", message: "", details: { face_count: count } }));
      return;
    }
    if (count > 1) this.#sayFaceChosen();
    this.make();
  }

  /** With several faces, the person picks one (the biggest to start with), listed as the faces
   * table lists them: left to right, "Face 2 · M 67 (60–74)". */
  #fillFaces(photo) {
    const faces = photo ? leftToRight(photo.result.faces) : [];
    this.#faceField.hidden = faces.length < 2;
    if (faces.length < 2) return;
    // The same photo (the language changed) keeps its choice; another starts at its biggest face.
    const chosen = photo === this.#facesOf ? this.#facePick.value : String(largestFace(faces));
    this.#facesOf = photo;
    this.#facePick.replaceChildren(...faces.map((face, index) => h("option", { value: String(index + 1) }, t("idphoto.faceOption", { n: index + 1, who: faceLabel(face) }))));
    this.#facePick.value = chosen;
  }

  #sayFaceChosen() {
    const count = this.#source.result.face_count;
    const n = this.#facePick.value;
    this.#say(() => showNotice(this.#notice, { tone: "info", title: t("idphoto.face"), text: t("idphoto.faceChosen", { found: plural("faces.count", count), n }) }));
  }

  #clearResult() {
    this.#made = null;
    this.#failed = false;
    this.#result.classList.remove("idphoto__result--stale");
    this.#result.hidden = true;
    this.#status.hidden = true;
    if (this.#imageUrl) URL.revokeObjectURL(this.#imageUrl);
    this.#imageUrl = null;
  }

  #updateButtons() {
    const faceless = this.#source?.result.face_count === 0;
    const usable = this.#available && Boolean(this.#source) && !faceless;
    const current = Boolean(this.#made) && this.#staleness() === null;
    this.#make.disabled = !usable || Boolean(this.#controller);
    // A disabled button says why, beside it: a photo with no face cannot become an ID photo.
    this.#makeReason.hidden = !faceless;
    if (faceless) this.#make.setAttribute("aria-describedby", "make-reason");
    else this.#make.removeAttribute("aria-describedby");
    this.#downloadPhoto.disabled = !usable || !current;
    byId("download-report").disabled = !current;
    byId("print-report").disabled = !current;
    this.#downloadSheet.disabled = !usable || !this.#made || this.#sheetBusy;
    byId("preview-open").disabled = !current;
    this.#sheet.disabled = !usable;
  }

  /** The first ID photo of a photo takes seconds: upload %, then "cutting out…", then
   * "rendering…" while the answer arrives. Shown above the (still hidden) result. */
  #setProgress(phase, fraction = null) {
    this.#phase = phase === null ? null : [phase, fraction];
    this.#progress.hidden = phase === null;
    if (phase === null) return;
    this.#progressLabel.textContent = t(`progress.${phase}`, { name: this.#source?.file.name ?? "" });
    if (fraction === null) {
      this.#progressValue.textContent = "";
      this.#progressBar.removeAttribute("value"); // indeterminate
    } else {
      const percent = Math.round(fraction * 100);
      this.#progressValue.textContent = `${percent}%`;
      this.#progressBar.value = percent;
    }
  }

  /**
   * Make the preview for the current choices now, replacing any request still running. With
   * `unlessShown`, choices that end where they started (a colour dragged and put back) cost nothing.
   * `again`: the automatic retry after a 429 (retry.js), which a later 429 leaves to the person.
   */
  async make({ unlessShown = false, again = false } = {}) {
    const photo = this.#source;
    if (!photo || !this.#available) return;
    const params = this.#choices();
    if (unlessShown && !this.#controller && this.#made && JSON.stringify(this.#made.params) === JSON.stringify(params)) return;
    const cut = params.face ?? "";
    if (this.#controller && this.#uploading?.photo === photo && this.#uploading.cut === cut) {
      // Aborting would send the photo again from 0 %: let it arrive (its answer names it), then
      // make the latest choices from the server's copy.
      this.#again = true;
      this.#syncStale();
      return;
    }
    if (!again) this.#autoRetry.reset();
    this.#controller?.abort();
    const controller = new AbortController();
    this.#controller = controller;
    this.#uploading = null;
    this.#again = false;
    this.#failed = false;
    this.#preview.setAttribute("aria-busy", "true");
    this.#syncStale();
    const first = !this.#made;
    try {
      const response = await this.#render(photo, params, {
        signal: controller.signal,
        // Whether the photo goes up at once or after its key expired, changes made on its way
        // wait for it rather than send it again from 0 %; the person sees it go.
        onUpload: () => {
          this.#uploading = { photo, cut };
          return (phase, fraction) => this.#setProgress(phase, fraction);
        },
      });
      const body = await response.json();
      if (controller.signal.aborted) return;
      this.#unsay();
      if (!this.#faceField.hidden) this.#sayFaceChosen();
      this.#show(body, response, params);
      if (first) this.#announce.textContent = t("progress.done", { status: this.#status.textContent });
    } catch (error) {
      if (isAbort(error)) return;
      if ((error.code === "unauthorized" || error.code === "forbidden") && (await this.askKey(error))) {
        this.make();
        return;
      }
      // The last good photo stays, marked out of date, with the error and Retry above it.
      this.#failed = true;
      const autoRetry = this.#autoRetry.schedule(error, () => {
        this.#unsay();
        this.make({ again: true });
      });
      this.#say(() => showError(this.#notice, error, { limits: this.limits(), autoRetry, onRetry: error.retryable ? () => this.make() : null }));
    } finally {
      if (this.#controller === controller) {
        this.#controller = null;
        this.#uploading = null;
        this.#setProgress(null);
        this.#preview.removeAttribute("aria-busy");
        this.#syncStale();
        // After a failure the photo is not on the server: Retry sends it, with the latest choices.
        if (this.#again && !this.#failed) this.make({ unlessShown: true });
        this.#again = false;
      }
    }
  }

  /**
   * POST /v1/id-photo for `photo`: by its content key once the server has it, else with the
   * (possibly shrunk) photo itself. A key the server has forgotten is answered by uploading again.
   * `onUpload()` is called when the photo itself is to be sent, and may return a
   * `progress(phase, fraction)` to follow it.
   */
  async #render(photo, params, { signal = null, onUpload = null } = {}) {
    const path = "v1/id-photo";
    // The server keeps one cut-out per face chosen: another face is cut from the photo itself.
    const cut = params.face ?? "";
    if (photo.idSource && photo.cutFaces?.has(cut)) {
      try {
        return await request(path, { method: "POST", params: { ...params, source: photo.idSource }, signal });
      } catch (error) {
        if (error.code !== "source_expired") throw error;
        photo.idSource = null;
        photo.cutFaces.clear();
      }
    }
    const progress = onUpload?.() ?? (() => {});
    progress("upload", 0);
    const image = await uploadFor(photo);
    const response = await request(path, {
      method: "POST",
      params,
      image,
      signal,
      onUploadProgress: (fraction) => (fraction < 1 ? progress("upload", fraction) : progress("cutting")),
      onResponseStart: () => progress("rendering"),
    });
    photo.idSource = response.headers.get("x-source") ?? null;
    photo.cutFaces ??= new Set();
    photo.cutFaces.add(cut);
    return response;
  }

  #show(body, response, params) {
    const blob = base64ToBlob(body.image_base64, body.media_type);
    if (this.#imageUrl) URL.revokeObjectURL(this.#imageUrl);
    this.#imageUrl = URL.createObjectURL(blob);
    this.#image.src = this.#imageUrl;
    this.#image.width = body.width;
    this.#image.height = body.height;
    this.#made = { blob, params, mediaType: body.media_type, body, response };
    this.#result.hidden = false;
    const cache = response.headers.get("x-cache");
    const facts = [
      `${body.width}×${body.height} px`,
      body.dpi ? `${body.dpi} dpi` : null,
      formatBytes(blob.size),
      formatMs(response.elapsedMs),
      cache ? t(cache === "hit" ? "cache.hit" : "cache.miss") : null,
    ].filter(Boolean);
    // One span per fact, so a line breaks between facts, never inside one.
    this.#facts.replaceChildren(...facts.flatMap((fact, i) => [i ? " · " : "", h("span", {}, fact)]));
    const report = body.report ?? { status: "pass", checks: [] };
    this.#status.hidden = false;
    this.#status.className = `badge badge--${report.status}`;
    this.#status.textContent = ["pass", "warn", "fail"].includes(report.status) ? t(`report.${report.status}`) : report.status;
    const checks = report.checks ?? [];
    const counts = { pass: 0, warn: 0, fail: 0 };
    for (const check of checks) counts[check.status] = (counts[check.status] ?? 0) + 1;
    this.#summary.textContent =
      counts.warn || counts.fail
        ? [
            t("summary.passed", { count: counts.pass }),
            counts.warn ? t(`summary.warning.${counts.warn === 1 ? "one" : "other"}`, { count: counts.warn }) : null,
            counts.fail ? t("summary.failed", { count: counts.fail }) : null,
          ]
            .filter(Boolean)
            .join(" · ")
        : t("summary.all", { count: checks.length });
    // Warnings and failures are shown with their notes; the full list is one click away.
    this.#issues.replaceChildren(...checks.filter((check) => check.status !== "pass").map(checkItem));
    this.#checks.replaceChildren(...checks.map(checkItem));
    this.#allChecks.textContent = t("idphoto.allChecksN", { count: checks.length });
    this.#syncNudges(report, this.#specs.get(params.spec));
  }

  #openPreview() {
    if (!this.#made || !this.#source || this.#staleness() !== null) return;
    this.#previewDialog.open({ beforeUrl: this.#source.url, afterUrl: this.#imageUrl, name: this.#source.file.name });
  }

  /** The report as a printed page (or a PDF, from the print dialog). */
  #printReport() {
    if (!this.#made) return;
    const spec = this.#specs.get(this.#made.params.spec);
    fillPrintSheet({
      body: this.#made.body,
      imageUrl: this.#imageUrl,
      photoName: this.#source?.file.name ?? "",
      specTitle: spec ? specTitle(spec) : this.#made.params.spec,
      describe: (check) => {
        const limit = checkAllowed(check);
        return `${checkValue(check)}${limit ? t("check.allowed", { value: limit }) : ""}`;
      },
    });
    window.print();
  }

  #savePhoto() {
    if (!this.#made) return;
    const extension = this.#made.mediaType === "image/png" ? "png" : "jpg";
    downloadBlob(this.#made.blob, `${this.#baseName()}-id-photo-${this.#made.params.spec}.${extension}`);
  }

  /** Downloads are named after the source photo: "passport-scan.jpg" → "passport-scan-…". */
  #baseName() {
    return baseName(this.#source?.file.name);
  }

  /** The compliance report as JSON: the photo, the choices and every check with its verdict. */
  #saveReport() {
    if (!this.#made) return;
    const { body, params } = this.#made;
    const report = {
      photo: this.#source?.file.name ?? null,
      spec: params.spec,
      choices: params,
      width_px: body.width,
      height_px: body.height,
      dpi: body.dpi ?? null,
      report: body.report ?? null,
    };
    const blob = new Blob([JSON.stringify(report, null, 2)], { type: "application/json" });
    downloadBlob(blob, `${this.#baseName()}-id-photo-${params.spec}-report.json`);
  }

  /** Download the print sheet; `again`: as for make(). */
  async #saveSheet({ again = false } = {}) {
    const photo = this.#source;
    if (!photo) return;
    if (!again) this.#sheetRetry.reset();
    this.#sheetBusy = true;
    this.#downloadSheet.disabled = true;
    this.#downloadSheet.textContent = t("idphoto.preparing");
    // The sheet of the photo as shown, by its content key like every other change.
    const params = { ...this.#params(), sheet: this.#sheet.value };
    // Named now: another photo may be on show by the time the sheet comes.
    const name = `${baseName(photo.file.name)}-id-photo-${params.spec}-sheet-${params.sheet}.jpg`;
    try {
      const response = await this.#render(photo, params);
      downloadBlob(response.blob, name);
    } catch (error) {
      const autoRetry = this.#sheetRetry.schedule(error, () => {
        this.#unsay();
        this.#saveSheet({ again: true });
      });
      this.#say(() => showError(this.#notice, error, { limits: this.limits(), autoRetry, onRetry: error.retryable ? () => this.#saveSheet() : null }));
    } finally {
      this.#sheetBusy = false;
      this.#downloadSheet.textContent = t("idphoto.downloadSheet");
      this.#updateButtons();
    }
  }
}
