// Presenting faces: colours, "F 33 (29–37)" labels, the overlay drawn over the photo and the table.

import { h, svg } from "./dom.js";
import { t } from "./i18n.js";
import { formatMs } from "./messages.js";

// Each a background under a label's white text, so each reaches WCAG AA's 4.5:1 with white:
// until 2026-12-07 five did not (#e0365a, #0e9f6e, #d97706, #0891b2, #65a30d, 3.1-4.3:1);
// they were darkened just enough, keeping their hue.
const COLOURS = ["#2f5bea", "#de2a50", "#0c855c", "#b06105", "#7c3aed", "#077f9c", "#db2676", "#51820a"];

export function faceColour(index) {
  return COLOURS[index % COLOURS.length];
}

/** Faces left to right by the box's left edge, as people read a group photo. */
export function leftToRight(faces) {
  return [...faces].sort((a, b) => a.box[0] - b.box[0]);
}

/** "F 33 (29–37)" from age.years/low/high and gender; parts that were not asked for are left out. */
export function faceLabel(face) {
  const parts = [];
  if (face.gender) parts.push(t(face.gender.label === "female" ? "gender.f" : "gender.m"));
  if (face.age) {
    const { years, low, high } = face.age;
    parts.push(`${Math.round(years)} (${Math.round(low)}–${Math.round(high)})`);
  }
  return parts.join(" ");
}

const LANDMARKS = ["right_eye", "left_eye", "nose", "mouth_right", "mouth_left"];

/**
 * Draw boxes and landmarks into `overlay` (an SVG whose viewBox is the photo's pixel grid, so it
 * scales with the displayed photo; strokes keep their on-screen width) and HTML labels into
 * `labels`, positioned in percent of the photo.
 */
export function drawFaces(overlay, labels, report, faces) {
  const { width, height } = report;
  overlay.setAttribute("viewBox", `0 0 ${width} ${height}`);
  overlay.replaceChildren();
  labels.replaceChildren();
  faces.forEach((face, index) => {
    const [x1, y1, x2, y2] = face.box;
    const colour = faceColour(index);
    const group = svg("g", { class: "face", "data-face": index + 1, stroke: colour });
    group.append(
      svg("rect", { class: "face__box", x: x1, y: y1, width: x2 - x1, height: y2 - y1, "vector-effect": "non-scaling-stroke" }),
    );
    for (const name of LANDMARKS) {
      const point = face.landmarks?.[name];
      // A zero-length path with round caps is a dot that keeps its size at any zoom.
      if (point) group.append(svg("path", { class: "face__landmark", d: `M${point[0]} ${point[1]}h0`, "vector-effect": "non-scaling-stroke" }));
    }
    overlay.append(group);

    const label = h("span", { className: "face-label", dataset: { face: String(index + 1) } }, h("b", {}, String(index + 1)), h("span", { className: "face-label__text" }, faceLabel(face) || "face"));
    label.style.setProperty("--colour", colour);
    // Labels of faces near the right edge hang left from the box's right edge so they stay
    // inside the photo; a face at the top edge has no room above its box, so its label goes inside.
    const fromEnd = x1 / width > 0.6;
    label.style.left = `${((fromEnd ? x2 : x1) / width) * 100}%`;
    label.style.top = `${(y1 / height) * 100}%`;
    label.classList.toggle("face-label--end", fromEnd);
    label.classList.toggle("face-label--inside", y1 / height < 0.06);
    labels.append(label);
  });
}

// A landmark dot's diameter: this fraction of its face's width on screen, within these pixels,
// so a group photo's small faces get small dots and a portrait's dots stay visible.
const DOT_OF_FACE = 0.045;
const DOT_PX = [2, 9];

/** Size every landmark dot for the photo as displayed (`scale`: screen px per photo px). */
export function sizeDots(overlay, faces, scale) {
  overlay.querySelectorAll(".face").forEach((group, index) => {
    const [x1, , x2] = faces[index].box;
    const dot = Math.min(DOT_PX[1], Math.max(DOT_PX[0], DOT_OF_FACE * (x2 - x1) * scale));
    group.style.setProperty("--dot", `${dot.toFixed(2)}px`);
  });
}

function overlaps(a, b) {
  return a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
}

/**
 * Labels never cover each other: when any two would, every label shrinks to its face's number
 * (the faces table, with the same numbers and colours, is the legend), and numbers that still
 * collide are moved down, one under the other.
 */
export function arrangeLabels(labels) {
  const all = [...labels.querySelectorAll(".face-label")];
  labels.classList.remove("labels--numbers");
  for (const label of all) label.style.removeProperty("--shift");
  const crowded = () => {
    const boxes = all.map((label) => label.getBoundingClientRect());
    return boxes.some((box, i) => boxes.slice(i + 1).some((other) => overlaps(box, other)));
  };
  if (!crowded()) return;
  labels.classList.add("labels--numbers");
  const placed = [];
  for (const label of [...all].sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top)) {
    let shift = 0;
    let box = label.getBoundingClientRect();
    for (let tries = 0; tries < all.length && placed.some((other) => overlaps(box, other)); tries += 1) {
      shift += box.height + 2;
      label.style.setProperty("--shift", `${shift}px`);
      box = label.getBoundingClientRect();
    }
    placed.push(box);
  }
}

function csvCell(value) {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** The faces as CSV, one row per face in the table's order (left to right). */
export function facesCsv(faces) {
  const header = ["face", "x1", "y1", "x2", "y2", "score", "gender", "gender_probability", "age", "age_low", "age_high"];
  const rows = faces.map((face, index) => [
    index + 1,
    ...face.box.map((v) => Math.round(v)),
    face.score.toFixed(3),
    face.gender?.label ?? "",
    face.gender ? face.gender.probability.toFixed(3) : "",
    face.age ? face.age.years.toFixed(1) : "",
    face.age ? Math.round(face.age.low) : "",
    face.age ? Math.round(face.age.high) : "",
  ]);
  return [header, ...rows].map((row) => row.map(csvCell).join(",")).join("\r\n") + "\r\n";
}

function percent(probability) {
  return `${Math.round(probability * 100)}%`;
}

/** One table row per face, matching the overlay's numbers and colours. */
export function faceRows(faces) {
  return faces.map((face, index) => {
    const [x1, y1, x2, y2] = face.box;
    const swatch = h("span", { className: "dot", attrs: { "aria-hidden": "true" } });
    swatch.style.setProperty("--colour", faceColour(index));
    const genderName = face.gender ? t(face.gender.label === "female" ? "gender.female" : "gender.male") : "–";
    const gender = face.gender ? `${genderName} ` : "–";
    const age = face.age ? `${Math.round(face.age.years)}` : "–";
    // Rows are focusable, so a keyboard user can pick a face out on the photo as a mouse user does:
    // one Tab stop for the table (the first row), the arrow keys from row to row (viewer.js).
    return h(
      "tr",
      { tabIndex: index === 0 ? 0 : -1, dataset: { face: String(index + 1) } },
      h("th", { scope: "row" }, swatch, String(index + 1)),
      h("td", {}, gender, face.gender ? h("small", {}, percent(face.gender.probability)) : null),
      h("td", {}, age, face.age ? h("small", {}, ` ${Math.round(face.age.low)}–${Math.round(face.age.high)}`) : null),
      h("td", { className: "num" }, face.score.toFixed(2)),
      h("td", { className: "num" }, `${Math.round(x2 - x1)}×${Math.round(y2 - y1)}`),
    );
  });
}

/** <dt>/<dd> pairs: the round trip measured here, then each Server-Timing phase. A cached answer
 * carries the phases of the run that made it, not its own: only its round trip is shown. */
export function timingItems(photo) {
  const items = [[t("timing.round"), formatMs(photo.elapsedMs)]];
  if (photo.cache !== "hit") for (const { name, ms } of photo.timings) items.push([name, formatMs(ms)]);
  return items.flatMap(([name, value]) => [h("div", { className: "timing" }, h("dt", {}, name), h("dd", {}, value))]);
}
