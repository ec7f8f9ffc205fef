// Presenting faces: colours, "F 33 (29–37)" labels, the overlay drawn over the photo and the table.

import { h, svg } from "./dom.js";
import { t } from "./i18n.js";
import { formatMs } from "./messages.js";

const COLOURS = ["#2f5bea", "#e0365a", "#0e9f6e", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];

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

    const label = h("span", { className: "face-label", dataset: { face: String(index + 1) } }, h("b", {}, String(index + 1)), faceLabel(face) || "face");
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
    // Rows are focusable, so a keyboard user can pick a face out on the photo as a mouse user does.
    return h(
      "tr",
      { tabIndex: 0, dataset: { face: String(index + 1) } },
      h("th", { scope: "row" }, swatch, String(index + 1)),
      h("td", {}, gender, face.gender ? h("small", {}, percent(face.gender.probability)) : null),
      h("td", {}, age, face.age ? h("small", {}, ` ${Math.round(face.age.low)}–${Math.round(face.age.high)}`) : null),
      h("td", { className: "num" }, face.score.toFixed(2)),
      h("td", { className: "num" }, `${Math.round(x2 - x1)}×${Math.round(y2 - y1)}`),
    );
  });
}

/** <dt>/<dd> pairs: the round trip measured here, then each Server-Timing phase. */
export function timingItems(photo) {
  const items = [[t("timing.round"), formatMs(photo.elapsedMs)]];
  for (const { name, ms } of photo.timings) items.push([name, formatMs(ms)]);
  return items.flatMap(([name, value]) => [h("div", { className: "timing" }, h("dt", {}, name), h("dd", {}, value))]);
}
