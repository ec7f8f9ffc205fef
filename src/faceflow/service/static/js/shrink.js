// A big photo is made smaller in the browser before its first ID-photo upload, to what the ID
// photo needs: on a phone's uplink every megabyte costs seconds.
//
// The largest head any preset asks for is 36 mm at 300 dpi, about 425 px from chin to crown. The
// detector's box (brows to chin) is shorter than the head, so a photo scaled until that box is
// TARGET_FACE_PX tall still has the head at well over 425 px: nothing is lost at the output size.

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
  try {
    const bitmap = await createImageBitmap(photo.file); // EXIF orientation applied, as the server does
    // The face box is in the server's (oriented) pixels: only scale what matches them.
    if (bitmap.width !== photo.result.width || bitmap.height !== photo.result.height) {
      bitmap.close();
      return null;
    }
    const width = Math.round(bitmap.width * scale);
    const height = Math.round(bitmap.height * scale);
    const canvas = new OffscreenCanvas(width, height);
    const context = canvas.getContext("2d");
    context.imageSmoothingQuality = "high";
    context.drawImage(bitmap, 0, 0, width, height);
    bitmap.close();
    const blob = await canvas.convertToBlob({ type: "image/jpeg", quality: JPEG_QUALITY });
    if (blob.size >= photo.file.size) return null;
    return new File([blob], photo.file.name, { type: "image/jpeg" });
  } catch {
    return null; // a browser that cannot decode or draw it: send the original
  }
}
