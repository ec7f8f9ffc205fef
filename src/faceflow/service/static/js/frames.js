// A photo decoded at about the size a picture of it needs, rather than whole: a 31.5 MP photo
// decoded whole is 126 MB for a moment, and the tab's allocator keeps that memory after. Used for
// the pictures on the page (pictures.js) and the ID photo's smaller upload (shrink.js).

import { readImageSize } from "./imagesize.js";

// A JPEG decodes at n/8 of its size, n = 1…8 (its own DCT scaling), in a fraction of the time and
// memory. Chromium's ImageDecoder takes the largest n whose pixels are at most those asked for:
// asked for exactly what is needed, it rounds down to a smaller picture than that (a 2000×3000
// photo's 427×640 view was decoded at 1/8, 250×375, and scaled up).
const EIGHTHS = 8;

/**
 * `file` decoded with at least `area` pixels, and as few more as its format allows, where the
 * browser can (WebCodecs' ImageDecoder); a VideoFrame the caller closes, in the photo's
 * EXIF-rotated pixels as createImageBitmap's are. Null where it cannot, or where that would be
 * the whole photo anyway. Other formats than JPEG come whole: check the frame's size.
 */
export async function smallFrame(file, area) {
  if (typeof ImageDecoder === "undefined") return null;
  const size = await readImageSize(file); // the format from its bytes: a dropped file's type may be empty
  const type = size && `image/${size.format}`;
  if (!type || !(await ImageDecoder.isTypeSupported(type))) return null;
  // The smallest n/8 with enough pixels (the area is the same either way round).
  const eighths = Math.max(1, Math.ceil(EIGHTHS * Math.sqrt(area / (size.width * size.height))));
  if (eighths >= EIGHTHS) return null;
  // A pixel more each way than n/8's own size: rounding down, the decoder still lands on n.
  const desiredWidth = Math.ceil((size.width * eighths) / EIGHTHS) + 1;
  const desiredHeight = Math.ceil((size.height * eighths) / EIGHTHS) + 1;
  const decoder = new ImageDecoder({ data: file.stream(), type, desiredWidth, desiredHeight });
  try {
    return (await decoder.decode()).image;
  } finally {
    decoder.close();
  }
}
