// The photos the person has chosen, analysed one after another through POST /v1/analyze.
// Events: "change" (items or selection changed) and "progress" (an upload moved on).

import { ApiError, isAbort, parseServerTiming, request } from "./api.js";
import { readImageSize } from "./imagesize.js";
import { Pictures } from "./pictures.js";
import { AutoRetry } from "./retry.js";

let nextId = 1;

// A batch held for a server out of reach asks /readyz (what the status badge asks) after 2 s,
// then 4, 8, 16 and every 30 s: a server down for minutes is not asked every second, and one
// back is found within half a minute.
const HOLD_FIRST_S = 2;
// The photos the queue takes at a time. A folder of 2,000 dropped (or chosen) kept the page's one
// thread busy for good: 16 s to list them, then about 4 s per photo analysed, cached answers and
// all (each change redraws the strip of every photo), over two hours for the batch. A hundred
// is more than a person looks through in one sitting, and about a minute and a half of work.
export const MAX_PHOTOS = 100;
const HOLD_MAX_S = 30;

/** Whether the server answers its readiness probe now (no key needed, nothing uploaded). */
const serverAnswers = () => fetch("readyz", { cache: "no-store" }).then((response) => response.ok, () => false);

/**
 * One photo. `status` is waiting | uploading | analysing | done | error; `result` is the
 * /v1/analyze body; `timings` the parsed Server-Timing; `cache` "hit" or "miss".
 */
export class Photo {
  constructor(file) {
    this.id = nextId++;
    this.file = file;
    // The file itself, for what shows it at full size (the enlarged ID-photo preview); the
    // thumbnail and the photo card show smaller pictures of it.
    this.url = URL.createObjectURL(file);
    this.pictures = new Pictures(file);
    this.status = "waiting";
    this.progress = 0;
    this.result = null;
    this.error = null;
    this.timings = [];
    this.cache = null;
    this.elapsedMs = null;
    this.controller = null; // aborts its analysis while it is on its way
    // A 429 is tried again on its own once its Retry-After is over (the pump waits it), once.
    this.autoRetry = new AutoRetry();
  }
}

export class PhotoQueue extends EventTarget {
  items = [];
  selectedId = null;
  #busy = false;
  /**
   * The batch held for the server: {lead, code, retryAt (ms)}, or null. A photo refused for the
   * moment (the server out of reach, busy or rate limited) while others waited failed them all
   * one after another, each within a second, though none of them had been sent. Now the others
   * wait: the page tries the refused photo again on its own (after Retry-After, or once /readyz
   * answers) and the batch goes on when the server does.
   */
  hold = null;
  #holdTimer = 0;
  #holdStep = 0; // how many waits the server has been out of reach in a row

  /**
   * `authorize(error)` is awaited on 401/403 and resolves true when a new key is in place, so
   * the upload is tried again. `limits()` gives /v1/info's limits for a size check before sending.
   */
  constructor({ authorize, limits }) {
    super();
    this.authorize = authorize;
    this.limits = limits;
  }

  /** Photos still to be analysed, or on their way: leaving the page now would lose them. */
  get busy() {
    return this.items.some((item) => item.status === "waiting" || item.status === "uploading" || item.status === "analysing");
  }

  get selected() {
    return this.items.find((item) => item.id === this.selectedId) ?? null;
  }

  /**
   * Queue `files`, as many as there is room for (MAX_PHOTOS in all), in their order; the rest are
   * left out. A "taken" event says how many: {given, taken, left}.
   */
  add(files) {
    const given = [...files];
    const taken = given.slice(0, Math.max(0, MAX_PHOTOS - this.items.length));
    this.#emit("taken", { given: given.length, taken: taken.length, left: given.length - taken.length });
    const added = taken.map((file) => new Photo(file));
    if (!added.length) return;
    this.items.push(...added);
    this.selectedId = added[0].id;
    this.#emit("change");
    this.#pump();
  }

  select(id) {
    if (this.selectedId === id) return;
    this.selectedId = id;
    this.#emit("change");
  }

  /** Take a photo out of the queue; the one beside it is selected if it was the selected one. */
  remove(id) {
    const index = this.items.findIndex((item) => item.id === id);
    if (index < 0) return;
    const [removed] = this.items.splice(index, 1);
    // Taken out on its way up (a wrong photo on a slow link): it stops, and the next one goes.
    removed.controller?.abort();
    URL.revokeObjectURL(removed.url);
    removed.pictures.release();
    if (this.selectedId === id) this.selectedId = this.items[Math.min(index, this.items.length - 1)]?.id ?? null;
    // Nothing left to hold: the refused photo, if it stays, is the person's to retry as a lone one is.
    if (this.hold && !this.items.some((item) => item.status === "waiting")) this.#release();
    this.#emit("change");
  }

  /** Empty the queue: the page goes back to its first state. */
  clear() {
    for (const item of this.items) {
      item.controller?.abort();
      URL.revokeObjectURL(item.url);
      item.pictures.release();
    }
    this.items = [];
    this.selectedId = null;
    this.#release();
    this.#emit("change");
  }

  retry(photo) {
    // The person's Retry is the page's own try, sooner: the held batch goes with it.
    this.#release();
    photo.autoRetry.reset();
    photo.status = "waiting";
    photo.error = null;
    photo.progress = 0;
    this.#emit("change");
    this.#pump();
  }

  /**
   * Retry `photo`, and every photo that failed for the moment, not for itself: the server out of reach, busy
   * or rate limited. A batch sent while the server was gone failed whole in a second, and each
   * photo then needed its own Retry (30 photos, 30 choices and 30 Retries once it was back).
   */
  retryAllForNow(photo) {
    this.retry(photo);
    for (const other of this.items) {
      if (other.status === "error" && other.error?.retryable) this.retry(other);
    }
  }

  /** Analyse every waiting photo again (after a key was entered, say). */
  retryFailed(codes) {
    for (const photo of this.items) {
      if (photo.status === "error" && codes.includes(photo.error?.code)) this.retry(photo);
    }
  }

  #emit(type, photo = null) {
    this.dispatchEvent(new CustomEvent(type, { detail: photo }));
  }

  async #pump() {
    if (this.#busy) return;
    this.#busy = true;
    try {
      for (let photo = this.#nextWaiting(); photo; photo = this.#nextWaiting()) {
        await this.#analyse(photo);
        if (photo.status === "done") this.#holdStep = 0;
        // Refused for the moment with photos waiting: they are held, not sent to fail in turn.
        if (photo.status === "error" && photo.error.retryable && this.items.includes(photo) && this.#nextWaiting()) {
          this.#holdFor(photo);
          break;
        }
        // A busy or rate-limited server said when to come back: the rest of the queue waits.
        const pause = photo.status === "error" ? photo.error.retryAfter : null;
        if (pause) await new Promise((resume) => setTimeout(resume, pause * 1000));
        // Rate limited, the photo asked for nothing wrong: it goes again first (retry.js).
        if (photo.status === "error" && this.items.includes(photo) && photo.autoRetry.take()) {
          photo.status = "waiting";
          photo.error = null;
          photo.progress = 0;
          this.#emit("change");
        }
      }
    } finally {
      this.#busy = false;
    }
  }

  #nextWaiting() {
    return this.hold ? undefined : this.items.find((item) => item.status === "waiting");
  }

  /** Hold the batch after `lead` was refused for the moment, until its Retry-After or a backoff. */
  #holdFor(lead) {
    const { code, retryAfter } = lead.error;
    this.hold = { lead, code, retryAt: 0 };
    this.#wait(retryAfter ?? this.#backoff());
  }

  #backoff() {
    return Math.min(HOLD_MAX_S, HOLD_FIRST_S * 2 ** this.#holdStep++);
  }

  #wait(seconds) {
    clearTimeout(this.#holdTimer);
    this.hold.retryAt = Date.now() + seconds * 1000;
    // The refused photo's notice counts down to the same moment.
    if (this.hold.lead.error) this.hold.lead.error.retryAt = this.hold.retryAt;
    this.#holdTimer = setTimeout(() => this.#wake(), seconds * 1000);
    this.#emit("change");
  }

  /**
   * The wait is over. A server out of reach is asked /readyz first (a photo is not uploaded to
   * it again to find out); one that answered busy or rate limited is asked by the refused photo
   * itself. Then the refused photo goes again, first, and the batch after it.
   */
  async #wake() {
    const hold = this.hold;
    if (!hold) return;
    if (hold.code === "network" && !(await serverAnswers())) {
      if (this.hold === hold) this.#wait(this.#backoff());
      return;
    }
    if (this.hold !== hold) return; // the person's Retry, or the queue cleared, came first
    this.#release();
    const { lead } = hold;
    if (this.items.includes(lead) && lead.status === "error") {
      lead.autoRetry.take(); // its one automatic retry (retry.js) is this one
      lead.status = "waiting";
      lead.error = null;
      lead.progress = 0;
    }
    this.#emit("change");
    this.#pump();
  }

  #release() {
    clearTimeout(this.#holdTimer);
    this.hold = null;
  }

  async #analyse(photo) {
    const limit = this.limits()?.max_upload_bytes;
    if (limit && photo.file.size > limit) {
      this.#fail(photo, new ApiError({ status: 413, code: "too_large", message: "upload too large" }));
      return;
    }
    // A file the browser cannot read (a folder, a file moved or deleted since it was chosen) made
    // the upload fail before it was sent, which read as the server being unreachable.
    const readable = await photo.file.slice(0, 1).arrayBuffer().then(() => true, () => false);
    if (!this.items.includes(photo)) return; // taken out while it was read
    if (!readable) {
      this.#fail(photo, new ApiError({ status: 0, code: "unreadable", message: "the file could not be read" }));
      return;
    }
    const refused = await this.#refusedByItsHeader(photo);
    if (!this.items.includes(photo)) return; // taken out while its header was read
    if (refused) {
      this.#fail(photo, refused);
      return;
    }
    photo.status = "uploading";
    photo.progress = 0;
    photo.controller = new AbortController();
    this.#emit("change");
    try {
      const response = await request("v1/analyze", {
        method: "POST",
        image: photo.file,
        signal: photo.controller.signal,
        onUploadProgress: (fraction) => {
          photo.progress = fraction;
          if (fraction >= 1) photo.status = "analysing";
          this.#emit("progress", photo);
        },
      });
      photo.result = await response.json();
      photo.timings = parseServerTiming(response.headers.get("server-timing"));
      photo.cache = response.headers.get("x-cache");
      photo.elapsedMs = response.elapsedMs;
      photo.status = "done";
      this.#emit("change");
    } catch (error) {
      if (isAbort(error)) return; // taken out of the queue
      if ((error.code === "unauthorized" || error.code === "forbidden") && (await this.authorize(error))) {
        photo.status = "waiting";
        this.#emit("change");
        return; // the pump picks it up again
      }
      this.#fail(photo, error);
    } finally {
      photo.controller = null;
    }
  }

  /**
   * The server's too_many_pixels or bad_dimensions, said before the upload when the photo's
   * header shows it (the server's checks, in its order: ingest.py _check_size): a 42 MP JPEG, or
   * a 20000×300 panorama, went up whole (seconds on a phone) only to be refused. The server stays
   * the judge: a header not read here (or no limits yet) is sent as before.
   */
  async #refusedByItsHeader(photo) {
    const limits = this.limits();
    const size = limits ? await readImageSize(photo.file) : null;
    if (!size) return null;
    const { width, height } = size; // as stored, before any EXIF rotation: both sides are checked alike
    const budget = size.format === "jpeg" ? limits.max_pixels : limits.max_pixels_lossless;
    const pixels = width * height;
    if (budget && pixels > budget) {
      return new ApiError({
        status: 422,
        code: "too_many_pixels",
        message: `the image has ${width}×${height} = ${pixels} pixels; the limit for ${size.format} is ${budget}`,
        details: { width, height, pixels, max_pixels: budget },
      });
    }
    const { min_side_px: min, max_side_px: max } = limits;
    if (!min || !max || [width, height].every((side) => min <= side && side <= max)) return null;
    return new ApiError({
      status: 422,
      code: "bad_dimensions",
      message: `the image is ${width}×${height} px; each side must be between ${min} and ${max} px`,
      details: { width, height, min_side_px: min, max_side_px: max },
    });
  }

  #fail(photo, error) {
    photo.autoRetry.note(error);
    photo.status = "error";
    photo.error = error;
    this.#emit("change");
  }
}
