// Wires the page together: server status and API key, photo picking/dropping, the viewer and the
// ID-photo panel.

import { request } from "./api.js";
import { KeyPrompt } from "./auth.js";
import { byId } from "./dom.js";
import { IdPhotoPanel } from "./idphoto.js";
import { describeError } from "./messages.js";
import { PhotoQueue } from "./uploads.js";
import { Viewer } from "./viewer.js";

const statusLine = byId("server-status");
const keyButton = byId("key-button");
const dropzone = byId("dropzone");
const fileInput = byId("file-input");

const keys = new KeyPrompt();
let info = null;
let panelStarted = false;

const limits = () => info?.limits ?? null;
const queue = new PhotoQueue({ authorize: (error) => askKey(error), limits });
new Viewer(queue, { limits, askKey: () => askKey(null) });
// Once photos are in, the drop zone shrinks to a bar so the results come first.
queue.addEventListener("change", () => dropzone.classList.toggle("dropzone--compact", queue.items.length > 0));
const panel = new IdPhotoPanel(queue, { limits, askKey: (error) => askKey(error) });

function setStatus(text, state) {
  statusLine.textContent = text;
  statusLine.dataset.state = state;
}

function useInfo(body) {
  info = body;
  setStatus(`v${body.version} · ${body.pool?.ready === false ? "starting" : "ready"}`, "ok");
  keyButton.hidden = !body.auth_required;
  if (!panelStarted) {
    panelStarted = true;
    panel.init();
  }
}

/** Ask for an API key; true once a working one is stored (failed uploads are then retried). */
async function askKey(error) {
  const reason =
    error?.code === "forbidden"
      ? "The API key was not accepted. Enter a valid key for this server."
      : "This faceflow server asks for an API key.";
  const body = await keys.ask(reason);
  if (!body) {
    if (!info) setStatus("API key needed", "warn");
    return false;
  }
  useInfo(body);
  queue.retryFailed(["unauthorized", "forbidden"]);
  return true;
}

async function loadInfo() {
  try {
    const response = await request("v1/info");
    useInfo(await response.json());
  } catch (error) {
    if (error.code === "unauthorized" || error.code === "forbidden") {
      setStatus("API key needed", "warn");
      await askKey(error);
      return;
    }
    const { title, retryAfter } = describeError(error);
    setStatus(title, "error");
    if (retryAfter) setTimeout(loadInfo, retryAfter * 1000);
  }
}

function addFiles(files) {
  if (files?.length) queue.add(files);
}

dropzone.addEventListener("click", () => fileInput.click());
fileInput.addEventListener("change", () => {
  addFiles(fileInput.files);
  fileInput.value = ""; // choosing the same file again still fires "change"
});

keyButton.addEventListener("click", async () => {
  const body = await keys.ask("Enter another API key, or forget the one this tab keeps.");
  if (body) useInfo(body);
});

// Files may be dropped anywhere on the page; the drop zone lights up while they are dragged.
let dragDepth = 0;
const hasFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes("Files");
document.addEventListener("dragenter", (event) => {
  if (!hasFiles(event)) return;
  dragDepth += 1;
  dropzone.classList.add("dropzone--active");
});
document.addEventListener("dragleave", () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (dragDepth === 0) dropzone.classList.remove("dropzone--active");
});
document.addEventListener("dragover", (event) => {
  if (!hasFiles(event)) return;
  event.preventDefault();
  event.dataTransfer.dropEffect = "copy";
});
document.addEventListener("drop", (event) => {
  if (!hasFiles(event)) return;
  event.preventDefault();
  dragDepth = 0;
  dropzone.classList.remove("dropzone--active");
  addFiles(event.dataTransfer.files);
});
document.addEventListener("paste", (event) => {
  const files = event.clipboardData?.files;
  if (files?.length) {
    event.preventDefault();
    addFiles(files);
  }
});

loadInfo();
