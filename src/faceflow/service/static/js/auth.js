// Asking for an API key when the server wants one. The key is checked against /v1/info before it
// is kept, and kept only in sessionStorage (this tab, this session).

import { request, storedKey, storeKey } from "./api.js";
import { byId } from "./dom.js";
import { t } from "./i18n.js";
import { describeError } from "./messages.js";

export class KeyPrompt {
  #dialog = byId("key-dialog");
  #form = byId("key-form");
  #input = byId("key-input");
  #error = byId("key-error");
  #reason = byId("key-reason");
  #submit = byId("key-submit");
  #forget = byId("key-forget");
  #pending = null;
  #resolve = null;

  constructor() {
    this.#form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.#check();
    });
    byId("key-cancel").addEventListener("click", () => this.#finish(null));
    // Escape closes a modal dialog through a cancel event.
    this.#dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      this.#finish(null);
    });
    this.#forget.addEventListener("click", () => {
      storeKey(null);
      this.#forget.hidden = true;
      this.#input.value = "";
      this.#input.focus();
    });
  }

  /**
   * Show the dialog. Resolves with /v1/info's body once a working key is stored, or null when
   * the person cancels. Concurrent callers share one dialog.
   */
  ask(reason = t("key.reason")) {
    if (this.#pending) return this.#pending;
    this.#reason.textContent = reason;
    this.#setError(null);
    this.#input.value = "";
    this.#forget.hidden = !storedKey();
    this.#pending = new Promise((resolve) => {
      this.#resolve = resolve;
    });
    this.#dialog.showModal();
    this.#input.focus();
    return this.#pending;
  }

  async #check() {
    const key = this.#input.value.trim();
    if (!key) {
      this.#setError(t("key.empty"));
      return;
    }
    this.#submit.disabled = true;
    this.#submit.textContent = t("key.checking");
    try {
      const response = await request("v1/info", { key });
      const info = await response.json();
      storeKey(key);
      this.#finish(info);
    } catch (error) {
      if (error.code === "forbidden" || error.code === "unauthorized") {
        this.#setError(t("key.rejected"));
      } else {
        const { title, text } = describeError(error);
        this.#setError(`${title}. ${text}`);
      }
    } finally {
      this.#submit.disabled = false;
      this.#submit.textContent = t("key.use");
    }
  }

  #setError(message) {
    this.#error.hidden = !message;
    this.#error.textContent = message ?? "";
    this.#input.setAttribute("aria-invalid", message ? "true" : "false");
    if (message) this.#input.focus();
  }

  #finish(info) {
    if (this.#dialog.open) this.#dialog.close();
    const resolve = this.#resolve;
    this.#pending = null;
    this.#resolve = null;
    resolve?.(info);
  }
}
