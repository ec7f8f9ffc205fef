// The files a drop brings. A dropped folder is a File the browser cannot read (Chromium gives it
// 4096 bytes and a NotFoundError on reading), and it went up as a photo: the upload failed at
// once and read "Connection problem: the server could not be reached". Its photos are what the
// person meant: they come instead, from the folder and the folders in it, in name order.

/** The photos a dropped folder holds, by the type its file names give (hidden files left out). */
const isPhoto = (file) => file.type.startsWith("image/") && !file.name.startsWith(".");

const fileOf = (entry) => new Promise((resolve, reject) => entry.file(resolve, reject));

async function entriesOf(folder) {
  const reader = folder.createReader();
  const entries = [];
  // readEntries gives a batch at a time (100 in Chromium) until an empty one.
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) break;
    entries.push(...batch);
  }
  return entries.sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
}

async function photosIn(folder) {
  const photos = [];
  for (const entry of await entriesOf(folder)) {
    if (entry.isDirectory) photos.push(...(await photosIn(entry)));
    else if (entry.isFile) {
      const file = await fileOf(entry);
      if (isPhoto(file)) photos.push(file);
    }
  }
  return photos;
}

/**
 * The files of a drop event's `dataTransfer`, each dropped folder replaced by its photos. A folder
 * with none stays as dropped, for the page to say it could not be read. Call it in the event's
 * handler: the entries are only handed out while it runs.
 */
export async function droppedFiles(transfer) {
  const files = [...(transfer.files ?? [])];
  const items = [...(transfer.items ?? [])].filter((item) => item.kind === "file");
  const entries = items.map((item) => item.webkitGetAsEntry?.() ?? null);
  // Without entries (a browser without them, a drop made by a script) the files are as dropped.
  if (entries.length !== files.length || entries.some((entry) => !entry)) return files;
  const brought = [];
  for (const [index, entry] of entries.entries()) {
    const photos = entry.isDirectory ? await photosIn(entry).catch(() => []) : [];
    brought.push(...(photos.length ? photos : [files[index]]));
  }
  return brought;
}
