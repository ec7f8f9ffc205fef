// An inline message box for errors and hints, with a "Retry after N s" countdown.

import { h } from "./dom.js";
import { t } from "./i18n.js";
import { describeError } from "./messages.js";

/**
 * Show one notice in `slot` (replacing any previous one); returns a function that removes it.
 * `tone` is "error" or "info". With `retryAfter`, the text counts down and the Retry button
 * (shown when `onRetry` is given) becomes active at zero; with `autoRetry` the countdown says the
 * page tries again on its own at zero. `actions` adds extra [label, fn] buttons.
 *
 * Retry takes the notice away, and with it the focused button: the focus goes to `retryFocus()`
 * (the control that was retried, asked for after `onRetry` ran), else to the slot's card, so a
 * keyboard or screen-reader user is not sent back to the page's top.
 */
export function showNotice(slot, { tone = "error", title, text, retryAfter = null, autoRetry = false, onRetry = null, retryFocus = null, actions = [] }) {
  clearNotice(slot);
  // The seconds tick for the eye only. The box is a live region (an alert, or a status), read
  // whole at each change: a countdown in it was read out again every second. Screen readers get
  // the wait once, as the notice appears, and once more when it is over (`spoken`).
  const countdown = h("span", { className: "notice__countdown", attrs: { "aria-hidden": "true" } });
  const spoken = h("span", { className: "visually-hidden" });
  const retry = onRetry ? h("button", { type: "button", className: "button button--small", textContent: t("notice.retry") }) : null;
  const buttons = [
    retry,
    ...actions.map(([label, fn]) => {
      const button = h("button", { type: "button", className: "button button--small", textContent: label });
      button.addEventListener("click", fn);
      return button;
    }),
  ].filter(Boolean);
  const box = h(
    "div",
    { className: `notice notice--${tone}`, attrs: { role: tone === "error" ? "alert" : "status" } },
    h("p", { className: "notice__title" }, title),
    h("p", { className: "notice__text" }, text, retryAfter !== null ? " " : "", retryAfter !== null ? countdown : null, retryAfter !== null ? spoken : null),
    buttons.length ? h("div", { className: "notice__actions" }, buttons) : null,
  );
  let timer = 0;
  if (retryAfter !== null) {
    let left = retryAfter;
    const tick = () => {
      if (left > 0) countdown.textContent = t(autoRetry ? "notice.autoRetryAfter" : "notice.retryAfter", { seconds: left });
      else countdown.textContent = t(autoRetry ? "notice.autoRetryNow" : "notice.retryNow");
      if (left === retryAfter || left <= 0) spoken.textContent = countdown.textContent;
      if (retry) retry.disabled = left > 0;
      if (left <= 0) clearInterval(timer);
      left -= 1;
    };
    tick();
    timer = setInterval(tick, 1000);
  }
  retry?.addEventListener("click", () => {
    const focused = box.contains(document.activeElement);
    clearNotice(slot);
    onRetry();
    if (focused) focusAfterRetry(slot, retryFocus?.());
  });
  box.dispose = () => clearInterval(timer);
  slot.append(box);
  return () => clearNotice(slot);
}

/** Focus `target` if it can take it (shown and enabled), else the card `slot` sits in. */
function focusAfterRetry(slot, target) {
  if (target?.isConnected && !target.disabled && target.getClientRects().length) {
    target.focus();
    if (document.activeElement === target) return;
  }
  const card = slot.closest("section") ?? slot;
  if (!card.hasAttribute("tabindex")) card.tabIndex = -1;
  card.focus();
}

export function clearNotice(slot) {
  for (const box of slot.querySelectorAll(".notice")) {
    box.dispose?.();
    box.remove();
  }
}

/** showNotice for an ApiError, described by describeError. */
export function showError(slot, error, { limits = null, autoRetry = false, onRetry = null, retryFocus = null, actions = [] } = {}) {
  const { title, text, retryAfter } = describeError(error, limits);
  // The same error shown again (in another language) counts on from where it was, not afresh.
  // A held batch's refused photo counts down to the batch's next try (uploads.js sets retryAt),
  // also when the answer named no Retry-After (a proxy's 429 or 503).
  let left = null;
  if (retryAfter != null || error.retryAt != null) {
    error.retryAt ??= Date.now() + retryAfter * 1000;
    left = Math.max(0, Math.ceil((error.retryAt - Date.now()) / 1000));
  }
  return showNotice(slot, { tone: "error", title, text, retryAfter: left, autoRetry, onRetry, retryFocus, actions });
}
