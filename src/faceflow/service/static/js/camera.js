// Taking a photo with the device's camera (getUserMedia), with a head-and-shoulders outline to
// stand in. The picture becomes a JPEG file and joins the queue like a chosen one. Nothing is
// recorded or sent until "Take photo"; the camera is released as soon as the dialog closes.

import { byId } from "./dom.js";
import { t } from "./i18n.js";

// Enough pixels for any preset's head at 300 dpi; phones give less if they must.
const IDEAL_SIZE = { width: { ideal: 1920 }, height: { ideal: 1440 } };
const JPEG_QUALITY = 0.92;

/** The message for a getUserMedia failure, by the DOMException's name. */
function failureKey(error) {
  if (error?.name === "NotAllowedError" || error?.name === "SecurityError") return "camera.denied";
  if (error?.name === "NotFoundError" || error?.name === "OverconstrainedError") return "camera.missing";
  return "camera.failed";
}

/** "camera-2026-12-04-22-41-07.jpg": files named by when they were taken, so downloads are too. */
function fileName(date = new Date()) {
  const pad = (n) => String(n).padStart(2, "0");
  const parts = [date.getFullYear(), pad(date.getMonth() + 1), pad(date.getDate()), pad(date.getHours()), pad(date.getMinutes()), pad(date.getSeconds())];
  return `camera-${parts.join("-")}.jpg`;
}

export class Camera {
  #dialog = byId("camera-dialog");
  #video = byId("camera-video");
  #take = byId("camera-take");
  #error = byId("camera-error");
  #stream = null;

  /** `onPhoto(file)` receives each photo taken. */
  constructor({ onPhoto }) {
    this.onPhoto = onPhoto;
    this.#take.addEventListener("click", () => this.#capture());
    byId("camera-cancel").addEventListener("click", () => this.#dialog.close());
    // However the dialog closes (Cancel, Esc, a photo taken), the camera light goes off.
    this.#dialog.addEventListener("close", () => this.#stop());
  }

  async open() {
    this.#error.hidden = true;
    this.#take.disabled = true;
    this.#dialog.showModal();
    if (!navigator.mediaDevices?.getUserMedia) {
      this.#fail("camera.unsupported");
      return;
    }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "user", ...IDEAL_SIZE }, audio: false });
      if (!this.#dialog.open) {
        // Closed while the browser asked for permission.
        for (const track of stream.getTracks()) track.stop();
        return;
      }
      this.#stream = stream;
      this.#video.srcObject = stream;
      await this.#video.play();
      this.#take.disabled = false;
      this.#take.focus();
    } catch (error) {
      this.#fail(failureKey(error));
    }
  }

  #fail(key) {
    this.#error.textContent = t(key);
    this.#error.hidden = false;
  }

  #capture() {
    const { videoWidth: width, videoHeight: height } = this.#video;
    if (!width || !height) return;
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    canvas.getContext("2d").drawImage(this.#video, 0, 0, width, height);
    const name = fileName();
    canvas.toBlob(
      (blob) => {
        if (blob) this.onPhoto(new File([blob], name, { type: "image/jpeg" }));
      },
      "image/jpeg",
      JPEG_QUALITY,
    );
    this.#dialog.close();
  }

  #stop() {
    for (const track of this.#stream?.getTracks() ?? []) track.stop();
    this.#stream = null;
    this.#video.srcObject = null;
  }
}
