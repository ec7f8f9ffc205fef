// Wires the page together: server status and API key, photo picking/dropping, the viewer and the
// ID-photo panel.

import { BUSY, request } from "./api.js";
import { KeyPrompt } from "./auth.js";
import { Camera } from "./camera.js";
import { byId } from "./dom.js";
import { droppedFiles } from "./dropped.js";
import { Examples } from "./examples.js";
import { applyStatic, language, onLanguageChange, setLanguage, t } from "./i18n.js";
import { IdPhotoPanel } from "./idphoto.js";
import { describeError } from "./messages.js";
import { clearNotice, showNotice } from "./notice.js";
import { MAX_PHOTOS, PhotoQueue } from "./uploads.js";
import { Viewer } from "./viewer.js";

const statusLine = byId("server-status");
const keyButton = byId("key-button");
const dropzone = byId("dropzone");
const fileInput = byId("file-input");
const langSwitch = byId("lang-switch");
// How often the status badge asks /readyz whether the server is still there.
const STATUS_POLL_MS = 5_000;

const keys = new KeyPrompt();
let info = null;
let panelStarted = false;
let status = { key: "status.connecting", vars: {}, state: "busy" };

const limits = () => info?.limits ?? null;
const queue = new PhotoQueue({ authorize: (error) => askKey(error), limits });
new Viewer(queue, { limits, askKey: () => askKey(null) });
// Once photos are in, the drop zone shrinks to a bar so the results come first.
queue.addEventListener("change", () => dropzone.classList.toggle("dropzone--compact", queue.items.length > 0));
const panel = new IdPhotoPanel(queue, { limits, askKey: (error) => askKey(error) });
const camera = new Camera({ onPhoto: (file) => queue.add([file]) });
byId("camera-open").addEventListener("click", () => camera.open());
const examples = new Examples({ onPhoto: (file) => queue.add([file]) });
// Photos beyond the queue's room are left out, and the person is told how many (uploads.js);
// photos added later that all fit take the notice away, as Clear all does.
const queueNotice = byId("queue-notice");
let leftOut = null; // the last add's {given, taken, left}, while photos were left out
function sayLeftOut() {
  if (!leftOut) clearNotice(queueNotice);
  else showNotice(queueNotice, { tone: "info", title: t("queue.full"), text: t("queue.fullText", { max: MAX_PHOTOS, ...leftOut }) });
}
queue.addEventListener("taken", (event) => {
  leftOut = event.detail.left > 0 ? event.detail : null;
  sayLeftOut();
});
onLanguageChange(sayLeftOut);
byId("queue-clear").addEventListener("click", () => {
  leftOut = null;
  sayLeftOut();
  queue.clear();
  // The button goes with the queue: focus goes back to where photos are added, not the page's top.
  dropzone.focus();
});

/** The status badge: a message key (shown in the current language) and ok | warn | busy | error. */
function setStatus(key, state, vars = {}) {
  status = { key, vars, state };
  // The badge is a live region: text written again, even the same, is read out again (every poll).
  const text = t(key, vars);
  if (statusLine.textContent !== text) statusLine.textContent = text;
  statusLine.dataset.state = state;
  statusLine.title = state === "error" ? t("status.gone.title") : "";
}

function useInfo(body) {
  info = body;
  setStatus(body.pool?.ready === false ? "status.starting" : "status.ready", "ok", { version: body.version });
  keyButton.hidden = !body.auth_required;
  if (!panelStarted) {
    panelStarted = true;
    panel.init();
  }
  examples.load();
}

/** Ask for an API key; true once a working one is stored (failed uploads are then retried). */
async function askKey(error) {
  const reason = t(error?.code === "forbidden" ? "key.reasonForbidden" : "key.reason");
  const body = await keys.ask(reason);
  if (!body) {
    if (!info) setStatus("status.key", "warn");
    return false;
  }
  useInfo(body);
  queue.retryFailed(["unauthorized", "forbidden"]);
  return true;
}

// One /v1/info question at a time, and one retry waiting: the readiness poll asks only when
// none is. Each failed ask started a retry of its own, the poll's too, so a page left open while
// the server was down asked more often with every poll (198 times in its first minute, 54 of them
// in its last 10 s) and met the server with all of them when it came back.
let infoAsking = false;
let infoRetry = 0; // the timer of the retry waiting, 0 when none is

async function loadInfo() {
  if (infoAsking) return;
  infoAsking = true;
  try {
    const response = await request("v1/info");
    useInfo(await response.json());
  } catch (error) {
    if (error.code === "unauthorized" || error.code === "forbidden") {
      setStatus("status.key", "warn");
      await askKey(error);
      return;
    }
    const { retryAfter } = describeError(error);
    setStatus(...infoStatus(error.code));
    if (retryAfter) {
      infoRetry = setTimeout(() => {
        infoRetry = 0;
        loadInfo();
      }, retryAfter * 1000);
    }
  } finally {
    infoAsking = false;
  }
}

/**
 * The badge for a /v1/info that was not answered: [message key, state]. A server that answered
 * busy or rate limited is there, and is asked again after its Retry-After: amber, saying so, not
 * red "Something went wrong" titled "does not answer".
 */
function infoStatus(code) {
  if (code === "network") return ["status.gone", "error"];
  if (code === "rate_limited") return ["status.limited", "warn"];
  if (code === "not_ready") return ["status.warming", "warn"]; // not busy: not ready for anyone yet
  if (BUSY.has(code)) return ["status.busy", "warn"];
  if (code === "proxy_unauthorized") return ["error.signIn", "warn"];
  if (code === "proxy_forbidden") return ["error.refused", "warn"];
  return ["error.other", "error"];
}

/**
 * Keep the badge live: /readyz (no key needed) every few seconds. A server that stops answering
 * turns it red; one that comes back is asked for /v1/info again.
 */
async function pollReady() {
  try {
    const response = await fetch("readyz", { cache: "no-store" });
    if (!info) {
      // Never reached yet (or gone at the first try): the server answers again, so ask again,
      // unless a retry is already on its way (or the page waits for the person's API key).
      if (status.key !== "status.key" && !infoRetry) loadInfo();
    } else if (response.ok) {
      setStatus("status.ready", "ok", { version: info.version });
    } else if (response.status === 503) {
      setStatus("status.starting", "warn", { version: info.version });
    } else if (response.status === 502 || response.status === 504) {
      setStatus("status.gone", "error"); // a proxy in front answers for a faceflow that is gone
    }
  } catch {
    setStatus("status.gone", "error");
  } finally {
    setTimeout(pollReady, STATUS_POLL_MS);
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
  const body = await keys.ask(t("key.reasonAnother"));
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
  droppedFiles(event.dataTransfer).then(addFiles);
});
document.addEventListener("paste", (event) => {
  const files = event.clipboardData?.files;
  if (files?.length) {
    event.preventDefault();
    addFiles(files);
  }
});

// The page keeps no photo anywhere but in its own memory: Back, a reload or closing the tab while
// photos are on their way (or an ID photo, or a print sheet) would lose them without a word. The
// browser asks first, in its own words (a page cannot choose them); an idle page leaves at once.
window.addEventListener("beforeunload", (event) => {
  if (!queue.busy && !panel.busy) return;
  event.preventDefault();
  event.returnValue = true; // what older browsers (Chrome before 119) need to ask
});

langSwitch.addEventListener("click", () => setLanguage(language() === "zh" ? "en" : "zh"));
onLanguageChange(() => {
  setStatus(status.key, status.state, status.vars);
  langSwitch.lang = language() === "zh" ? "en" : "zh-CN";
});
applyStatic();
langSwitch.lang = language() === "zh" ? "en" : "zh-CN";
statusLine.textContent = t(status.key);
loadInfo();
setTimeout(pollReady, STATUS_POLL_MS);
