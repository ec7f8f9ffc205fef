// The page's one rule for a request the server refused for its rate limit (429 with Retry-After):
// it goes again on its own once Retry-After is over, once; a second 429 waits for the person's
// Retry. Busy answers (503) are left to the person: a server short of workers may stay so, a
// limit's window passes.

/**
 * The automatic retry of one request (a photo's analysis, the ID photo, an example photo).
 * `note(error)` after each failure says whether it goes again on its own (`pending` until then);
 * the caller waits Retry-After and calls `take()`, or `schedule` waits and sends it again itself.
 * `reset()` when the person asks again (Retry, a new choice): their next 429 is tried again too.
 */
export class AutoRetry {
  #state = "unused"; // then "pending" (waiting for Retry-After), then "done" (sent again)
  #timer = 0;

  get pending() {
    return this.#state === "pending";
  }

  /** After a failure: whether the request goes again on its own (the first 429 since a reset). */
  note(error) {
    if (this.#state === "unused" && error?.code === "rate_limited" && error.retryAfter != null) this.#state = "pending";
    return this.pending;
  }

  /** Retry-After is over: true, once, when the request is to go again now. */
  take() {
    if (!this.pending) return false;
    this.#state = "done";
    return true;
  }

  /** `note(error)`, and when it goes again, `again()` once Retry-After is over (unless reset first). */
  schedule(error, again) {
    clearTimeout(this.#timer);
    if (!this.note(error)) return false;
    this.#timer = setTimeout(() => {
      if (this.take()) again();
    }, error.retryAfter * 1000);
    return true;
  }

  /** The person asks again, or moves on: a retry waiting is dropped. */
  reset() {
    clearTimeout(this.#timer);
    this.#state = "unused";
  }
}
