// A big photo is made smaller in the browser before its first ID-photo upload, to what the ID
// photo needs: on a phone's uplink every megabyte costs seconds.
//
// The largest head any preset asks for is 36 mm at 300 dpi, about 425 px from chin to crown. The
// detector's box (brows to chin) is shorter than the head, so a photo scaled until that box is
// TARGET_FACE_PX tall still has the head at well over 425 px: nothing is lost at the output size.

import { smallFrame } from "./frames.js";

const TARGET_FACE_PX = 600;
// Re-encoding costs a little quality and time; only worth it for a real saving.
const MAX_SCALE = 0.75;
const MIN_BYTES = 400_000;
const JPEG_QUALITY = 0.92;

/** The file to upload for `photo`'s ID photo: the photo itself, or a smaller JPEG of it. */
export async function uploadFor(photo) {
  photo.idUpload ??= (await shrink(photo)) ?? photo.file;
  return photo.idUpload;
}

async function shrink(photo) {
  const faces = photo.result?.faces ?? [];
  // JPEG only: a PNG may be transparent, and re-encoding it as JPEG would change its pixels.
  if (faces.length !== 1 || photo.file.size < MIN_BYTES || photo.file.type !== "image/jpeg") return null;
  const [, top, , bottom] = faces[0].box;
  const scale = TARGET_FACE_PX / (bottom - top);
  if (!(scale <= MAX_SCALE)) return null;
  // The ID photo's size in the server's (oriented) pixels, which the face box is measured in.
  const width = Math.round(photo.result.width * scale);
  const height = Math.round(photo.result.height * scale);
  try {
    const picture = await decoded(photo.file, width, height, photo.result);
    if (!picture) return null;
    const canvas = new OffscreenCanvas(width, height);
    const context = canvas.getContext("2d");
    context.imageSmoothingQuality = "high";
    try {
      context.drawImage(picture, 0, 0, width, height);
    } finally {
      picture.close(); // its pixels now, not when it is collected
    }
    const blob = await canvas.convertToBlob({ type: "image/jpeg", quality: JPEG_QUALITY });
    if (blob.size >= photo.file.size) return null;
    return new File([blob], photo.file.name, { type: "image/jpeg" });
  } catch {
    return null; // a browser that cannot decode or draw it: send the original
  }
}

/**
 * `file` decoded with at least `width`×`height` pixels, EXIF orientation applied as the server
 * applies it: a JPEG at the smallest n/8 of its size that is enough (frames.js), so a 31.5 MP
 * photo no longer takes 126 MB of the tab's memory to make a 3 MP upload; else the whole photo
 * (createImageBitmap). Either way it is drawn down to the same size with the same smoothing and
 * encoded alike: the upload differs from a whole decode's by a fifth of a level on average
 * (docs/web-page.md). Null when it does not match the server's `size` (the face box is in its
 * pixels: only scale what matches them).
 */
async function decoded(file, width, height, size) {
  const frame = await smallFrame(file, width * height).catch(() => null);
  if (frame) {
    const [w, h] = [frame.displayWidth, frame.displayHeight];
    // n/8 of a side is rounded: the same shape within a pixel each way, not turned.
    if (w >= width && h >= height && Math.abs(w * size.height - h * size.width) <= size.width + size.height) {
      // Drawn from a bitmap, not the frame: a canvas drawing a VideoFrame kept its pixels, 17 MB
      // for each photo chosen (RssShmem, docs/web-page.md).
      try {
        return await createImageBitmap(frame);
      } finally {
        frame.close();
      }
    }
    frame.close();
  }
  const bitmap = await createImageBitmap(file);
  if (bitmap.width === size.width && bitmap.height === size.height) return bitmap;
  bitmap.close();
  return null;
}
