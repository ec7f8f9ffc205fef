// Example photos, for trying the page without one's own: the server lists the ones it holds
// (GET /v1/examples, pulled with its models); each shows as a button with a thumbnail, and a click
// fetches the photo and adds it to the queue as if it had been chosen. A server without them lists
// none, and the row stays hidden.

import { request } from "./api.js";
import { byId, h } from "./dom.js";
import { hasText, onLanguageChange, t } from "./i18n.js";
import { clearNotice, showError } from "./notice.js";
import { AutoRetry } from "./retry.js";

export class Examples {
  #box = byId("examples");
  #list = byId("example-list");
  #notice = byId("example-notice"); // its own: the photo's notice is redrawn with the photo
  #said = null; // the fetch error on show, said again in another language
  #items = [];
  #loaded = false;
  #listRetry = new AutoRetry(); // each request's own, after a 429 (retry.js)
  #photoRetry = new AutoRetry();

  /** `onPhoto(file)` receives the fetched photo as a File named after the example. */
  constructor({ onPhoto }) {
    this.onPhoto = onPhoto;
    onLanguageChange(() => {
      this.#render();
      if (this.#notice.querySelector(".notice")) this.#said?.();
    });
  }

  /** Ask the server which examples it has (once; again after a failure, e.g. a key prompt). */
  async load({ again = false } = {}) {
    if (this.#loaded) return;
    if (!again) this.#listRetry.reset();
    try {
      const response = await request("v1/examples");
      this.#items = (await response.json()).examples ?? [];
      this.#loaded = true;
    } catch (error) {
      this.#items = []; // an older server, or no key yet: offer none rather than an error
      this.#listRetry.schedule(error, () => this.load({ again: true }));
    }
    this.#render();
    await Promise.all(this.#items.map((item) => this.#thumbnail(item)));
  }

  #title(item) {
    const key = `example.${item.name}`;
    return hasText(key) ? t(key) : item.title;
  }

  #render() {
    this.#box.hidden = this.#items.length === 0;
    this.#list.replaceChildren(
      ...this.#items.map((item) => {
        const img = h("img", { className: "example__thumb", alt: "", width: 36, height: 36 });
        if (item.thumbnailUrl) img.src = item.thumbnailUrl;
        else img.hidden = true;
        item.img = img;
        const button = h(
          "button",
          {
            type: "button",
            className: "button button--small example",
            title: t("examples.credit", { credit: item.credit, licence: item.licence }),
            dataset: { example: item.name },
            onclick: () => this.#pick(item, button),
          },
          img,
          h("span", {}, this.#title(item)),
        );
        item.button = button;
        return h("li", {}, button);
      }),
    );
  }

  async #thumbnail(item) {
    item.retry ??= new AutoRetry();
    try {
      const response = await request(item.thumbnail_url);
      item.thumbnailUrl = URL.createObjectURL(response.blob);
      if (item.img) {
        item.img.src = item.thumbnailUrl;
        item.img.hidden = false;
      }
    } catch (error) {
      // The name alone still works as a button.
      item.retry.schedule(error, () => this.#thumbnail(item));
    }
  }

  /** Fetch the example's photo into the queue; `again`: the automatic retry after a 429. */
  async #pick(item, button, { again = false } = {}) {
    if (!again) this.#photoRetry.reset();
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      const response = await request(item.url);
      const extension = item.media_type === "image/png" ? "png" : "jpg";
      this.#said = null;
      clearNotice(this.#notice);
      this.onPhoto(new File([response.blob], `${item.name}.${extension}`, { type: item.media_type }));
    } catch (error) {
      // #render replaces the buttons: a retry presses the one on show by then.
      const retry = (options) => this.#pick(item, item.button ?? button, options);
      const autoRetry = this.#photoRetry.schedule(error, () => {
        this.#said = null;
        clearNotice(this.#notice);
        retry({ again: true });
      });
      this.#said = () => showError(this.#notice, error, { autoRetry, onRetry: () => retry() });
      this.#said();
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }
}
