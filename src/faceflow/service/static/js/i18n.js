// Chinese and English: every string the page shows. The language comes from a switch the person
// used before (localStorage), else from the browser's languages; `t(key, vars)` looks a string
// up, `applyStatic()` fills the page's own elements (data-i18n, data-i18n-<attribute>), and
// `onLanguageChange(fn)` lets each part redraw what it built.

const STORAGE = "faceflow.lang";
export const LANGUAGES = { en: "en", zh: "zh-CN" };

const EN = {
  "skip": "Skip to content",
  "status.connecting": "Connecting…",
  "status.ready": "v{version} · ready",
  "status.starting": "v{version} · starting",
  "status.key": "API key needed",
  "status.gone": "Server unreachable",
  "status.gone.title": "The faceflow server does not answer; the page retries every few seconds.",
  "lang.switch": "中文",
  "lang.switch.label": "切换到中文 (Switch to Chinese)",
  "nav.links": "Links",
  "nav.key": "API key",
  "nav.docs": "API docs",
  "photos.title": "Photos",
  "drop.before": "Drop photos here or ",
  "drop.link": "choose files",
  "drop.hint": "JPEG, PNG, WebP or GIF · one or several",
  "queue.label": "Uploaded photos",
  "viewer.title": "Photo",
  "viewer.empty": "Choose a photo and faceflow draws every face it finds, with age and gender.",
  "progress.uploading": "Uploading…",
  "progress.upload": "Uploading {name}",
  "progress.of": "{percent}% of {size}",
  "progress.waiting": "Waiting…",
  "progress.analysing": "Analysing faces…",
  "progress.cutting": "Cutting out…",
  "progress.rendering": "Rendering…",
  "progress.idphoto": "ID photo",
  "progress.done": "ID photo ready: {status}",
  "thumb.waiting": "Waiting",
  "thumb.uploading": "Uploading",
  "thumb.analysing": "Analysing",
  "thumb.done": "Done",
  "thumb.error": "Failed",
  "faces.count.one": "{count} face",
  "faces.count.other": "{count} faces",
  "faces.title": "Faces",
  "faces.caption": "Faces found in the photo, left to right",
  "faces.col.gender": "Gender",
  "faces.col.age": "Age",
  "faces.col.score": "Score",
  "faces.col.size": "Size",
  "faces.none": "No photo analysed yet.",
  "faces.nothing": "No faces found in this photo.",
  "faces.failed": "The photo could not be analysed.",
  "faces.analysing": "Analysing…",
  "faces.alt": "{name}, {faces} found",
  "faces.row": "Face {n}: {gender}, {age}",
  "gender.female": "Female",
  "gender.male": "Male",
  "gender.f": "F",
  "gender.m": "M",
  "age.years": "age {years}",
  "cache.hit": "cache hit",
  "cache.miss": "cache miss",
  "timing.round": "round trip",
  "idphoto.title": "ID photo",
  "idphoto.size": "Size",
  "idphoto.background": "Background",
  "bg.white": "White",
  "bg.blue": "Blue",
  "bg.red": "Red",
  "bg.grey": "Grey",
  "bg.custom": "Custom",
  "bg.customLabel": "Custom background colour",
  "idphoto.shading": "Shading",
  "shading.none": "Flat",
  "shading.vertical": "Vertical gradient",
  "shading.radial": "Radial gradient",
  "idphoto.format": "Format",
  "idphoto.maxKb": "Size cap (KB)",
  "idphoto.noCap": "No cap",
  "idphoto.maxKbError": "Enter a whole number from 1 to 10000.",
  "idphoto.transparent": "Transparent (PNG)",
  "idphoto.previewAlt": "ID photo preview",
  "idphoto.busy": "Updating…",
  "idphoto.issues": "Checks that need a look",
  "idphoto.allChecks": "All checks",
  "idphoto.allChecksN": "All {count} checks",
  "idphoto.checks": "Compliance checks",
  "idphoto.empty": "Upload a photo of one person to make an ID photo.",
  "idphoto.make": "Make ID photo",
  "idphoto.download": "Download photo",
  "idphoto.sheetSize": "Print sheet size",
  "idphoto.downloadSheet": "Download print sheet",
  "idphoto.preparing": "Preparing…",
  "idphoto.downloadReport": "Download report (JSON)",
  "idphoto.specDetail": "{width}×{height} px at {dpi} dpi",
  "idphoto.unavailable": "ID photos unavailable",
  "idphoto.unavailableText": "This server does not offer the ID-photo API.",
  "report.pass": "Compliant",
  "report.warn": "Check warnings",
  "report.fail": "Not compliant",
  "badge.pass": "pass",
  "badge.warn": "warn",
  "badge.fail": "fail",
  "summary.passed": "{count} passed",
  "summary.warning.one": "{count} warning",
  "summary.warning.other": "{count} warnings",
  "summary.failed": "{count} failed",
  "summary.all": "All {count} checks passed",
  "check.allowed": " · allowed {value}",
  "value.yes": "yes",
  "value.no": "no",
  "fact.cache": "cache {state}",
  "check.face_count": "Face count",
  "check.background_colour": "Background colour",
  "check.head_height_ratio": "Head height",
  "check.eye_line": "Eye line",
  "check.crown_margin": "Space above the head",
  "check.roll": "Head tilt",
  "check.yaw": "Head turn",
  "check.background_uniformity": "Plain background",
  "check.resolution": "Resolution",
  "check.sharpness": "Sharpness",
  "check.exposure": "Exposure",
  "check.clipped": "Blown-out or dark areas",
  "check.subject_cut_off": "Head and shoulders in the photo",
  "check.face_occluded": "Nothing in front of the face",
  "check.eyes_visible": "Eyes open and visible",
  "check.mouth_closed": "Mouth closed",
  "check.leftover_backdrop": "Old background removed",
  "sheet.6inch": "6-inch (4×6 in)",
  "sheet.5inch": "5-inch (3.5×5 in)",
  "sheet.a4": "A4 (210×297 mm)",
  "notice.retry": "Retry",
  "notice.retryAfter": "Retry after {seconds} s.",
  "notice.retryNow": "You can retry now.",
  "notice.enterKey": "Enter API key",
  "key.title": "API key required",
  "key.reason": "This server asks for an API key.",
  "key.reasonForbidden": "The API key was not accepted. Enter a valid key for this server.",
  "key.reasonAnother": "Enter another API key, or forget the one this tab keeps.",
  "key.label": "API key",
  "key.noteBefore": "Kept only for this browser tab (sessionStorage) and sent as ",
  "key.noteAfter": ".",
  "key.forget": "Forget key",
  "key.cancel": "Cancel",
  "key.use": "Use key",
  "key.checking": "Checking…",
  "key.empty": "Enter the API key you were given.",
  "key.rejected": "That key was not accepted. Check it and try again.",
  "footer.private": "Photos are sent only to this faceflow server.",
  "footer.docs": "API documentation",
  "error.busy": "The server is busy",
  "error.busyText": "Too many photos are being processed right now.",
  "error.tooLarge": "File too large",
  "error.tooLargeLimit": "Photos may be at most {limit}.",
  "error.tooLargeText": "This photo is larger than the server accepts.",
  "error.format": "Not an image",
  "error.formatText": "This file is not an image faceflow can read. Choose a JPEG, PNG, WebP or GIF photo.",
  "error.undecodable": "Damaged image",
  "error.undecodableText": "The file looks like an image but could not be decoded; it may be truncated or corrupt.",
  "error.pixels": "Image too big",
  "error.pixelsLimit": "The image has too many pixels (at most {mp} megapixels). Scale it down and try again.",
  "error.pixelsText": "The image has too many pixels. Scale it down and try again.",
  "error.dimensions": "Unusual image size",
  "error.dimensionsText": "The image is too small or its sides are out of range. {message}",
  "error.empty": "Empty file",
  "error.emptyText": "The file is empty.",
  "error.noFace": "No face found",
  "error.noFaceText": "faceflow found no face in this photo. Use a clear, front-facing photo.",
  "error.multiple": "Several faces",
  "error.multipleText": "This photo has {found}; an ID photo needs exactly one person. Crop the photo to one face.",
  "error.multipleSome": "several faces",
  "error.rate": "Too many requests",
  "error.rateText": "You have reached this server's request limit.",
  "error.starting": "The server is starting",
  "error.startingText": "The models are still loading.",
  "error.unauthorized": "API key needed",
  "error.unauthorizedText": "This server asks for an API key.",
  "error.forbidden": "API key not accepted",
  "error.forbiddenText": "The API key was not accepted. Enter a valid key.",
  "error.notFound": "Not available",
  "error.notFoundText": "This server does not offer that feature.",
  "error.conflict": "Not possible right now",
  "error.network": "Connection problem",
  "error.networkText": "The server could not be reached. Check that faceflow is running.",
  "error.capSmall": "Size cap too small",
  "error.capSmallText": "At this size the smallest possible file is {kb} KB. Raise the cap or clear it.",
  "error.rejected": "Request rejected",
  "error.sourceExpired": "Photo no longer on the server",
  "error.sourceExpiredText": "The server no longer keeps this photo; it is sent again.",
  "error.expired": "Photo no longer on the server",
  "error.expiredText": "The server no longer keeps the photo of this job: send it again.",
  "error.jobFailed": "This job failed",
  "error.jobFailedText": "The server could not finish this photo ({message}). Send it again.",
  "error.timeout": "The upload took too long",
  "error.timeoutText": "The connection was too slow to send the photo in time: try again, or use a smaller photo.",
  "error.other": "Something went wrong",
  "error.otherText": "The server could not process this request.",
};

const ZH = {
  "skip": "跳到正文",
  "status.connecting": "正在连接…",
  "status.ready": "v{version} · 就绪",
  "status.starting": "v{version} · 启动中",
  "status.key": "需要 API 密钥",
  "status.gone": "服务器无响应",
  "status.gone.title": "faceflow 服务器没有响应；页面每隔几秒自动重试。",
  "lang.switch": "English",
  "lang.switch.label": "Switch to English (切换到英文)",
  "nav.links": "链接",
  "nav.key": "API 密钥",
  "nav.docs": "API 文档",
  "photos.title": "照片",
  "drop.before": "把照片拖到这里，或",
  "drop.link": "选择文件",
  "drop.hint": "JPEG、PNG、WebP 或 GIF · 可选多张",
  "queue.label": "已上传的照片",
  "viewer.title": "照片",
  "viewer.empty": "选择一张照片，faceflow 会标出找到的每一张人脸，以及年龄和性别。",
  "progress.uploading": "正在上传…",
  "progress.upload": "正在上传 {name}",
  "progress.of": "{size} 已上传 {percent}%",
  "progress.waiting": "等待中…",
  "progress.analysing": "正在分析人脸…",
  "progress.cutting": "正在抠图…",
  "progress.rendering": "正在生成…",
  "progress.idphoto": "证件照",
  "progress.done": "证件照已生成：{status}",
  "thumb.waiting": "等待中",
  "thumb.uploading": "上传中",
  "thumb.analysing": "分析中",
  "thumb.done": "完成",
  "thumb.error": "失败",
  "faces.count.one": "{count} 张人脸",
  "faces.count.other": "{count} 张人脸",
  "faces.title": "人脸",
  "faces.caption": "照片中找到的人脸（从左到右）",
  "faces.col.gender": "性别",
  "faces.col.age": "年龄",
  "faces.col.score": "置信度",
  "faces.col.size": "尺寸",
  "faces.none": "还没有分析照片。",
  "faces.nothing": "这张照片里没有找到人脸。",
  "faces.failed": "无法分析这张照片。",
  "faces.analysing": "分析中…",
  "faces.alt": "{name}，找到 {faces}",
  "faces.row": "第 {n} 张人脸：{gender}，{age}",
  "gender.female": "女",
  "gender.male": "男",
  "gender.f": "女",
  "gender.m": "男",
  "age.years": "{years} 岁",
  "cache.hit": "缓存命中",
  "cache.miss": "未命中缓存",
  "timing.round": "往返",
  "idphoto.title": "证件照",
  "idphoto.size": "尺寸",
  "idphoto.background": "背景色",
  "bg.white": "白色",
  "bg.blue": "蓝色",
  "bg.red": "红色",
  "bg.grey": "灰色",
  "bg.custom": "自定义",
  "bg.customLabel": "自定义背景色",
  "idphoto.shading": "渐变",
  "shading.none": "纯色",
  "shading.vertical": "上下渐变",
  "shading.radial": "径向渐变",
  "idphoto.format": "格式",
  "idphoto.maxKb": "文件大小上限（KB）",
  "idphoto.noCap": "不限",
  "idphoto.maxKbError": "请输入 1 到 10000 之间的整数。",
  "idphoto.transparent": "透明背景（PNG）",
  "idphoto.previewAlt": "证件照预览",
  "idphoto.busy": "正在更新…",
  "idphoto.issues": "需要留意的检查项",
  "idphoto.allChecks": "全部检查项",
  "idphoto.allChecksN": "全部 {count} 项检查",
  "idphoto.checks": "合规检查",
  "idphoto.empty": "上传一张单人照片即可制作证件照。",
  "idphoto.make": "制作证件照",
  "idphoto.download": "下载照片",
  "idphoto.sheetSize": "排版相纸尺寸",
  "idphoto.downloadSheet": "下载排版照",
  "idphoto.preparing": "正在准备…",
  "idphoto.downloadReport": "下载检查报告（JSON）",
  "idphoto.specDetail": "{width}×{height} 像素，{dpi} dpi",
  "idphoto.unavailable": "无法制作证件照",
  "idphoto.unavailableText": "这台服务器没有提供证件照接口。",
  "report.pass": "符合要求",
  "report.warn": "请查看警告",
  "report.fail": "不符合要求",
  "badge.pass": "通过",
  "badge.warn": "警告",
  "badge.fail": "不通过",
  "summary.passed": "{count} 项通过",
  "summary.warning.one": "{count} 项警告",
  "summary.warning.other": "{count} 项警告",
  "summary.failed": "{count} 项不通过",
  "summary.all": "全部 {count} 项检查通过",
  "check.allowed": " · 允许 {value}",
  "value.yes": "是",
  "value.no": "否",
  "fact.cache": "缓存{state}",
  "check.face_count": "人脸数量",
  "check.background_colour": "背景颜色",
  "check.head_height_ratio": "头部高度",
  "check.eye_line": "眼睛位置",
  "check.crown_margin": "头顶留白",
  "check.roll": "头部倾斜",
  "check.yaw": "头部侧转",
  "check.background_uniformity": "背景是否纯净",
  "check.resolution": "分辨率",
  "check.sharpness": "清晰度",
  "check.exposure": "曝光",
  "check.clipped": "过曝或过暗区域",
  "check.subject_cut_off": "头部和双肩是否完整",
  "check.face_occluded": "面部有无遮挡",
  "check.eyes_visible": "双眼睁开且可见",
  "check.mouth_closed": "嘴巴闭合",
  "check.leftover_backdrop": "原背景是否去净",
  "sheet.6inch": "6 寸相纸（4×6 英寸）",
  "sheet.5inch": "5 寸相纸（3.5×5 英寸）",
  "sheet.a4": "A4 纸（210×297 毫米）",
  "notice.retry": "重试",
  "notice.retryAfter": "{seconds} 秒后可重试。",
  "notice.retryNow": "现在可以重试。",
  "notice.enterKey": "输入 API 密钥",
  "key.title": "需要 API 密钥",
  "key.reason": "这台服务器需要 API 密钥。",
  "key.reasonForbidden": "API 密钥未被接受。请输入这台服务器的有效密钥。",
  "key.reasonAnother": "输入另一个 API 密钥，或忘记当前标签页保存的密钥。",
  "key.label": "API 密钥",
  "key.noteBefore": "只保存在当前浏览器标签页（sessionStorage），以 ",
  "key.noteAfter": " 方式发送。",
  "key.forget": "忘记密钥",
  "key.cancel": "取消",
  "key.use": "使用密钥",
  "key.checking": "正在验证…",
  "key.empty": "请输入你拿到的 API 密钥。",
  "key.rejected": "这个密钥未被接受。请检查后重试。",
  "footer.private": "照片只会发送到这台 faceflow 服务器。",
  "footer.docs": "API 文档",
  "error.busy": "服务器繁忙",
  "error.busyText": "当前正在处理的照片太多。",
  "error.tooLarge": "文件太大",
  "error.tooLargeLimit": "照片最大 {limit}。",
  "error.tooLargeText": "这张照片超过了服务器允许的大小。",
  "error.format": "不是图片",
  "error.formatText": "faceflow 无法读取这个文件。请选择 JPEG、PNG、WebP 或 GIF 照片。",
  "error.undecodable": "图片已损坏",
  "error.undecodableText": "文件看起来是图片，但无法解码，可能不完整或已损坏。",
  "error.pixels": "图片像素太多",
  "error.pixelsLimit": "图片像素太多（最多 {mp} 百万像素）。请缩小后重试。",
  "error.pixelsText": "图片像素太多。请缩小后重试。",
  "error.dimensions": "图片尺寸异常",
  "error.dimensionsText": "图片太小，或边长超出范围。{message}",
  "error.empty": "空文件",
  "error.emptyText": "这个文件是空的。",
  "error.noFace": "没有找到人脸",
  "error.noFaceText": "这张照片里没有找到人脸。请使用清晰的正面照。",
  "error.multiple": "有多张人脸",
  "error.multipleText": "这张照片里有 {found}，证件照只能有一个人。请裁剪到只剩一张人脸。",
  "error.multipleSome": "多张人脸",
  "error.rate": "请求太频繁",
  "error.rateText": "已达到这台服务器的请求次数上限。",
  "error.starting": "服务器正在启动",
  "error.startingText": "模型仍在加载中。",
  "error.unauthorized": "需要 API 密钥",
  "error.unauthorizedText": "这台服务器需要 API 密钥。",
  "error.forbidden": "API 密钥未被接受",
  "error.forbiddenText": "API 密钥未被接受。请输入有效的密钥。",
  "error.notFound": "功能不可用",
  "error.notFoundText": "这台服务器没有提供这个功能。",
  "error.conflict": "暂时无法完成",
  "error.network": "连接出错",
  "error.networkText": "无法连接服务器。请确认 faceflow 正在运行。",
  "error.capSmall": "大小上限太小",
  "error.capSmallText": "在这个尺寸下，文件最小也有 {kb} KB。请调高上限或清空。",
  "error.rejected": "请求被拒绝",
  "error.sourceExpired": "服务器上的照片已过期",
  "error.sourceExpiredText": "服务器已不再保存这张照片，正在重新上传。",
  "error.expired": "服务器上的照片已过期",
  "error.expiredText": "服务器已不再保存此任务的照片，请重新上传。",
  "error.jobFailed": "任务失败",
  "error.jobFailedText": "服务器未能处理这张照片（{message}），请重新上传。",
  "error.timeout": "上传超时",
  "error.timeoutText": "网络太慢，照片未能及时上传：请重试，或换一张较小的照片。",
  "error.other": "出错了",
  "error.otherText": "服务器无法处理这个请求。",
};

/** Chinese names of the size presets and their English names without the Chinese in brackets. */
const SPEC_ZH = {
  "cn-1inch": "一寸",
  "cn-small-1inch": "小一寸",
  "cn-large-1inch": "大一寸",
  "cn-2inch": "二寸",
  "cn-large-2inch": "大二寸",
  "cn-small-2inch": "小二寸",
  "cn-passport": "中国护照",
  "cn-id-card": "居民身份证",
  "icao": "ICAO 国际护照标准",
  "eu-passport": "欧盟护照",
  "schengen-visa": "申根签证",
  "uk-passport": "英国护照",
  "us-passport": "美国护照",
  "us-visa": "美国签证",
  "ca-passport": "加拿大护照",
  "jp-visa": "日本签证",
  "kr-visa": "韩国签证",
};

const TABLES = { en: EN, zh: ZH };
const listeners = new Set();
let current = pick();

function stored() {
  try {
    return localStorage.getItem(STORAGE);
  } catch {
    return null;
  }
}

/** The remembered choice, else the first of the browser's languages we have, else English. */
function pick() {
  const remembered = stored();
  if (remembered && remembered in TABLES) return remembered;
  for (const tag of navigator.languages?.length ? navigator.languages : [navigator.language]) {
    const base = String(tag ?? "").toLowerCase().split("-")[0];
    if (base in TABLES) return base;
  }
  return "en";
}

export function language() {
  return current;
}

/** The string for `key` in the current language, with {name} placeholders filled. */
export function t(key, vars = {}) {
  const text = TABLES[current][key] ?? EN[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

/** "1 face" / "2 faces" (Chinese has one form). */
export function plural(key, count) {
  return t(`${key}.${count === 1 ? "one" : "other"}`, { count });
}

/** A size preset's name: Chinese name in Chinese, the server's title otherwise. */
export function specName(spec) {
  if (current === "zh" && SPEC_ZH[spec.key]) return SPEC_ZH[spec.key];
  return spec.title;
}

/** A compliance check's name; an unknown name reads "head_height" → "Head height". */
export function checkName(name) {
  const key = `check.${name}`;
  if (key in EN) return t(key);
  const label = String(name).replaceAll("_", " ");
  return label.charAt(0).toUpperCase() + label.slice(1);
}

/** A check's hint in the current language (`hint` / `hint_zh`), if the server sent one. */
export function checkHint(check) {
  return (current === "zh" ? check.hint_zh : check.hint) ?? check.hint ?? null;
}

/** Fill the page's own elements: data-i18n sets the text, data-i18n-<attr> an attribute. */
export function applyStatic(root = document) {
  document.documentElement.lang = LANGUAGES[current];
  for (const element of root.querySelectorAll("[data-i18n]")) element.textContent = t(element.dataset.i18n);
  for (const element of root.querySelectorAll("*")) {
    for (const name of Object.keys(element.dataset)) {
      if (!name.startsWith("i18n") || name === "i18n") continue;
      const attribute = name.slice(4).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`).replace(/^-/, "");
      element.setAttribute(attribute, t(element.dataset[name]));
    }
  }
}

/** Switch language, remember the choice, and redraw. */
export function setLanguage(next) {
  if (!(next in TABLES) || next === current) return;
  current = next;
  try {
    localStorage.setItem(STORAGE, next);
  } catch {
    // Storage disabled: the choice lasts as long as the page.
  }
  applyStatic();
  for (const fn of listeners) fn(next);
}

export function onLanguageChange(fn) {
  listeners.add(fn);
}
