// The large preview: the ID photo and the photo it was made from, one or the other or side by
// side, zoomed in steps so a person can check the hair's edge at full size.

import { byId } from "./dom.js";
import { t } from "./i18n.js";

const ZOOMS = [1, 1.5, 2, 3, 4];

export class PreviewDialog {
  #dialog = byId("preview-dialog");
  #stage = byId("preview-stage");
  #beforeFigure = byId("preview-before-figure");
  #afterFigure = byId("preview-after-figure");
  #beforeImage = byId("preview-before-img");
  #afterImage = byId("preview-after-img");
  #level = byId("zoom-level");
  #zoomIn = byId("zoom-in");
  #zoomOut = byId("zoom-out");
  #modes = { before: byId("preview-before"), after: byId("preview-after"), both: byId("preview-both") };
  #zoom = 0; // index into ZOOMS

  constructor() {
    for (const [mode, button] of Object.entries(this.#modes)) button.addEventListener("click", () => this.#show(mode));
    this.#zoomIn.addEventListener("click", () => this.#setZoom(this.#zoom + 1));
    this.#zoomOut.addEventListener("click", () => this.#setZoom(this.#zoom - 1));
    byId("preview-close").addEventListener("click", () => this.#dialog.close());
  }

  /** Open on the ID photo (`afterUrl`), with the source photo (`beforeUrl`) one click away. */
  open({ beforeUrl, afterUrl, name }) {
    this.#beforeImage.src = beforeUrl;
    this.#beforeImage.alt = t("preview.beforeAlt", { name });
    this.#afterImage.src = afterUrl;
    this.#afterImage.alt = t("preview.afterAlt", { name });
    this.#show("after");
    this.#setZoom(0);
    this.#dialog.showModal();
  }

  #show(mode) {
    for (const [key, button] of Object.entries(this.#modes)) button.setAttribute("aria-pressed", String(key === mode));
    this.#beforeFigure.hidden = mode === "after";
    this.#afterFigure.hidden = mode === "before";
    this.#stage.dataset.mode = mode;
  }

  #setZoom(index) {
    this.#zoom = Math.max(0, Math.min(ZOOMS.length - 1, index));
    const zoom = ZOOMS[this.#zoom];
    this.#stage.style.setProperty("--zoom", String(zoom));
    this.#level.textContent = `${Math.round(zoom * 100)}%`;
    this.#zoomOut.disabled = this.#zoom === 0;
    this.#zoomIn.disabled = this.#zoom === ZOOMS.length - 1;
  }
}
