// An image's format and pixel size from its first bytes, without decoding it: the page can refuse
// a photo over the server's pixel limit before sending it (a 42 MP JPEG is a few megabytes that a
// phone's uplink spends seconds on, only to be refused), and knows it at the cost of a few reads.
//
// The same four formats the server takes, read as it reads them (the stored size, before any
// EXIF rotation: the pixel count is the same either way). Anything else, or a header this cannot
// follow, is null: the photo is sent, and the server decides, as it always does.

// A JPEG's markers are walked one segment at a time; a file with more before its frame header is
// not worth following (the server will say).
const MAX_JPEG_SEGMENTS = 64;

/** {format: "jpeg" | "png" | "webp" | "gif", width, height} of `file`, or null. */
export async function readImageSize(file) {
  try {
    const head = await bytes(file, 0, 32);
    if (head.length < 10) return null;
    if (head[0] === 0xff && head[1] === 0xd8) return await jpegSize(file);
    if (ascii(head, 1, 3) === "PNG" && ascii(head, 12, 4) === "IHDR") {
      return sized("png", uint32be(head, 16), uint32be(head, 20));
    }
    if (ascii(head, 0, 3) === "GIF") return sized("gif", head[6] | (head[7] << 8), head[8] | (head[9] << 8));
    if (ascii(head, 0, 4) === "RIFF" && ascii(head, 8, 4) === "WEBP") return webpSize(head);
    return null;
  } catch {
    return null; // an unreadable file: the upload says what is wrong with it
  }
}

async function jpegSize(file) {
  let offset = 2; // after FFD8
  for (let segment = 0; segment < MAX_JPEG_SEGMENTS; segment += 1) {
    const at = await bytes(file, offset, 9);
    if (at.length < 4 || at[0] !== 0xff) return null;
    const marker = at[1];
    // Fill bytes (FF FF …) before a marker, and markers without a length (RSTn, TEM).
    if (marker === 0xff) {
      offset += 1;
      continue;
    }
    if ((marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      offset += 2;
      continue;
    }
    // A frame header, SOF0–SOF15 but DHT (C4), JPG (C8) and DAC (CC): precision, height, width.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (at.length < 9) return null;
      return sized("jpeg", (at[7] << 8) | at[8], (at[5] << 8) | at[6]);
    }
    if (marker === 0xd9 || marker === 0xda) return null; // the end, or the scan, with no frame header
    offset += 2 + ((at[2] << 8) | at[3]);
  }
  return null;
}

function webpSize(head) {
  const chunk = ascii(head, 12, 4);
  if (chunk === "VP8X") return sized("webp", 1 + uint24le(head, 24), 1 + uint24le(head, 27));
  if (chunk === "VP8L" && head[20] === 0x2f) {
    const bits = head[21] | (head[22] << 8) | (head[23] << 16) | (head[24] << 24);
    return sized("webp", 1 + (bits & 0x3fff), 1 + ((bits >>> 14) & 0x3fff));
  }
  if (chunk === "VP8 " && head[23] === 0x9d && head[24] === 0x01 && head[25] === 0x2a) {
    return sized("webp", (head[26] | (head[27] << 8)) & 0x3fff, (head[28] | (head[29] << 8)) & 0x3fff);
  }
  return null;
}

function sized(format, width, height) {
  // A height of 0 is a JPEG whose height comes later (a DNL marker): not known from the header.
  return width > 0 && height > 0 ? { format, width, height } : null;
}

async function bytes(file, offset, length) {
  return new Uint8Array(await file.slice(offset, offset + length).arrayBuffer());
}

function ascii(data, offset, length) {
  return String.fromCharCode(...data.subarray(offset, offset + length));
}

function uint32be(data, offset) {
  return ((data[offset] << 24) >>> 0) + ((data[offset + 1] << 16) | (data[offset + 2] << 8) | data[offset + 3]);
}

function uint24le(data, offset) {
  return data[offset] | (data[offset + 1] << 8) | (data[offset + 2] << 16);
}
