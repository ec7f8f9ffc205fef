// The photo card (queue strip, progress, photo with faces) and the faces card, drawn from the
// selected photo's state.

import { request } from "./api.js";
import { baseName, byId, downloadBlob, h } from "./dom.js";
import { arrangeLabels, drawFaces, faceRows, facesCsv, leftToRight, sizeDots, timingItems } from "./faces.js";
import { onLanguageChange, plural, t } from "./i18n.js";
import { formatBytes } from "./messages.js";
import { clearNotice, showError, showNotice } from "./notice.js";
import { AutoRetry } from "./retry.js";

// Why a held batch waits, by the refused photo's code; any other (busy) is "hold.busy". A server
// starting read "It is busy" until 2026-12-07: it has room, only not its models yet.
const HOLD_WORDS = { network: "hold.gone", rate_limited: "hold.limited", not_ready: "hold.starting" };

function fileExtension(name) {
  const dot = name.lastIndexOf(".");
  return dot > 0 ? name.slice(dot + 1).toUpperCase().slice(0, 5) : "FILE";
}

export class Viewer {
  #queueBar = byId("queue-bar");
  #queueList = byId("queue");
  #progress = byId("progress");
  #progressBar = byId("progress-bar");
  #progressLabel = byId("progress-label");
  #progressValue = byId("progress-value");
  #notice = byId("photo-notice");
  #announce = byId("photo-announce");
  #stage = byId("stage");
  #photo = byId("photo");
  #overlay = byId("overlay");
  #labels = byId("labels");
  #empty = byId("viewer-empty");
  #meta = byId("photo-meta");
  #faceCount = byId("face-count");
  #cacheBadge = byId("cache-badge");
  #table = byId("face-table");
  #rows = byId("face-rows");
  #facesEmpty = byId("faces-empty");
  #timings = byId("timings");
  #details = byId("analysis-details");
  #downloads = byId("analysis-downloads");
  #annotate = byId("download-annotated");
  // The annotated image's errors have a slot of their own: the photo's notice is redrawn with the
  // photo (a language switch), which took them away, countdown and all.
  #annotateNotice = byId("annotate-notice");
  #annotateSaid = null; // shows its error on show, again in another language
  #annotateRetry = new AutoRetry(); // after a 429, as for every other request (retry.js)
  #drawn = []; // the faces drawn, left to right
  #pictureOf = null; // the id of the photo whose picture the photo card shows
  #shown = { id: null, status: null, retryAt: null, held: false };
  #holdNotice = byId("queue-hold");
  #holdShown = ""; // what the held batch's notice says, so it is not redrawn (its countdown) on every change
  #thumbs = new Map();
  #stripAt = null; // the id of the photo whose thumbnail and × are the strip's Tab stops

  /** `queue` is the PhotoQueue; `limits()` and `askKey()` come from the page. */
  constructor(queue, { limits, askKey }) {
    this.queue = queue;
    this.limits = limits;
    this.askKey = askKey;
    queue.addEventListener("change", () => this.render());
    queue.addEventListener("progress", (event) => {
      if (event.detail === queue.selected) this.#renderProgress(event.detail);
      this.#renderQueue();
    });
    // Hovering or focusing a table row highlights its face on the photo.
    this.#rows.addEventListener("pointerover", (event) => this.#highlight(event.target.closest("tr")?.dataset.face));
    this.#rows.addEventListener("pointerleave", () => this.#highlight(null));
    this.#rows.addEventListener("focusin", (event) => this.#highlight(event.target.closest("tr")?.dataset.face));
    this.#rows.addEventListener("focusout", () => this.#highlight(null));
    // The table is one Tab stop, not one per face (40 presses past a group photo): arrows move.
    this.#rows.addEventListener("keydown", (event) => this.#moveRow(event));
    // So is the strip of photos: one photo's thumbnail and ×, ← → Home End to the others. A batch
    // of 30 was 60 Tab stops between the drop zone and the results.
    this.#queueList.addEventListener("keydown", (event) => this.#moveThumb(event));
    this.#queueList.addEventListener("focusin", (event) => {
      const id = Number(event.target.closest("li")?.dataset.id);
      if (id && id !== this.#stripAt) {
        this.#stripAt = id;
        this.#rove();
      }
    });
    // Labels and dots are sized in screen pixels: arrange them again whenever the photo resizes.
    new ResizeObserver(() => this.#fitOverlay()).observe(this.#labels);
    this.#photo.addEventListener("load", () => this.#fitOverlay());
    this.#annotate.addEventListener("click", () => this.#saveAnnotated(this.queue.selected));
    byId("download-json").addEventListener("click", () => this.#saveResults("json"));
    byId("download-csv").addEventListener("click", () => this.#saveResults("csv"));
    onLanguageChange(() => {
      this.#shown = { id: null, status: null };
      this.#holdShown = "";
      this.render();
      if (this.#annotateNotice.querySelector(".notice")) this.#annotateSaid?.();
    });
  }

  render() {
    this.#renderQueue();
    this.#renderHold();
    const photo = this.queue.selected;
    if (!photo) {
      this.#renderNothing();
      return;
    }
    // Redraw the photo only when the selection or its state changed, so it does not flicker
    // (or the time the page tries it again, or whether it does: the held batch's refused photo).
    const retryAt = photo.error?.retryAt ?? null;
    const held = this.queue.hold?.lead === photo;
    const shown = this.#shown;
    if (shown.id === photo.id && shown.status === photo.status && shown.retryAt === retryAt && shown.held === held) return;
    // The annotated image's error was about the photo on show: another one is shown.
    if (this.#shown.id !== null && this.#shown.id !== photo.id) this.#unsayAnnotate();
    // The photo on show has just been analysed: nothing else tells a screen reader so (an error
    // is an alert of its own), and the faces it found would be met only by searching the page.
    const finished = this.#shown.id === photo.id && photo.status === "done";
    this.#empty.hidden = true;
    this.#renderProgress(photo);
    this.#renderResult(photo);
    // After its notice is drawn: showing it sets the error's retryAt when nothing had.
    this.#shown = { id: photo.id, status: photo.status, retryAt: photo.error?.retryAt ?? null, held };
    if (finished) this.#announce.textContent = this.#photo.alt;
  }

  /**
   * The held batch, said once for all its photos: why they wait, how many, and when the page
   * tries again on its own (queue.hold).
   */
  #renderHold() {
    const hold = this.queue.hold;
    const waiting = hold ? this.queue.items.filter((item) => item.status === "waiting").length : 0;
    const said = hold ? `${hold.code}|${hold.retryAt}|${waiting}` : "";
    if (said === this.#holdShown) return;
    this.#holdShown = said;
    if (!hold) {
      clearNotice(this.#holdNotice);
      return;
    }
    const why = HOLD_WORDS[hold.code] ?? "hold.busy";
    showNotice(this.#holdNotice, {
      tone: "info",
      title: t("hold.title"),
      text: t(why, { photos: plural("hold.photos", waiting) }),
      retryAfter: Math.max(0, Math.ceil((hold.retryAt - Date.now()) / 1000)),
      autoRetry: true,
    });
  }

  /** The queue emptied: the page as it first was. */
  #renderNothing() {
    this.#shown = { id: null, status: null, retryAt: null, held: false };
    this.#stage.hidden = true;
    this.#dropPicture();
    this.#progress.hidden = true;
    this.#empty.hidden = false;
    clearNotice(this.#notice);
    this.#unsayAnnotate();
    this.#announce.textContent = "";
    this.#meta.textContent = "";
    this.#faceCount.textContent = "";
    this.#table.hidden = true;
    this.#rows.replaceChildren();
    this.#facesEmpty.hidden = false;
    this.#facesEmpty.textContent = t("faces.none");
    this.#details.hidden = true;
    this.#downloads.hidden = true;
  }

  #fitOverlay() {
    const photo = this.queue.selected;
    if (!photo?.result || this.#stage.hidden || !this.#photo.clientWidth) return;
    sizeDots(this.#overlay, this.#drawn, this.#photo.clientWidth / photo.result.width);
    arrangeLabels(this.#labels);
  }

  /** Downloads are named after the photo: "team.jpg" → "team-faces.json". */
  #baseName() {
    return baseName(this.queue.selected?.file.name);
  }

  #saveResults(kind) {
    const photo = this.queue.selected;
    if (!photo?.result) return;
    const faces = leftToRight(photo.result.faces);
    const blob =
      kind === "csv"
        ? new Blob([facesCsv(faces)], { type: "text/csv" })
        : new Blob([JSON.stringify({ photo: photo.file.name, ...photo.result, faces }, null, 2)], { type: "application/json" });
    downloadBlob(blob, `${this.#baseName()}-faces.${kind}`);
  }

  /**
   * The server draws the annotated image (the same boxes and labels), from the photo itself.
   * Refused for the rate limit, it is asked for again on its own once, as every request is
   * (retry.js); a busy server or the network leave Retry to the person. `again`: that retry.
   */
  async #saveAnnotated(photo, { again = false } = {}) {
    if (!photo?.result) return;
    if (!again) this.#annotateRetry.reset();
    this.#annotateSaid = null;
    clearNotice(this.#annotateNotice);
    // Named now: another photo may be on show by the time the answer comes.
    const name = `${baseName(photo.file.name)}-annotated.jpg`;
    this.#annotate.disabled = true;
    try {
      const response = await request("v1/annotate", { method: "POST", image: photo.file });
      downloadBlob(response.blob, name);
    } catch (error) {
      const autoRetry = this.#annotateRetry.schedule(error, () => this.#saveAnnotated(photo, { again: true }));
      this.#annotateSaid = () =>
        showError(this.#annotateNotice, error, {
          limits: this.limits(),
          autoRetry,
          onRetry: error.retryable ? () => this.#saveAnnotated(photo) : null,
          retryFocus: () => this.#annotate,
        });
      this.#annotateSaid();
    } finally {
      this.#annotate.disabled = false;
    }
  }

  #unsayAnnotate() {
    this.#annotateRetry.reset();
    this.#annotateSaid = null;
    clearNotice(this.#annotateNotice);
  }

  /** The × of a queued photo: it goes, and the focus that was on it stays in the strip. */
  #remove(photo, event) {
    // The photo beside it moves into its place: a double click's second click would remove it too.
    if (event.detail > 1) return;
    const item = this.#thumbs.get(photo.id)?.closest("li");
    const focused = item?.contains(document.activeElement);
    const index = this.queue.items.indexOf(photo);
    this.queue.remove(photo.id);
    if (!focused) return;
    // On the photo now in its place (or before it, at the end), else the drop zone.
    const next = this.queue.items[Math.min(index, this.queue.items.length - 1)];
    (this.#thumbs.get(next?.id) ?? byId("dropzone")).focus();
  }

  #renderQueue() {
    const items = this.queue.items;
    this.#queueBar.hidden = items.length === 0;
    // A Set: with a photo looked up in the queue for each thumbnail, a change cost the square of
    // the queue's length.
    const queued = new Set(items.map((item) => item.id));
    for (const [id, button] of this.#thumbs) {
      if (queued.has(id)) continue;
      button.closest("li").remove();
      this.#thumbs.delete(id);
    }
    for (const photo of items) {
      let button = this.#thumbs.get(photo.id);
      if (!button) {
        const preview = h("img", { alt: "" });
        // Not every file is a picture the browser can show: a plain tile stands in for it.
        const blank = () => preview.replaceWith(h("span", { className: "thumb__blank" }, fileExtension(photo.file.name)));
        preview.addEventListener("error", blank);
        photo.pictures.thumbnail().then((url) => (url ? (preview.src = url) : blank()));
        button = h(
          "button",
          { type: "button", className: "thumb", dataset: { id: String(photo.id) } },
          preview,
          h("span", { className: "thumb__status" }),
        );
        button.addEventListener("click", () => this.queue.select(photo.id));
        const remove = h("button", { type: "button", className: "thumb__remove" }, "×");
        remove.addEventListener("click", (event) => this.#remove(photo, event));
        this.#thumbs.set(photo.id, button);
        this.#queueList.append(h("li", { className: "queue__item", dataset: { id: String(photo.id) } }, button, remove));
      }
      const percent = photo.status === "uploading" ? ` ${Math.round(photo.progress * 100)}%` : "";
      const count = photo.result?.face_count;
      const text = photo.status === "done" ? plural("faces.count", count) : `${t(`thumb.${photo.status}`)}${percent}`;
      button.className = `thumb thumb--${photo.status}`;
      button.setAttribute("aria-pressed", String(photo.id === this.queue.selectedId));
      button.setAttribute("aria-label", `${photo.file.name}: ${text}`);
      button.querySelector(".thumb__status").textContent = text;
      const remove = button.parentElement.querySelector(".thumb__remove");
      remove.title = t("queue.remove", { name: photo.file.name });
      remove.setAttribute("aria-label", remove.title);
    }
    this.#rove();
  }

  #renderProgress(photo) {
    const active = photo.status === "uploading" || photo.status === "analysing" || photo.status === "waiting";
    this.#progress.hidden = !active;
    if (!active) return;
    if (photo.status === "analysing") {
      this.#progressLabel.textContent = t("progress.analysing");
      this.#progressValue.textContent = "";
      this.#progressBar.removeAttribute("value"); // indeterminate
    } else {
      const percent = Math.round(photo.progress * 100);
      this.#progressLabel.textContent = photo.status === "waiting" ? t("progress.waiting") : t("progress.upload", { name: photo.file.name });
      this.#progressValue.textContent = t("progress.of", { percent, size: formatBytes(photo.file.size) });
      this.#progressBar.value = percent;
    }
  }

  #renderResult(photo) {
    const done = photo.status === "done";
    this.#stage.hidden = !done;
    clearNotice(this.#notice);
    if (photo.status === "error") {
      const actions = [];
      if (photo.error.code === "unauthorized" || photo.error.code === "forbidden") {
        actions.push([t("notice.enterKey"), () => this.askKey()]);
      }
      showError(this.#notice, photo.error, {
        limits: this.limits(),
        // The countdown says whether the page tries again at zero or the person must press Retry.
        autoRetry: photo.autoRetry.pending || this.queue.hold?.lead === photo,
        // Every photo the same moment failed goes again, not only the one on show.
        onRetry: photo.error.retryable ? () => this.queue.retryAllForNow(photo) : null,
        // The photo retried, in the strip: its label says how it goes ("Uploading 40%").
        retryFocus: () => this.#thumbs.get(photo.id),
        actions,
      });
    }
    this.#meta.textContent = done ? `${photo.file.name} · ${photo.result.width}×${photo.result.height}` : photo.file.name;
    const faces = done ? leftToRight(photo.result.faces) : [];
    if (done) {
      this.#showPicture(photo);
      this.#photo.alt = t("faces.alt", { name: photo.file.name, faces: plural("faces.count", faces.length) });
      drawFaces(this.#overlay, this.#labels, photo.result, faces);
      this.#drawn = faces;
      this.#fitOverlay();
    } else {
      this.#dropPicture(); // the stage is hidden: what it showed need not stay decoded
    }
    this.#faceCount.textContent = done ? String(faces.length) : "";
    this.#table.hidden = !done || faces.length === 0;
    this.#rows.replaceChildren(...faceRows(faces));
    this.#facesEmpty.hidden = done && faces.length > 0;
    this.#facesEmpty.textContent = t(done ? "faces.nothing" : photo.status === "error" ? "faces.failed" : "faces.analysing");
    this.#details.hidden = !done;
    this.#downloads.hidden = !done;
    this.#timings.replaceChildren(...(done ? timingItems(photo) : []));
    this.#cacheBadge.hidden = !photo.cache;
    this.#cacheBadge.textContent = t(photo.cache === "hit" ? "cache.hit" : "cache.miss");
    this.#cacheBadge.dataset.cache = photo.cache ?? "";
  }

  /**
   * The photo card's picture of `photo`: sized as the photo itself would be (its pixels, the
   * faces' grid: the overlay stays on them), drawn from a copy no larger than the screen needs.
   */
  async #showPicture(photo) {
    const { width, height } = photo.result;
    this.#photo.style.setProperty("--photo-width", `${width}px`);
    this.#photo.style.setProperty("--photo-ratio", String(width / height));
    // Another photo's picture goes at once: it is not left under this photo's faces meanwhile.
    if (this.#pictureOf !== photo.id) this.#dropPicture();
    this.#pictureOf = photo.id;
    const url = (await photo.pictures.view(width, height)) ?? photo.url;
    if (this.#pictureOf === photo.id && this.#photo.getAttribute("src") !== url) this.#photo.src = url;
  }

  /** No picture on the photo card: an <img> keeps what it shows decoded, even hidden. */
  #dropPicture() {
    this.#photo.removeAttribute("src");
    this.#pictureOf = null;
  }

  /** Only the strip's current photo (the one last focused, else the one on show) is in the Tab order. */
  #rove() {
    const items = this.queue.items;
    if (!items.some((item) => item.id === this.#stripAt)) this.#stripAt = this.queue.selectedId ?? items[0]?.id ?? null;
    for (const [id, button] of this.#thumbs) {
      const tabIndex = id === this.#stripAt ? 0 : -1;
      button.tabIndex = tabIndex;
      button.parentElement.querySelector(".thumb__remove").tabIndex = tabIndex;
    }
  }

  /** ← → Home End from photo to photo in the strip (↑ ↓ too: it wraps into rows when narrow). */
  #moveThumb(event) {
    const items = [...this.#queueList.children];
    const at = items.indexOf(event.target.closest("li"));
    const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[event.key];
    const to = step !== undefined ? at + step : { Home: 0, End: items.length - 1 }[event.key];
    if (at < 0 || to === undefined) return;
    event.preventDefault(); // not the page's (or the strip's) scroll
    const item = items[Math.max(0, Math.min(items.length - 1, to))];
    item.querySelector(".thumb").focus();
    // Chromium's focus scrolls a photo half in view no further: the whole of it, and its ×.
    item.scrollIntoView({ block: "nearest", inline: "nearest" });
    item.querySelector(".thumb__remove").scrollIntoView({ block: "nearest", inline: "nearest" });
  }

  /** ↑ ↓ Home End between the faces table's rows; the row left focused is the table's Tab stop. */
  #moveRow(event) {
    const rows = [...this.#rows.rows];
    const at = rows.indexOf(event.target.closest("tr"));
    const to = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: rows.length - 1 }[event.key];
    if (at < 0 || to === undefined) return;
    event.preventDefault(); // not the page's scroll
    const next = rows[Math.max(0, Math.min(rows.length - 1, to))];
    for (const row of rows) row.tabIndex = row === next ? 0 : -1;
    next.focus();
  }

  #highlight(face) {
    for (const element of this.#overlay.querySelectorAll(".face")) {
      element.classList.toggle("face--active", element.dataset.face === face);
    }
    for (const element of this.#labels.querySelectorAll(".face-label")) {
      element.classList.toggle("face-label--active", element.dataset.face === face);
    }
  }
}
