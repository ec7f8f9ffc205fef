// A photo's pictures on the page, each no larger than where it is shown: a thumbnail for the
// queue strip and a view for the photo card. A browser keeps an <img>'s picture decoded at its
// full size: a 31.5 MP photo is 126 MB of the tab's memory. With the photo's own object URL in
// every thumbnail and on show, eight of them took the tab's renderer from 130 MB to 615–736 MB;
// with these, to 202–220 MB (docs/web-page.md, Memory).

import { smallFrame } from "./frames.js";

// The thumbnail is 84×60 CSS px, cropped to fill (app.css .thumb img): this is wide enough for a
// screen of density 3, and tall enough at density 2 for a photo as wide as 2:1.
const THUMB_WIDTH_PX = 256;
// The photo card shows a photo at most 640 CSS px tall (app.css .stage__photo) and never wider
// than the page's layout (app.css .layout, 1320 px).
const VIEW_MAX_HEIGHT_CSS_PX = 640;
const VIEW_MAX_WIDTH_CSS_PX = 1320;
// A photo barely larger than its view is shown as it is: a copy would save little and cost a
// decode and an encode.
const VIEW_MIN_SAVING = 0.75;
// WebP keeps a PNG's transparency, and is small; a browser that cannot encode it writes PNG.
const PICTURE_TYPE = "image/webp";
const PICTURE_QUALITY = 0.9;

// One decode at a time: eight 31.5 MP photos dropped together, decoded at once, would hold a
// gigabyte for a moment.
let line = Promise.resolve();

function inTurn(task) {
  const turn = line.then(task);
  line = turn.catch(() => {});
  return turn;
}

/**
 * `file` decoded at `size` (createImageBitmap's resizeWidth/resizeHeight, after its EXIF
 * rotation, as the server's pixels are), as a WebP blob. `area` is about the pixels it needs.
 */
async function scaled(file, size, area) {
  const frame = await smallFrame(file, area).catch(() => null);
  try {
    const bitmap = await createImageBitmap(frame ?? file, { ...size, resizeQuality: "high" });
    try {
      const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
      canvas.getContext("2d").drawImage(bitmap, 0, 0);
      return await canvas.convertToBlob({ type: PICTURE_TYPE, quality: PICTURE_QUALITY });
    } finally {
      bitmap.close(); // its pixels now, not when it is collected
    }
  } finally {
    frame?.close();
  }
}

/** The pictures of one photo, made when first asked for, as object URLs released with it. */
export class Pictures {
  #file;
  #urls = [];
  #released = false;
  #thumbnail = null;
  #view = null;

  constructor(file) {
    this.#file = file;
  }

  /** The thumbnail's URL; null when the browser cannot decode the file (not a picture). */
  thumbnail() {
    // Enough pixels for its width whatever the photo's shape (up to 1:2, as for the width).
    this.#thumbnail ??= this.#make(() => scaled(this.#file, { resizeWidth: THUMB_WIDTH_PX }, 2 * THUMB_WIDTH_PX ** 2));
    return this.#thumbnail;
  }

  /**
   * The URL of a view of the photo for the photo card, `width`×`height` being its size in the
   * server's pixels (what its faces are measured in); null when the photo itself is small
   * enough to show, or the browser cannot scale it.
   */
  view(width, height) {
    this.#view ??= this.#make(() => {
      const density = window.devicePixelRatio || 1;
      const scale = Math.min(1, (VIEW_MAX_WIDTH_CSS_PX * density) / width, (VIEW_MAX_HEIGHT_CSS_PX * density) / height);
      if (scale > VIEW_MIN_SAVING) return null;
      const size = { resizeWidth: Math.max(1, Math.round(width * scale)), resizeHeight: Math.max(1, Math.round(height * scale)) };
      return scaled(this.#file, size, size.resizeWidth * size.resizeHeight);
    });
    return this.#view;
  }

  /** The photo left the page: its pictures go (and one still to be made is not made). */
  release() {
    this.#released = true;
    for (const url of this.#urls) URL.revokeObjectURL(url);
    this.#urls = [];
  }

  async #make(blobOf) {
    try {
      const blob = await inTurn(() => (this.#released ? null : blobOf()));
      if (!blob || this.#released) return null;
      const url = URL.createObjectURL(blob);
      this.#urls.push(url);
      return url;
    } catch {
      return null; // not a picture this browser can decode
    }
  }
}
