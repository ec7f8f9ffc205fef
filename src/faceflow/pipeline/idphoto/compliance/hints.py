"""What to do about each check that does not pass, in English and Chinese."""

from __future__ import annotations

HINTS: dict[str, tuple[str, str]] = {
    "face_count": ("Use a photo of one person alone.", "请使用只有本人一人的照片。"),
    "head_height_ratio": (
        "Take the photo a little closer or further away so the head is the size this photo needs.",
        "调整拍摄距离，使头部大小符合该尺寸的要求。",
    ),
    "eye_line": (
        "Hold the camera at eye level with the head upright.",
        "相机与眼睛保持同一高度，头部保持端正。",
    ),
    "face_centred": (
        "Keep the face in the middle of the photo: move it back towards the centre.",
        "面部应位于照片水平居中位置：请将其移回中间。",
    ),
    "crown_margin": (
        "Leave space above the hair: step back a little so the whole head is in the photo.",
        "头顶上方要留出空间：稍微后退，让整个头部都在照片内。",
    ),
    "subject_cut_off": (
        "Step back so the head and both shoulders are in the photo with room around them.",
        "后退一些拍摄，让头部和双肩完整入镜，四周留出空间。",
    ),
    "roll": (
        "Hold the head straight, not tilted to one side.",
        "头部摆正，不要向一侧倾斜。",
    ),
    "yaw": (
        "Face the camera directly, not turned to one side.",
        "正对镜头，不要侧脸。",
    ),
    "face_occluded": (
        "Nothing may cover the face: move hands, hair, a microphone or a mask away from the "
        "mouth and chin.",
        "面部不能有遮挡：请把手、头发、话筒或口罩从嘴巴和下巴前移开。",
    ),
    "eyes_visible": (
        "Keep both eyes open and clearly visible: no sunglasses, no hair or hands over them, "
        "no glare on glasses.",
        "双眼睁开并清晰可见：不戴墨镜，头发或手不要遮挡眼睛，眼镜不要反光。",
    ),
    "eyes_open": (
        "The eyes look closed or half closed: keep both eyes open, looking into the camera.",
        "双眼似乎闭着或半闭：请双眼自然睁开，目视镜头。",
    ),
    "glasses": (
        "Take your glasses off: this photo does not accept glasses of any kind.",
        "请摘下眼镜：该证件照不接受佩戴任何眼镜。",
    ),
    "forehead_visible": (
        "Something covers the forehead or the brows: take off any hat or cap and keep hair "
        "off the forehead and brows.",
        "额头或眉毛被遮挡：请摘下帽子，并将头发从额头和眉毛处拨开。",
    ),
    "eye_shadow": (
        "A shadow falls across the eyes: take off any cap, keep hair off the eyes and light the "
        "face from the front.",
        "眼部有阴影：请摘下帽子，头发不要遮住眼睛，并从正面照亮面部。",
    ),
    "eye_glare": (
        "A reflection hides the eyes: tilt the glasses slightly down or take them off, and do not "
        "use a direct flash.",
        "反光遮住了眼睛：请将眼镜稍微向下倾斜或摘下眼镜，不要使用直射闪光灯。",
    ),
    "red_eye": (
        "The flash turned the eyes red: take the photo without a direct flash, in brighter light.",
        "闪光灯造成了红眼：请不要使用直射闪光灯，并在更明亮的光线下拍摄。",
    ),
    "mouth_closed": (
        "Keep a neutral expression with the mouth closed.",
        "保持自然表情，嘴巴闭合。",
    ),
    "background_uniformity": (
        "Stand in front of a plain, light wall; with a busy background, check the edge of "
        "the hair for leftovers.",
        "请在纯色浅色墙前拍摄；背景杂乱时请检查头发边缘是否有残留。",
    ),
    "leftover_backdrop": (
        "Some of the old background may still show in the hair: check its edge at full size, "
        "or take the photo in front of a plain wall.",
        "头发边缘可能残留原背景颜色：请放大检查，或在纯色墙前重新拍摄。",
    ),
    "background_colour": (
        "Choose a background colour this photo accepts.",
        "请选择该证件接受的背景颜色。",
    ),
    "resolution": (
        "The face is too small in the original for this print size: use a larger, sharper "
        "original or take the photo closer.",
        "原图中人脸太小，不够打印该尺寸：请使用更大更清晰的原图或靠近拍摄。",
    ),
    "sharpness": (
        "The photo is blurred: hold the camera steady and focus on the eyes.",
        "照片模糊：请保持相机稳定并对焦在眼睛上。",
    ),
    "focus": (
        "The photo is out of focus (grain does not hide it): hold the camera steady, focus on "
        "the eyes and use more light.",
        "照片失焦（噪点掩盖不了模糊）：请保持相机稳定、对焦在眼睛上，并增加光线。",
    ),
    "motion_blur": (
        "The face is smeared (the camera or the head moved): hold the camera steady, "
        "or rest it on something, and keep still until the photo is taken.",
        "面部有拖影（相机或头部移动了）：请稳住相机或将其靠在物体上，拍摄完成前保持不动。",
    ),
    "exposure": (
        "Light the face evenly, neither too dark nor too bright.",
        "面部光线要均匀，不要过暗或过亮。",
    ),
    "colour": (
        "ID photos must be in colour: use a colour photo, not a black-and-white one.",
        "证件照须为彩色照片：请使用彩色原图，不要使用黑白照片。",
    ),
    "skin_colour": (
        "The face has a colour cast: take the photo in daylight or with the camera's white "
        "balance on auto, and use no filter or beauty effect.",
        "面部偏色：请在自然光下拍摄或使用相机的自动白平衡，不要使用滤镜或美颜效果。",
    ),
    "banding": (
        "The face's tones are cut into flat bands (posterised): use the original photo, not one "
        "reduced to few colours by a filter, a GIF or an app.",
        "面部色调呈现分层色块（色调分离）：请使用原始照片，"
        "不要使用经滤镜、GIF 或软件减色处理的照片。",
    ),
    "file_compression": (
        "The file is compressed so hard that its blocks show: allow a larger file (max_kb) or a "
        "higher JPEG quality.",
        "文件压缩过度，已出现明显色块：请放宽文件大小上限（max_kb）或提高 JPEG 质量。",
    ),
    "clothing_contrast": (
        "Your clothes are close to the background colour at the shoulders: wear a top that "
        "contrasts with it, or choose another background.",
        "衣服颜色与背景色相近：请换一件与背景反差明显的上衣，或选择其他背景色。",
    ),
    "blockiness": (
        "The photo is heavily compressed or pixelated: use the original from the camera, not a "
        "copy saved from a chat or a web page.",
        "照片压缩过度或有马赛克：请使用相机拍摄的原图，不要使用从聊天软件或网页保存的副本。",
    ),
    "even_lighting": (
        "One side of the face is in shadow: face the light, or light both sides evenly.",
        "面部一侧有阴影：请面向光源，或让面部两侧光线均匀。",
    ),
    "noise": (
        "The photo is grainy: take it in good light, at the camera's lowest ISO, and send the"
        " original file rather than a screenshot or a photo of a photo.",
        "照片噪点过多：请在光线充足处拍摄，使用相机的最低感光度，并提交原始照片，而非截图或翻拍。",
    ),
    "tinted_lenses": (
        "The lenses look tinted: wear glasses with clear lenses, or take them off.",
        "镜片似乎有颜色：请佩戴透明镜片的眼镜，或摘下眼镜。",
    ),
    "clipped": (
        "Avoid glare and deep shadows on the face: use soft, even light.",
        "避免面部反光和过暗的阴影，请使用柔和均匀的光线。",
    ),
}
