// The printable compliance report: the ID photo, what it was made as, and every check in plain
// words with what to do about it. Built into #print-sheet, which only the print stylesheet shows,
// then handed to the browser's print dialog (where "Save as PDF" makes a file of it).

import { byId, h } from "./dom.js";
import { checkHint, checkName, t } from "./i18n.js";

/**
 * Fill the print sheet: `body` is the shown preview's JSON answer and `imageUrl` its picture;
 * `photoName` the source file; `specTitle` the size's name; `describe(check)` a check's measured
 * and allowed values as text.
 */
export function fillPrintSheet({ body, imageUrl, photoName, specTitle, describe }) {
  const report = body.report ?? { status: "pass", checks: [] };
  const rows = (report.checks ?? []).map((check) =>
    h(
      "tr",
      { className: `print-check print-check--${check.status}` },
      h("th", { scope: "row" }, checkName(check.name)),
      h("td", {}, t(`badge.${check.status}`)),
      h("td", {}, describe(check)),
      h("td", {}, check.status === "pass" ? "" : (checkHint(check) ?? "")),
    ),
  );
  const facts = [
    [t("print.photo"), photoName],
    [t("print.size"), `${specTitle} · ${body.width}×${body.height} px${body.dpi ? ` · ${body.dpi} dpi` : ""}`],
    [t("print.made"), new Date().toLocaleString(document.documentElement.lang)],
  ];
  byId("print-sheet").replaceChildren(
    h("h2", {}, t("print.title")),
    h("div", { className: "print-sheet__head" },
      h("img", { src: imageUrl, alt: t("idphoto.previewAlt"), className: "print-sheet__photo" }),
      h("div", {},
        h("p", { className: `print-sheet__status print-sheet__status--${report.status}` }, t(`report.${report.status}`)),
        h("dl", {}, ...facts.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)])),
      ),
    ),
    h("table", { className: "print-sheet__checks" },
      h("thead", {}, h("tr", {}, ...["print.check", "print.result", "print.measured", "print.fix"].map((key) => h("th", { scope: "col" }, t(key))))),
      h("tbody", {}, ...rows),
    ),
  );
}
