"""The compliance report: each rule an ID photo is judged by, measured, with pass / warn / fail.

The verdict is what a counter would decide: ``pass`` it would accept, ``fail`` it would not,
``warn`` for something a person should look at. The overall status is the worst check's.

Geometry checks (head height, eye line, crown margin, whether the frame cuts the person) measure
the photo as laid out; pose checks (roll, yaw), the face checks (something in front of the face,
eyes visible and open, no glare over them, mouth closed, even lighting) and image-quality checks
(background, resolution, sharpness and focus, exposure, colour and skin colour, JPEG blocks or
mosaic) measure the subject's pixels, because a tilted head, a hand over the mouth, a blurred,
black-and-white, colour-cast or over-compressed shot cannot be fixed by cropping. The face
checks look at a few small patches around the landmarks, the quality checks at the central face,
so the whole report costs a few milliseconds.

Every check carries a plain-language hint in English and Chinese (``hint``, ``hint_zh``): what to
do about it when it does not pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from faceflow.domain import Face, Point
from faceflow.pipeline.idphoto.backdrop import BackdropKind
from faceflow.pipeline.idphoto.layout import MIN_CROWN_MARGIN, Layout
from faceflow.pipeline.idphoto.matte import Matte, face_ellipse
from faceflow.pipeline.idphoto.palette import PRESET_COLOURS, Background, Rgb, matches_any

# Roll is corrected by rotating the photo, but a strongly tilted head leaves the shoulders tilted.
# The detector's landmarks under-read strong roll (a photo turned by 28° read as 17–21°), so 15°
# already fails.
ROLL_PASS_DEG, ROLL_WARN_DEG = 8.0, 15.0
# Another person counts as in the photo when this share of their face shows in it, kept by the
# cut-out (a few strands of hair or a shoulder's edge do not make a second face).
OTHER_FACE_SHOWN = 0.1
YAW_PASS_DEG, YAW_WARN_DEG = 8.0, 15.0
# The nose tip stands about half an inter-eye distance in front of the eyes (adult average), so
# turning the head by yaw shifts it sideways by ~0.5 · sin(yaw) eye distances.
NOSE_DEPTH_EYE_DISTANCES = 0.5
# Plain studio backgrounds measure about 6 (portrait_2); streets and offices 50–70.
BACKGROUND_STD_PASS = 12.0
# The background chosen: one the size does not list is a warning near one of those it does (an
# off-white: #f2f2f2 is ΔE 4.3 from white, the light grey preset 5.1) and a fail far from all of
# them, as a counter refuses it: red on a US passport is ΔE 103 from white, the Chinese ID blue 63.
BACKGROUND_FAR_DE = 20.0
# Share of the hair zone still the old backdrop's colour (ΔE < 10) after re-keying; portrait_2 on
# its plain grey backdrop leaves 0.01 %, so a share this large is a patch a person can see.
LEFTOVER_BACKDROP_WARN = 0.02
# Source pixels per output pixel. Up to 1.7× enlargement prints like 180 dpi, which a counter does
# not notice; beyond 2× the face is visibly soft.
RESOLUTION_PASS, RESOLUTION_FAIL = 0.6, 0.5
# Laplacian variance of the central face scaled to SHARPNESS_FACE_PX wide. Measured on seven test
# photos: 150–520 as taken; 5–10 after a Gaussian blur of σ = 2 px at that scale; 2–3.5 at σ = 5.
SHARPNESS_FACE_PX = 128
SHARPNESS_PASS, SHARPNESS_FAIL = 50.0, 12.0
# Focus: grain fools the Laplacian (a blurred photo with sensor noise measured 150-1,500, a pass),
# so edges are also measured where noise cancels out: the coherent gradient energy (structure
# tensor, the 90th percentile of λ1 - λ2) at a fine scale over a coarse one, on the same 128-px
# face. A crisp edge is much stronger at the fine scale; a blurred one is not, whatever its grain
# or contrast. Every face of the test set and the devset (82, scripts/compliance_ranges.py)
# measures 2.4 or more except one already failed for sharpness (1.2, a blurred bystander); blurred
# by 3 % of the eye distance 1.6-2.2, by 5 % 1.3-1.6, with grain of σ 8-25 added the same, and
# grain alone leaves it over 3.
FOCUS_SCALES_PX = (0.5, 3.0)
FOCUS_WINDOW_PX = 2.0
FOCUS_PASS, FOCUS_FAIL = 2.2, 1.9
# Motion blur: a camera moved sideways smears the face's upright edges (nose, eye corners, the
# face's sides) and leaves its level ones (brows, eyes, lips), which carry most of a face's
# detail, so `sharpness` and `focus` stayed passing: portrait_2 smeared over 10 % of the eye
# distance read 78 and 3.8. The fine detail across the face (variance of the second derivative
# along x) over the fine detail down it (along y), on the same 128-px face: every face of the test
# and dev-set photos 0.20-2.2 (`scripts/compliance_ranges.py`); smeared sideways over 4 % of the
# eye distance 0.08-0.17, 6 % 0.04-0.09, 8 % 0.03-0.06 (five real faces). Grain, being even in
# every direction, lifts it towards 1. An up-down or diagonal smear is not told apart by this
# ratio (real faces already vary 0.46-5 down over across): SHAKE_PASS below reads those.
MOTION_BLUR_PASS, MOTION_BLUR_FAIL = 0.15, 0.07
# ...but a face with less upright detail of its own reads low too: portrait_2 with its eyes shut
# 0.09, covered by a hand 0.11. A smear is told from that by how the detail across falls when
# the face is softened a little more (σ = SMEAR_SCALE_PX), against the detail down it: a smear
# has already taken the fine part across, so it falls less. Real faces 0.84 or more, the eyes
# shut 1.14, covered 0.82; smeared sideways over 4-10 % of the eye distance 0.41-0.75 (five
# real faces). Only a face under SMEAR_RATIO_MAX here is judged smeared.
SMEAR_SCALE_PX = 1.0
SMEAR_RATIO_MAX = 0.8
# ...and a smear in any direction (up-down, diagonal; df_img14 smeared up-down over 10 % of the
# eye distance read sharpness 54 and focus 2.3, a pass). Along a smear of length L every edge is
# drawn out over L, so the face's gradient along that direction stays alike over a step of a few
# pixels, and across it does not. For each of SHAKE_DIRECTIONS directions θ the gradient along θ
# (weighted by cos² of its angle to θ, so that each direction reads the edges facing it and not
# oblique ones, which look wide along θ) is correlated with itself SHAKE_STEP_PX further along θ
# on the 128-px face (r_θ, 1 at most). The value is the most any direction decorrelates less
# than the one across it, (1 - r_across) / (1 - r_along): the 82 real faces 1.03-1.56 (df_img59's
# bystander, 34 px wide, 1.56; df_img47 1.50 and df_img26 1.48, eyeliner and lashes), as JPEG
# 10-20 up to 1.48, under grain of σ 12-25 up to 1.42; smeared along 0°, 22.5°, 45°, 67.5°, 90°
# or 135° over 6 % of the eye distance a median 1.8-2.5, 8 % 2.2-3.3, 10 % 2.4-3.7 (the 82
# faces; `scripts/compliance_ranges.py` prints the real ones and portrait_2's).
SHAKE_DIRECTIONS = 8
SHAKE_STEP_PX = 2.0
SHAKE_PASS, SHAKE_FAIL = 1.6, 2.2
# ...but a face evenly soft decorrelates little in every direction, and then the ratio of two
# small numbers reads the face's own orientation (a Gaussian blur of 2 % of the eye distance:
# up to 2.3). Only where the direction along correlates clearly more than the one across
# (r_along - r_across) is the face judged smeared: Gaussian blurs of 1.5-5 % of the eye distance
# 0.23 at most, real faces up to 0.36 (their ratio stays under SHAKE_PASS), smears of 6-10 % a
# median 0.27-0.47.
SHAKE_ANISOTROPY_MIN = 0.25
# Two more guards, both for faces another check already speaks for. A face blurred every way
# under grain (portrait_2 blurred by 5-6 % of the eye distance with grain of σ 12: 1.6-1.8, the
# grain decorrelating one direction) is `focus`'s: judged only while focus is FOCUS_FAIL or more
# (smears of 6-10 % keep 2.1 or more). A level smear is judged only where `sideways_detail`
# also finds the fine detail across taken (SMEAR_RATIO_MAX): eyes shut read as smeared level
# (portrait_2 2.06, rose_leslie 2.41, portrait_1 1.64: the open eye's crisp up-down detail gone,
# a thin lash line left), and fall 1.13-1.35 there.
EXPOSURE_PASS = (70.0, 210.0)
# A face under 60 (portrait_2 at 30 % of its light: 56) is too dark for a counter.
EXPOSURE_WARN = (60.0, 235.0)
# ...unless the face is dark and the photo is not: a counter judges the exposure, not the skin.
# Very dark skin (cheeks at L* 22-28) on 12 real faces read a mean of 45-70, failed or warned on
# all, while the brightest 2 % of the face (eye whites, highlights) stayed at 124-173 (one 92);
# the same faces under-exposed to 45 % of their light 72-107. A dark face whose highlights reach
# this passes.
EXPOSURE_HIGHLIGHTS_MIN = 115.0
CLIPPED_PASS, CLIPPED_WARN = 0.02, 0.10
# Colour: the face's saturation (median a*b* chroma per unit of L*). Every colour photo of the
# test set and the devset (82 faces) measures 0.18–0.68, portrait_2 at 30 % of its light 0.23;
# a black-and-white photo 0, a quarter of the colour ~0.05, a tenth ~0.02. Counters refuse
# black-and-white photos (ICAO 9303, the US and Chinese rules alike).
COLOUR_PASS, COLOUR_FAIL = 0.08, 0.04
# Skin colour: the face's median (a*, b*) against the colours real faces measure. The 82 faces of
# the test set and the devset, under daylight, flash, stage and office light, lie at hue angles
# 0-85° with a* 2-26 and b* 0-30 (chroma up to 35); the region allowed is that with a margin (hue
# -5° to 90°, a* up to 30, b* up to 34, chroma up to 41), and the value is how far, in ΔE, the
# face lies outside it. A green, blue, magenta or yellow cast of the light or a white balance
# gone wrong puts a face 4-40 outside; ICAO 9303 asks for natural skin tones.
SKIN_HUE_DEG = (-5.0, 90.0)
SKIN_A_MAX, SKIN_B_MAX, SKIN_CHROMA_MAX = 30.0, 34.0, 41.0
SKIN_COLOUR_PASS, SKIN_COLOUR_WARN = 2.0, 6.0
# Even lighting: the darker cheek's median lightness over the lighter one's. Of the 81 faces of
# the test set and the devset it measures, 77 are 0.6 or more; three under side light 0.5–0.6, one
# on a stage 0.29; portrait_2 darkened by half over one side of the face 0.56, by 70 % 0.34
# (scripts/compliance_ranges.py).
# ICAO 9303 wants the face evenly lit, with no shadow across it.
LIGHTING_PASS, LIGHTING_FAIL = 0.6, 0.35
# A shadow across the eyes (a cap's brim, a fringe, light from above): the bridge of the nose at
# eye level (a box of ±0.06 eye distances, 0.05 below the eyes' midpoint) over the cheeks'
# lightness. On the matte at source resolution (scripts/compliance_ranges.py) every face of the
# test and dev-set photos measures 0.74 or more but a face of a crowd behind dark frames (0.26,
# already failed for resolution) and one turned 27° (0.56, where the nose's own shaded side fills
# the box: not judged past the yaw limit); the upper face of 14 real faces darkened by 45 % under
# a brim 0.47-0.59, which even_lighting (cheek against cheek) passed.
EYE_SHADOW_PASS, EYE_SHADOW_FAIL = 0.7, 0.6
# A cheek patch less opaque than this (turned away, cut by the frame) is not compared.
LIGHTING_MIN_ALPHA = 0.9
# Below this share of measurable (neither blown-out nor black) face pixels, colour is not judged.
COLOUR_MIN_MEASURABLE = 0.1
# Blockiness: the strongest regular grid (period 3–16 px) in the face's edge strength, as a
# multiple of its median over the grid's phases. Every photo of the test set and the devset (82
# faces, scripts/compliance_ranges.py) measures 1.1–1.8; portrait_2 saved as JPEG at quality 20
# 2.1, at 10 2.6, at 6 4.4, at 3 9.0; enlarged from a sixth of its size without smoothing (a
# mosaic) thousands, shown as 50. A grid finer than 3 output pixels (a large source's blocks,
# shrunk) is not seen, nor does it show.
BLOCKINESS_PASS, BLOCKINESS_FAIL = 2.2, 4.0
# The file as written is held closer: its blocks are what the counter sees, on a small photo
# with no noise of its own to hide them. 10 KB US photos (quality 16-21) read 2.02-2.54 with the
# blocks plain on the forehead, and those at 2.02 and 2.12 passed. portrait_1, portrait_2 and
# obama as 1-inch and US photos read 1.77-2.33 at quality 25, 1.60-1.81 at 40, 1.42-1.56 at 60
# (a 10 KB 1-inch photo).
FILE_BLOCKINESS_PASS = 1.9
BLOCK_PERIODS_PX = range(3, 17)
BLOCKINESS_SHOWN_MAX = 50.0
HEAD_HEIGHT_WARN_SLACK = 0.05  # a head within 5 % outside the range is a warning
# A frame reaching this far past the photo at the person fails; less is filled by extending the
# photo's edge and only warned about.
CUT_FAIL_MM = 1.0
# Hair cut by the frame's top edge by more than this fails (a counter sees a flat head).
CROWN_CUT_FAIL_MM = 0.5
# Face checks, measured on the test portraits (see tests/pipeline/idphoto/verdict_cases.py).
# Eyes: the spread (std) of lightness in a patch over each eye, relative to the cheeks'
# lightness: 0.17–0.30 for open eyes, 0 under a hand or dark glasses, 0.06 when badly blurred.
EYES_SPREAD_FAIL, EYES_SPREAD_PASS = 0.08, 0.13
# Eyes open: the height of the eye's opening, in eye distances (the smaller eye). A box of ±0.22 ×
# ±0.14 eye distances over each eye is resampled so the eyes are EYES_OPEN_SCALE_PX apart; its rows
# whose lightness range across the row (90th percentile minus 10th) exceeds EYES_OPEN_ROW_SHARE ×
# the box's own 90th-percentile lightness mark iris against sclera and lids, and the opening is the
# longest unbroken band of them: an open eye is one band, while over a closed one the curve of the
# lash line and its fringe make a thin band, and a brow, a lid crease or eyeliner above it, apart
# from it by plain lid, no longer add to it (counting every such row let 12 of 78 faces painted
# shut and 30 of 78 winks pass; a shut lid with a curved, fringed lash line 18 and 22). The box's
# own light, not the cheeks', so a socket shaded under a brow lit from above is not read as shut;
# one scale, so a face reads alike at its source and in a finished ID photo fed back in. Measured
# on the 82 matted faces of the test and dev-set photos, 78 with eyes at least EYES_OPEN_MIN_PX
# apart (each face of a photo edited and measured on its own; scripts/compliance_ranges.py
# prints the range of the real faces and portrait_2's):
# - real faces at their source and saved again as JPEG (quality 85): 0.07-0.28 (lowest
#   df_couple's smaller face 0.07, df_img17's squint and df_img37's smiling squint 0.08);
#   sockets shaded 35 % 0.06-0.28 (one under 0.065), 50 % 0.03-0.29 (four under: df_img23,
#   df_img17, df_img49, df_img62, all deep shade painted over a squint).
# - both eyes shut (verdict_cases.closed_eyes, the lid over the eye and a curved, fringed lash
#   line): 0.00-0.16, 74 of 78 under 0.065; a wink 67 of 78; the lash line 1.6 times as thick
#   (mascara) 67 and 58; fair lashes fail eyes_visible on 55 and read under 0.065 on 18 of 23.
#   The old painted lid with a thick dark arc: 78 of 78 and 71 of 78.
# - what the band alone passes: a lash line with a crease or a fold of the lid beside it (obama's
#   under-eye creases copied onto the lid: 0.16), or thick with mascara (0.07-0.13): see
#   EYES_IRIS_WARN.
# Five landmarks give no eyelids, so this asks a person to look (a warning). The opening is
# counted in rows of 0.01 eye distances; 0.065 lies between the shut eyes caught and the real
# faces (six rows or fewer warn).
EYES_OPEN_WARN = 0.065
EYES_OPEN_SCALE_PX = 100.0
EYES_OPEN_ROW_SHARE = 0.33
# ...and its iris: an open eye, a squint's too, shows a dark disc in its middle, where a shut one
# shows lid, a lash line and its fringe, all thinner. The same box is closed over (a grey
# closing: each pixel the darkest of the lightest within a disc EYES_IRIS_DISC eye distances
# across, so dark lines thinner than that fill with the lid's light), and the iris is how dark
# its middle (±EYES_IRIS_REACH eye distances about the eye's point) stays, as a share of the
# box's 90th-percentile lightness: 1 - darkest / light. Measured as above (78 faces):
# - real faces at their source and as JPEG (quality 85): 0.28-0.89 (median 0.67; the lowest
#   df_img23 0.28, df_couple's faces 0.30 and 0.31, df_img37's smiling squint 0.32); sockets
#   shaded 35 % 0.25-0.93 (df_img36), 50 % 0.29-0.94.
# - shut (verdict_cases.closed_eyes): 0.02-0.57 (median 0.08-0.15), under 0.2 on 67 of 78 shut,
#   58 winks, 61 and 54 with mascara. Either reading warns: shut eyes that pass now 3 of 78 (4
#   by the band alone), winks 10 (11), with mascara 6 (11) and 11 (20); no real face, at its
#   source, as JPEG or shaded, newly warned. What passes still reads 0.21-0.57: a lid copied
#   from skin with a dark fold, bag or shade of its own wider than the disc (obama, biden,
#   df_img59, two_people) and a lash line blurred wide by enlargement (obama_small, 53 px).
# Dlib's eye corners as the box's centre instead of YuNet's point passed more shut eyes (winks 23
# of 78, against 11): YuNet's point for a shut eye stayed within 0.1 eye distances of where it
# was on the open one (0.03 on most faces), while the corners' middle lay up to 0.2 from it.
EYES_IRIS_WARN = 0.2
EYES_IRIS_DISC = 0.06
EYES_IRIS_REACH = (0.08, 0.06)
# Under this eye distance (matte px) a row is over 0.025 eye distances: too coarse to tell a
# squint from a lash line (two faces of a crowd at 35-36 px, a blurred bystander at 21 px); the
# resampling cannot add the detail back.
EYES_OPEN_MIN_PX = 40.0
# Glasses: the darkest row (mean lightness across a strip ±0.08 eye distances wide between the
# eyes, from 0.25 eye distances above the eye line to 0.1 below) over the cheeks' lightness: a
# frame's bridge crosses it. Measured on the matte at source resolution
# (scripts/compliance_ranges.py): the two real wearers of the devset (df_img24, df_img25) 0.04
# and 0.07, a face of a crowd behind dark frames 0.21; thin dark frames drawn on 14 real faces
# 0.10-0.16; every other face of the test and dev-set photos 0.48 or more (a stage-lit face; the
# next 0.54). Glasses are told below 0.3; a spec that refuses them (the US since 2016) fails them.
GLASSES_BRIDGE_MAX = 0.3
# A thin metal frame's bridge is no darker than skin (gold wire frames drawn on 12 real faces read
# 0.60-0.88, as faces without glasses do), but it is a line: the strongest row of the same strip
# against the rows around it (glasses_line, ΔE) reads 15.5-39.4 for 11 of those 12 (one 8.5),
# clear dark frames 45-79, the devset's wearers 19 and 38; every other face of the test and dev-set
# photos 9.3 or less (the next 8.1), beards, fringes and shaded sockets 5.8 or less; rimless
# lenses 3.6-12.4, mostly unseen. On a size that refuses glasses, a line over this is a warning.
GLASSES_LINE_WARN = 12.0
# Forehead: ΔE between the forehead (a patch ±0.3 × ±0.1 eye distances, 0.8 above the eye line)
# and the cheeks. On the matte at source resolution (scripts/compliance_ranges.py), every face of
# the test and dev-set photos measures 34 or less (the highest, 27-34, faces of a crowd, a blurred
# bystander and an astronaut under a cap's shade; the rest under 18); a knit hat pulled down to the
# brows on 14 real faces 70-85, the shade of a brim over the upper face 27-38, a hand over the
# forehead 0-7 (skin). ICAO 9303: the face from the crown to the chin visible, no headwear.
FOREHEAD_DE_WARN = 45.0
# ...unless what covers it is the hair's colour beside the head (1.15 eye distances out from the
# face's middle, at the eye line and 0.3 above it, opaque pixels only): a fringe, which ICAO and
# Chinese counters accept while the brows show. Fringes drawn in each person's own hair on 12 real
# faces (ending 0.5 and 0.65 eye distances above the eyes, the brows visible) warned on 8 with ΔE
# 47-84 from the cheeks: 24 of 24 pass now (2-12 from the hair beside them), the 14 knit hats still
# warn (33-63).
FOREHEAD_HAIR_DE = 20.0
# Glare over the eyes (glasses, a flash): the share of blown-out pixels (every channel ≥ 245) in
# the same box over the worse eye. The 82 real faces of the test set and the devset measure at
# most 1 % (catchlights); a white reflection over portrait_2's eyes 0.08 eye distances wide 6 %,
# 0.12 wide (half the iris) 19 %, 0.2 wide (the iris gone) 61 % (scripts/compliance_ranges.py),
# which the lightness spread of eyes_visible still passed. ICAO 9303: no reflection over the eyes.
GLARE_BLOWN_MIN = 245
GLARE_PASS, GLARE_WARN = 0.05, 0.25
# Red eyes (a flash's light back from the retina): the share of pixels in a box over the pupil
# (±0.06 × ±0.05 eye distances) at least 25 redder (Lab a*) than the cheeks and 35 red in all.
# Judged over at least 60 pixels a pupil (an eye distance of about 70 source px): on a face
# smaller than that, red eyeliner under a pink stage light (df_img27, 35 pixels) read 17 %.
# The 71 real faces with eyes that large measure 0; portrait_2 with red pupils of radius 0.02
# eye distances (a red dot) 8 %, 0.035 (partly red) 21 % (obama 15 %), 0.05 (a pupil dilated
# in dim light) 45 % (scripts/compliance_ranges.py). ICAO 9303 and the US State Department
# refuse red eyes.
RED_EYE_OVER_SKIN, RED_EYE_RED_MIN = 25.0, 35.0
RED_EYE_PASS, RED_EYE_WARN = 0.1, 0.3
RED_EYE_MIN_PIXELS = 60
# Mouth: lips are redder than the cheeks (Lab a*, 90th percentile minus the cheeks' median:
# 9–34 on the test portraits), or show teeth (bright, colourless pixels) or the dark of an open
# mouth; a hand over the mouth shows none of these (0–6 redder on the six test photos, dark 0 %).
# Thin, pale lips pressed together (biden.jpg: 2 redder) still show the dark line where they
# meet (3 % of the box). The palest lips with neither, of the 82 real faces of the test set and
# the devset, are two closed smiles in nude lipstick at 10 (they failed at the old minimum, 12):
# the minimum sits halfway between them and the hands.
# Dark filling most of the mouth box is an object (a microphone: 90–100 %), not an open mouth;
# a full dark beard around a closed mouth fills 63 %.
LIPS_RED_MIN = 8.0
TEETH_MIN, OPENING_MIN = 0.03, 0.015
OBJECT_DARK_FRACTION = 0.75
# A face mask reads as something else: a white or light blue one as teeth filling the mouth box
# (93 % on portrait_2, 100 % on obama and biden; the broadest real smile, obama.jpg, 41 %), a
# pink one as lips (11 redder than the cheeks). What no real mouth has is one even colour over
# the whole box: the spread of a* (90th percentile minus 10th) is 5–53 over the 82 real faces
# (the lowest, two pale lips pressed together, also show the dark line between them), 0–2 over
# a mask of any colour, without one (scripts/compliance_ranges.py).
OBJECT_PALE_FRACTION = 0.7
MOUTH_SPREAD_MIN = 4.0
# Grain: the spread of the fine detail on the cheeks (grey levels, 1.4826 × the median absolute
# deviation of the grey minus its Gaussian blur at σ = 1 px), in the matte's pixels, which are
# the output's or finer: what the print shows (a large grainy source shrunk to the output averages
# its grain away). The 67 one-face real photos of the test set and the devset measure 0.2–4.7
# (median 1.6; the largest, obama_small's 53 px eye distance, is enlarged the most); the same
# photos with Gaussian noise of σ 6 added read a median of 3.5, σ 10 5.7, σ 20 10.9 (up to 14), and
# the studio round's σ 30 and 50 grain passed every check but background_uniformity.
NOISE_PASS, NOISE_WARN = 8.0, 16.0
# Colour grain (a phone's chroma noise) is measured the same way on Lab's a* and b* and counts
# one and a half times: the one-face real photos' is at most 1.1 (their grey 4.7), a small crowd
# face enlarged 4 (JPEG's halved colour, enlarged); chroma noise of σ 35 reads 3.7–21.8 (median
# 18) and passed before, grey alone reading 2.7–12.5.
NOISE_COLOUR_WEIGHT = 1.5
# Teeth over this share of the mouth box: an open-mouthed smile (obama.jpg 0.25), which ICAO
# 9303 and most counters refuse; a closed smile stays below 0.1.
MOUTH_OPEN_WARN = 0.12


# Lips apart with no teeth showing (speech, an "O" mouth), which the teeth measure cannot see:
# the height of the dark gap between the lips, in eye distances. A band over the mouth's middle
# (±0.35 of its half-width, from 0.2 eye distances above the corners' line to 0.3 below) is
# resampled to MOUTH_GAP_SCALE_PX between the eyes and read row by row (medians across the
# band, against the cheeks): the gap is the longest run of dark rows (under MOUTH_GAP_DARK × the
# cheeks' lightness) that reaches the corners' line (MOUTH_GAP_LINE eye distances about it),
# has lips above and below it (rows redder than the cheeks by MOUTH_GAP_LIPS × the band's
# reddest row and by MOUTH_GAP_LIPS_MIN at least, within MOUTH_GAP_REACH) and holds the mouth's
# inside: a row under MOUTH_GAP_INSIDE × the cheeks' lightness and MOUTH_GAP_INSIDE_OF_LIPS ×
# the lips', less red than MOUTH_GAP_INSIDE_RED × the lips (a closed mouth's line darkest in
# shade, portrait_1's darkened to 45 %, 0.27 of the cheeks and 0.44 of the lips; the open
# mouths' insides 0.03-0.18 and 0.03-0.31).
# A closed mouth's line, however dark in the shade of a lip, keeps the lips' red; a moustache
# or beard is dark but has no lips above it; the nostrils' shade lies above the corners' line.
# Over the 82 faces of the test and dev-set photos (scripts/compliance_ranges.py) every face but
# three measures 0: closed mouths, bearded ones (on df_img16, df_img17 and df_img61 a run of
# dark rows alone read 0.16-0.22, as open as df_img57) and smiles showing teeth (the teeth break
# the run), also after JPEG at quality 15-60, a blur of 1-2 px, darkened to 45 % or grain of 8.
# The three open: df_img57 (mid-word, an "O") 0.17, df_img19 (lips apart, the teeth's edges) 0.11,
# df_img67 (lips parted) 0.10. portrait_2 with the lips opened (verdict_cases.open_mouth) by
# 0.04, 0.06 and 0.14 eye distances 0.08, 0.10 and 0.17. A warning, as for teeth: three real
# open mouths are too few to refuse a photo on.
MOUTH_GAP_WARN = 0.07
MOUTH_GAP_SCALE_PX = 100.0
MOUTH_GAP_BAND = (-0.2, 0.3)
MOUTH_GAP_DARK, MOUTH_GAP_INSIDE = 0.45, 0.3
MOUTH_GAP_LIPS, MOUTH_GAP_INSIDE_RED = 0.3, 0.4
MOUTH_GAP_INSIDE_OF_LIPS = 0.4
MOUTH_GAP_LIPS_MIN = 4.0
MOUTH_GAP_REACH = 0.05
MOUTH_GAP_LINE = (-0.05, 0.12)

# Clothes that blend into the chosen background (a white top on white): the share of the
# silhouette's inner edge over the shoulders within CLOTHING_NEAR_DE of the background's colour.
# Of the 66 faces of the test and dev-set photos with shoulders in view (of 82), one (a cream top
# before a cream wall) measures 0.61 against white and 0.79 against grey; the rest (skin, lace,
# white shirts under dark suits) at most 0.34 against white, 0.42 grey, 0.37 blue and 0 red.
CLOTHING_NEAR_DE = 15.0
CLOTHING_BLEND_WARN = 0.5
SHOULDER_EDGE_MIN_PX = 50


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
    "clipped": (
        "Avoid glare and deep shadows on the face: use soft, even light.",
        "避免面部反光和过暗的阴影，请使用柔和均匀的光线。",
    ),
}

# What is missing on each side when the frame reaches past the photo, and what to do about it.
_CUT_TEXT: dict[str, tuple[str, str, str, str]] = {
    "bottom": (
        "the photo ends {mm:.1f} mm above the shoulder line this size needs",
        "take it from further away so both shoulders are in it",
        "照片下方缺少 {mm:.1f} mm，肩部不完整",
        "后退一些或放低相机，让双肩完整入镜",
    ),
    "top": (
        "the photo ends {mm:.1f} mm too low: the top of the head is cut off",
        "take it from further away with room above the hair",
        "照片上方缺少 {mm:.1f} mm，头顶被裁掉",
        "后退一些或抬高相机，头顶上方留出空间",
    ),
    "left": (
        "the photo is {mm:.1f} mm too narrow on the left for this size",
        "take it from further away with more room at the sides",
        "照片左侧缺少 {mm:.1f} mm",
        "后退一些拍摄，两侧留出更多空间",
    ),
    "right": (
        "the photo is {mm:.1f} mm too narrow on the right for this size",
        "take it from further away with more room at the sides",
        "照片右侧缺少 {mm:.1f} mm",
        "后退一些拍摄，两侧留出更多空间",
    ),
}


class CheckStatus(StrEnum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return {"pass": 0, "warn": 1, "fail": 2}[self.value]


_UNIT_TEXT = {"mm": " mm", "deg": "°", "fraction": " %", "": ""}
# What a limit's number measures, by its stable ``of`` key: the English sentence around it.
_OF_TEXT = {
    "": "{}",
    "from_bottom": "{} from the bottom",
    "height_share": "{} (5 % of the height)",
    "hair_zone": "{} of the hair zone",
    "shoulder_edge": "{} of the shoulders' edge",
    "source_px": "{} source px per output px",
    "std": "std {}",
    "teeth_of_mouth": "teeth {} of the mouth area",
    "eye_distances": "{} eye distances",
    "lips_gap": "a gap of {} eye distances between the lips",
    "smear": "{} (detail along the smear over across it)",
}
_RULE_TEXT = {
    "frame_inside_photo": "the whole frame inside the photo",
    "nothing": "none",
    "no_glasses": "no glasses",
    "glasses_allowed": "glasses allowed",
}


def _number(value: float, unit: str) -> str:
    shown = value * 100 if unit == "fraction" else value
    return f"{round(shown, 3):g}{_UNIT_TEXT[unit]}"


@dataclass(frozen=True, slots=True)
class Limit:
    """What a check allows, as data, so a page can say it in its own language; :attr:`text` is
    the same in English for API clients that show it as it is.

    ``min``/``max`` bound the value (either may be open; equal means exactly; ``min == -max`` is
    ±max), in ``unit`` (``mm``, ``deg``, ``fraction`` shown as a percentage, or a plain number).
    ``of`` says what the number measures (a stable key, e.g. ``from_bottom``); ``one_of`` lists
    accepted values (background preset names); ``rule`` names a rule with no number
    (``frame_inside_photo``, ``nothing``); ``also`` is the same limit in other units.
    """

    min: float | None = None
    max: float | None = None
    unit: str = ""
    of: str = ""
    one_of: tuple[str, ...] = ()
    rule: str = ""
    also: Limit | None = None

    @property
    def text(self) -> str:
        if self.rule:
            return _RULE_TEXT[self.rule]
        if self.one_of:
            return " or ".join(self.one_of)
        low, high, unit = self.min, self.max, self.unit
        if low is not None and high is not None:
            if low == high:
                bound = f"exactly {_number(low, unit)}"
            elif low == -high:
                bound = f"±{_number(high, unit)}"
            else:
                bound = f"{_number(low, '')}–{_number(high, unit)}"
        elif low is not None:
            bound = f"≥ {_number(low, unit)}"
        elif high is not None:
            bound = f"≤ {_number(high, unit)}"
        else:
            bound = "any"
        text = _OF_TEXT[self.of].format(bound)
        return f"{text} ({self.also.text})" if self.also is not None else text

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("min", "max"):
            value = getattr(self, name)
            if value is not None:
                out[name] = round(value, 4)
        if self.unit:
            out["unit"] = self.unit
        if self.of:
            out["of"] = self.of
        if self.one_of:
            out["one_of"] = list(self.one_of)
        if self.rule:
            out["rule"] = self.rule
        if self.also is not None:
            out["also"] = self.also.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class Check:
    """One rule: the measured ``value``, what its ``limit`` allows, and the verdict."""

    name: str
    value: float | int | str | None
    limit: Limit
    status: CheckStatus
    unit: str = ""
    note: str = ""
    hint: str = ""
    hint_zh: str = ""

    def hints(self) -> tuple[str, str]:
        """The hint in English and Chinese: this check's own, else the one for its name."""
        default = HINTS.get(self.name, ("", ""))
        return self.hint or default[0], self.hint_zh or default[1]

    def to_dict(self) -> dict[str, Any]:
        value = round(self.value, 3) if isinstance(self.value, float) else self.value
        hint, hint_zh = self.hints()
        out: dict[str, Any] = {
            "name": self.name,
            "value": value,
            "allowed": self.limit.text,
            "limit": self.limit.to_dict(),
            "status": self.status.value,
            "hint": hint,
            "hint_zh": hint_zh,
        }
        if self.unit:
            out["unit"] = self.unit
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True, slots=True)
class ComplianceReport:
    checks: tuple[Check, ...]
    extended_edges: tuple[str, ...]

    @property
    def status(self) -> CheckStatus:
        return max((c.status for c in self.checks), key=lambda s: s.rank, default=CheckStatus.PASS)

    def with_check(self, check: Check) -> ComplianceReport:
        return ComplianceReport((*self.checks, check), self.extended_edges)

    def check(self, name: str) -> Check:
        for item in self.checks:
            if item.name == name:
                return item
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "extended_edges": list(self.extended_edges),
            "checks": [c.to_dict() for c in self.checks],
        }


def _at_most(value: float, pass_at: float, warn_at: float) -> CheckStatus:
    """Pass up to ``pass_at``, warn up to ``warn_at``, fail beyond."""
    if value <= pass_at:
        return CheckStatus.PASS
    return CheckStatus.WARN if value <= warn_at else CheckStatus.FAIL


def _at_least(value: float, pass_at: float, warn_at: float) -> CheckStatus:
    """Pass from ``pass_at`` up, warn from ``warn_at`` up, fail below."""
    if value >= pass_at:
        return CheckStatus.PASS
    return CheckStatus.WARN if value >= warn_at else CheckStatus.FAIL


def _within(value: float, low: float, high: float) -> bool:
    return low <= value <= high


def assess(
    layout: Layout, matte: Matte, face: Face, background: Background | None
) -> ComplianceReport:
    """Every check for a photo laid out by ``layout`` from ``matte`` on ``background`` (None: a
    transparent photo, whose background is whatever it is later placed on)."""
    spec = layout.spec
    region = face_region(matte, face)
    quality = _face_quality(region)
    lab = _measurable_lab(region)  # converted once for both colour checks
    colour = _colour(lab)
    skin = _skin_colour(lab, colour)
    # Lips and teeth are told by colour: not judged where there is none or a cast hides them.
    if colour.status is CheckStatus.FAIL:
        colour_off = "the photo has no colour to tell lips and teeth by"
    elif skin.status is CheckStatus.FAIL:
        colour_off = "the face's colour cast hides lips and teeth"
    else:
        colour_off = ""
    yaw = _yaw(layout)
    checks = [
        _face_count(layout, matte),
        _head_height(layout),
        _eye_line(layout),
        _crown(layout),
        _roll(layout),
        yaw,
        _background_uniformity(matte),
        _leftover_backdrop(matte),
        _background_colour(background, spec.backgrounds)
        if background is not None
        else Check(
            "background_colour",
            "transparent",
            Limit(one_of=spec.backgrounds),
            CheckStatus.PASS,
            note="not judged: a transparent photo takes the background it is placed on",
        ),
        _resolution(layout),
        _clothing_contrast(matte, face, background)
        if background is not None
        else Check(
            "clothing_contrast",
            None,
            Limit(None, CLOTHING_BLEND_WARN, "fraction", "shoulder_edge"),
            CheckStatus.PASS,
            note="not judged: a transparent photo has no background yet",
        ),
        *quality,
        _motion_blur(region, focus_value=float(quality[1].value or 0.0)),
        _noise(matte, face, _eye_distance(face)),
        colour,
        skin,
        _blockiness(region),
        *_face_features(
            matte,
            face,
            colour_off=colour_off,
            glasses_allowed=spec.glasses_allowed,
            closed_mouth=spec.closed_mouth,
            turned=yaw.status is CheckStatus.FAIL,
        ),
        _eye_glare(matte, face),
        _subject_cut_off(layout),
    ]
    return ComplianceReport(tuple(checks), layout.extended_edges)


def _head_height(layout: Layout) -> Check:
    spec = layout.spec
    ratio = layout.head_height_px / layout.height_px
    low, high = spec.head_height_mm[0] / spec.height_mm, spec.head_height_mm[1] / spec.height_mm
    if _within(ratio, low, high):
        status = CheckStatus.PASS
    elif _within(ratio, low * (1 - HEAD_HEIGHT_WARN_SLACK), high * (1 + HEAD_HEIGHT_WARN_SLACK)):
        status = CheckStatus.WARN
    else:
        status = CheckStatus.FAIL
    mm = layout.head_height_px / spec.px_per_mm
    return Check(
        "head_height_ratio",
        ratio,
        Limit(low, high, also=Limit(*spec.head_height_mm, unit="mm")),
        status,
        note=f"{mm:.1f} mm chin to crown",
    )


def _eye_line(layout: Layout) -> Check:
    spec = layout.spec
    mm = layout.eye_line_px / spec.px_per_mm
    low, high = spec.eye_line_mm
    if _within(mm, low - 0.05, high + 0.05):
        status = CheckStatus.PASS
    elif _within(mm, low - 1.0, high + 1.0):
        status = CheckStatus.WARN
    else:
        status = CheckStatus.FAIL
    note = (
        "moved from the middle of the range to respect the crown margin"
        if (layout.eye_line_moved)
        else ""
    )
    return Check("eye_line", mm, Limit(low, high, "mm", "from_bottom"), status, "mm", note)


def _crown(layout: Layout) -> Check:
    spec = layout.spec
    mm = layout.crown_margin_px / spec.px_per_mm
    high: float | None = None
    if spec.crown_margin_mm is not None:
        low, high = spec.crown_margin_mm
        allowed = Limit(low, high, "mm")
        ok = _within(mm, low - 0.05, high + 0.05)
    else:
        low = MIN_CROWN_MARGIN * spec.height_mm
        allowed = Limit(round(low, 1), None, "mm", "height_share")
        ok = mm >= low - 0.05
    status = CheckStatus.PASS if ok else CheckStatus.WARN
    note = ""
    if mm < -CROWN_CUT_FAIL_MM:
        status = CheckStatus.FAIL
        note = f"the frame cuts {-mm:.1f} mm off the top of the head"
    elif not layout.head.crown_visible:
        status = CheckStatus.WARN
        note = "the top of the head is cut off in the source; the crown was estimated"
    elif mm < 0:
        note = "hair is cut at the top to keep the head-height and eye-line rules"
    elif not ok:
        # Said in words too: a warning with no note left a reader to work out 2.43 against 2.5.
        note = (
            f"{mm - high:.1f} mm more room above the hair than this size allows"
            if high is not None and mm > high
            else f"{low - mm:.1f} mm less room above the hair than this size asks for"
        )
    return Check("crown_margin", mm, allowed, status, "mm", note)


def _face_count(layout: Layout, matte: Matte) -> Check:
    """One, and one more for each other person whose face the cut-out kept and the photo shows
    (a neighbour whose hair touches the subject's is cut out with it: the studio round found half
    a second face at the edge of an ICAO photo that read one face and passed)."""
    shown = sum(_face_shown(layout, matte, other) for other in matte.others)
    count = 1 + shown
    note = ""
    if shown:
        note = (
            "another person's face shows in the photo"
            if shown == 1
            else f"{shown} other people's faces show in the photo"
        )
    status = CheckStatus.PASS if count == 1 else CheckStatus.FAIL
    return Check("face_count", count, Limit(1, 1), status, note=note)


def _face_shown(layout: Layout, matte: Matte, other: Face) -> bool:
    """Whether at least :data:`OTHER_FACE_SHOWN` of ``other``'s face (its ellipse, in the matte)
    is both kept by the cut-out and inside the photo's frame."""
    zone = face_ellipse(matte, other)
    area = int(zone.sum())
    rows, cols = np.nonzero(zone & (matte.alpha >= np.float32(0.5)))
    if area == 0 or len(rows) < OTHER_FACE_SHOWN * area:
        return False
    # Each kept pixel's centre, matte → source → photo.
    to_photo = layout.transform @ np.vstack([matte.matte_to_source(), [0.0, 0.0, 1.0]])
    points = np.vstack([cols + 0.5, rows + 0.5, np.ones(len(rows))])
    x, y = to_photo @ points
    inside = (x >= 0) & (x < layout.width_px) & (y >= 0) & (y < layout.height_px)
    return bool(inside.sum() >= OTHER_FACE_SHOWN * area)


def _roll(layout: Layout) -> Check:
    roll = layout.head.roll_deg
    magnitude = abs(roll)
    status = _at_most(magnitude, ROLL_PASS_DEG, ROLL_WARN_DEG)
    note = "eyes levelled in the output" if magnitude >= 0.5 else ""
    return Check("roll", roll, Limit(-ROLL_PASS_DEG, ROLL_PASS_DEG, "deg"), status, "deg", note)


def _yaw(layout: Layout) -> Check:
    shift = layout.head.nose_offset / NOSE_DEPTH_EYE_DISTANCES
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, shift))))
    magnitude = abs(yaw)
    status = _at_most(magnitude, YAW_PASS_DEG, YAW_WARN_DEG)
    return Check(
        "yaw",
        yaw,
        Limit(-YAW_PASS_DEG, YAW_PASS_DEG, "deg"),
        status,
        "deg",
        "estimated from the nose's offset",
    )


def _background_uniformity(matte: Matte) -> Check:
    std = matte.background_std
    if std is None:
        return Check(
            "background_uniformity",
            None,
            Limit(None, BACKGROUND_STD_PASS, of="std"),
            CheckStatus.WARN,
            note="too little background visible to measure",
        )
    return Check(
        "background_uniformity",
        std,
        Limit(None, BACKGROUND_STD_PASS, of="std"),
        CheckStatus.PASS if std <= BACKGROUND_STD_PASS else CheckStatus.WARN,
        note="source background around the person; replaced in the output, but a busy one"
        " makes hair edges less certain",
    )


def _leftover_backdrop(matte: Matte) -> Check:
    allowed = Limit(None, LEFTOVER_BACKDROP_WARN, "fraction", "hair_zone")
    share = matte.leftover_backdrop
    if matte.backdrop is BackdropKind.PLAIN and share is not None:
        return Check(
            "leftover_backdrop",
            share,
            allowed,
            CheckStatus.PASS if share <= LEFTOVER_BACKDROP_WARN else CheckStatus.WARN,
            note="share of the hair zone still the old backdrop's colour (ΔE < 10)",
        )
    # A busy backdrop has no colour model to re-key against: its cut-out is the model's as it is.
    note = (
        "busy backdrop: what shows through the hair could not be removed"
        if matte.backdrop is BackdropKind.BUSY
        else "too little backdrop visible to measure"
    )
    return Check("leftover_backdrop", None, allowed, CheckStatus.WARN, note=note)


def shoulder_edge(matte: Matte, face: Face) -> NDArray[np.uint8] | None:
    """The subject's own pixels along the silhouette's inner edge over the shoulders (from
    about a face's height below the chin down to three), RGB, one row each: where clothes meet
    the background. None when the cut-out does not reach the shoulders."""
    marks = face.landmarks
    mouth_y = marks.mouth_centre.y
    unit = max(1.0, mouth_y - marks.eye_centre.y)
    chin = mouth_y + 0.9 * unit
    alpha = matte.alpha
    top = int(matte.to_matte_px(Point(marks.nose.x, chin + 1.2 * unit)).y)
    bottom = int(matte.to_matte_px(Point(marks.nose.x, chin + 3.0 * unit)).y)
    top, bottom = max(0, top), min(alpha.shape[0], bottom)
    if bottom - top < 4:
        return None
    solid = (alpha[top:bottom] >= 0.95).astype(np.uint8)
    eye_distance = (marks.left_eye.x - marks.right_eye.x) / matte.source_px_per_matte_px
    reach = max(3, int(0.25 * eye_distance))
    inner = cv2.erode(solid, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8))
    edge = solid.astype(bool) & ~inner.astype(bool)
    if int(edge.sum()) < SHOULDER_EDGE_MIN_PX:
        return None
    return np.asarray(matte.foreground[top:bottom][edge], dtype=np.uint8)


def clothing_blend(matte: Matte, face: Face, background: Background) -> float | None:
    """The share of the shoulders' edge (:func:`shoulder_edge`) within ``CLOTHING_NEAR_DE`` of
    ``background``'s colour; None with no shoulders in view."""
    edge = shoulder_edge(matte, face)
    if edge is None:
        return None
    lab = _lab_rows(edge)
    target = _lab_rows(np.asarray([background.colour], dtype=np.uint8))[0]
    return float((np.linalg.norm(lab - target, axis=1) < CLOTHING_NEAR_DE).mean())


def _clothing_contrast(matte: Matte, face: Face, background: Background) -> Check:
    allowed = Limit(None, CLOTHING_BLEND_WARN, "fraction", "shoulder_edge")
    share = clothing_blend(matte, face, background)
    if share is None:
        return Check(
            "clothing_contrast", None, allowed, CheckStatus.PASS, note="no shoulders in view"
        )
    return Check(
        "clothing_contrast",
        share,
        allowed,
        CheckStatus.PASS if share <= CLOTHING_BLEND_WARN else CheckStatus.WARN,
        note=f"share of the shoulders' edge within ΔE {CLOTHING_NEAR_DE:g} of the background",
    )


def colour_difference(a: Rgb, b: Rgb) -> float:
    """ΔE (CIE76, in CIE Lab) between two sRGB colours."""
    lab = _lab_rows(np.asarray([a, b], dtype=np.uint8))
    return float(np.linalg.norm(lab[0] - lab[1]))


def _background_colour(background: Background, allowed: tuple[str, ...]) -> Check:
    """The chosen background against the ones the size accepts: a pass on one of them, a
    warning near one (an off-white, a gradient), a fail far from all (:data:`BACKGROUND_FAR_DE`)."""
    limit = Limit(one_of=allowed)
    gradient = "" if background.style.value == "solid" else f"{background.style.value} gradient"
    if matches_any(background, allowed):
        return Check("background_colour", background.hex, limit, CheckStatus.PASS, note=gradient)
    nearest = min(
        colour_difference(background.colour, PRESET_COLOURS[name])
        for name in allowed
        if name in PRESET_COLOURS
    )
    far = nearest > BACKGROUND_FAR_DE
    note = f"ΔE {nearest:.0f} from the nearest colour it accepts" + (
        f"; {gradient}" if gradient else ""
    )
    status = CheckStatus.FAIL if far else CheckStatus.WARN
    return Check("background_colour", background.hex, limit, status, note=note)


def _resolution(layout: Layout) -> Check:
    value = layout.source_px_per_output_px
    status = _at_least(value, RESOLUTION_PASS, RESOLUTION_FAIL)
    return Check(
        "resolution",
        value,
        Limit(RESOLUTION_PASS, None, of="source_px"),
        status,
        note="" if status is CheckStatus.PASS else "the source is enlarged; the print may be soft",
    )


def face_region(matte: Matte, face: Face) -> NDArray[np.uint8]:
    """The central face (brows to mouth, between the outer eye corners) from the matte, RGB."""
    marks = face.landmarks
    eye_distance = max(1.0, marks.left_eye.x - marks.right_eye.x)
    mouth_y = max(marks.mouth_left.y, marks.mouth_right.y)
    top_left = matte.to_matte_px(
        Point(
            marks.right_eye.x - 0.3 * eye_distance,
            min(marks.right_eye.y, marks.left_eye.y) - 0.3 * eye_distance,
        )
    )
    bottom_right = matte.to_matte_px(
        Point(marks.left_eye.x + 0.3 * eye_distance, mouth_y + 0.1 * eye_distance)
    )
    height, width = matte.alpha.shape
    x1, y1 = max(0, int(top_left.x)), max(0, int(top_left.y))
    x2, y2 = min(width, math.ceil(bottom_right.x)), min(height, math.ceil(bottom_right.y))
    return matte.foreground[y1:y2, x1:x2]


def _face_gray(region: NDArray[np.uint8]) -> NDArray[np.float32]:
    """``region`` in grey, scaled to :data:`SHARPNESS_FACE_PX` wide (so size does not count)."""
    scale = SHARPNESS_FACE_PX / region.shape[1]
    size = (SHARPNESS_FACE_PX, max(1, round(region.shape[0] * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    gray = cv2.cvtColor(cv2.resize(region, size, interpolation=interpolation), cv2.COLOR_RGB2GRAY)
    return np.asarray(gray, dtype=np.float32)


def sharpness(region: NDArray[np.uint8]) -> float:
    """Variance of the Laplacian of ``region`` scaled to a fixed width."""
    if region.size == 0:
        return 0.0
    return float(cv2.Laplacian(_face_gray(region), cv2.CV_32F).var(dtype=np.float64))


def _coherent_edges(gray: NDArray[np.float32], scale_px: float) -> float:
    """The 90th percentile over ``gray`` of λ1 - λ2 of the structure tensor at ``scale_px``:
    gradient energy along one direction. Noise has none (its gradients point every way)."""
    smooth = cv2.GaussianBlur(gray, (0, 0), scale_px)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0) / 8
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1) / 8
    products = (gx * gx, gy * gy, gx * gy)
    jxx, jyy, jxy = (cv2.GaussianBlur(p, (0, 0), FOCUS_WINDOW_PX) for p in products)
    return float(np.percentile(np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2), 90))


def focus(region: NDArray[np.uint8]) -> float:
    """How much stronger ``region``'s edges are at a fine scale than at a coarse one (see
    :data:`FOCUS_PASS`): high for crisp edges, near 1 for blurred ones, grain or not."""
    if region.size == 0:
        return 1.0
    gray = _face_gray(region)
    fine, coarse = (_coherent_edges(gray, scale) for scale in FOCUS_SCALES_PX)
    return fine / coarse if coarse > 0 else 1.0


def _second_derivative_variances(gray: NDArray[np.float32]) -> tuple[float, float]:
    """The variance of ``gray``'s second derivative across (x) and down (y)."""
    across = float(cv2.Sobel(gray, cv2.CV_32F, 2, 0, ksize=3).var(dtype=np.float64))
    down = float(cv2.Sobel(gray, cv2.CV_32F, 0, 2, ksize=3).var(dtype=np.float64))
    return across, down


def sideways_detail(region: NDArray[np.uint8]) -> tuple[float, float]:
    """Fine detail across ``region`` over fine detail down it (see :data:`MOTION_BLUR_PASS`),
    and how that falls when the face is softened a little more (see :data:`SMEAR_RATIO_MAX`):
    both low when the face is smeared sideways."""
    if region.size == 0:
        return 1.0, 1.0
    gray = _face_gray(region)
    across, down = _second_derivative_variances(gray)
    soft_across, soft_down = _second_derivative_variances(
        np.asarray(cv2.GaussianBlur(gray, (0, 0), SMEAR_SCALE_PX), dtype=np.float32)
    )
    if min(down, soft_across, soft_down) <= 0:
        return 1.0, 1.0
    return across / down, (across / soft_across) / (down / soft_down)


def shake_anisotropy(region: NDArray[np.uint8]) -> tuple[float, float, int]:
    """How much less ``region``'s gradient decorrelates along its most smeared direction than
    across it (see :data:`SHAKE_PASS`), how much more it correlates there (see
    :data:`SHAKE_ANISOTROPY_MIN`), both high when the face is smeared whatever the direction,
    and that direction (0 level, :data:`SHAKE_DIRECTIONS` // 2 up-down)."""
    if region.size == 0:
        return 1.0, 0.0, 0
    gray = _face_gray(region)
    height, width = gray.shape
    if min(height, width) <= 4 * SHAKE_STEP_PX:
        return 1.0, 0.0, 0
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    energy = gx * gx + gy * gy + np.float32(1e-6)
    margin = math.ceil(SHAKE_STEP_PX) + 1
    inner = (slice(margin, -margin), slice(margin, -margin))
    correlations = []
    for k in range(SHAKE_DIRECTIONS):
        angle = math.pi * k / SHAKE_DIRECTIONS
        cos, sin = math.cos(angle), math.sin(angle)
        along = cos * gx + sin * gy
        facing = along * along * along / energy  # |∇| cos³: the edges facing this direction
        facing = facing - facing.mean()
        step = np.array([[1, 0, -SHAKE_STEP_PX * cos], [0, 1, -SHAKE_STEP_PX * sin]], np.float32)
        ahead = cv2.warpAffine(facing, step, (width, height), flags=cv2.INTER_LINEAR)
        here = facing[inner]
        power = float((here * here).sum(dtype=np.float64))
        correlations.append(
            float((here * ahead[inner]).sum(dtype=np.float64)) / power if power > 0 else 0.0
        )
    r = np.array(correlations)
    across = np.roll(r, -SHAKE_DIRECTIONS // 2)
    ratios = (1 - across) / np.maximum(1 - r, 1e-3)
    worst = int(np.argmax(ratios))
    return float(ratios[worst]), float(r[worst] - across[worst]), worst


def _motion_blur(region: NDArray[np.uint8], *, focus_value: float) -> Check:
    """A smear sideways (:func:`sideways_detail`) or in any direction (:func:`shake_anisotropy`):
    the worse of the two, its value the one that decided. ``focus_value`` is :func:`focus`'s."""
    detail, falls = sideways_detail(region)
    smeared = falls < SMEAR_RATIO_MAX
    status = _at_least(detail, MOTION_BLUR_PASS, MOTION_BLUR_FAIL) if smeared else CheckStatus.PASS
    ratio, anisotropy, direction = shake_anisotropy(region)
    shaken = (
        anisotropy >= SHAKE_ANISOTROPY_MIN
        and focus_value >= FOCUS_FAIL
        and (direction != 0 or smeared)
    )
    shake_status = _at_most(ratio, SHAKE_PASS, SHAKE_FAIL) if shaken else CheckStatus.PASS
    also = (
        f"; along the most smeared direction ({direction * 180 // SHAKE_DIRECTIONS}° from level)"
        f" the detail decorrelates {ratio:.2f}× less than across it (real photos up to 1.5;"
        f" {anisotropy:+.2f} more correlated, a smear from {SHAKE_ANISOTROPY_MIN})"
    )
    if shake_status.rank > status.rank:
        return Check(
            "motion_blur",
            ratio,
            Limit(None, SHAKE_PASS, of="smear"),
            shake_status,
            note="the face is smeared in one direction" + also,
        )
    return Check(
        "motion_blur",
        detail,
        Limit(MOTION_BLUR_PASS),
        status,
        note=f"fine detail across the face over the detail down it (real photos 0.2–2.2); its"
        f" fall when softened {falls:.2f} (a smear under {SMEAR_RATIO_MAX})" + also,
    )


def _luma(region: NDArray[np.uint8]) -> NDArray[np.float32]:
    """Each pixel's luma (BT.601), 0–255: what the exposure and clipping checks read."""
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.asarray(region.reshape(-1, 3).astype(np.float32) @ weights, dtype=np.float32)


def _face_quality(region: NDArray[np.uint8]) -> tuple[Check, Check, Check, Check]:
    sharp = sharpness(region)
    sharp_status = _at_least(sharp, SHARPNESS_PASS, SHARPNESS_FAIL)
    luma = _luma(region) if region.size else np.zeros(1, dtype=np.float32)
    mean = float(luma.mean())
    clipped = float(((luma >= 250) | (luma <= 5)).mean())
    highlights = float(np.percentile(luma, 98))
    exposure_note = "mean face luminance, 0–255"
    if _within(mean, *EXPOSURE_PASS):
        exposure_status = CheckStatus.PASS
    elif mean < EXPOSURE_PASS[0] and highlights >= EXPOSURE_HIGHLIGHTS_MIN:
        exposure_status = CheckStatus.PASS
        exposure_note += f"; a dark face, its highlights well exposed ({highlights:.0f})"
    elif _within(mean, *EXPOSURE_WARN):
        exposure_status = CheckStatus.WARN
    else:
        exposure_status = CheckStatus.FAIL
    clipped_status = _at_most(clipped, CLIPPED_PASS, CLIPPED_WARN)
    in_focus = focus(region)
    return (
        Check("sharpness", sharp, Limit(SHARPNESS_PASS), sharp_status, note="Laplacian variance"),
        Check(
            "focus",
            in_focus,
            Limit(FOCUS_PASS),
            _at_least(in_focus, FOCUS_PASS, FOCUS_FAIL),
            note="edge strength at a fine scale over a coarse one; grain does not count",
        ),
        Check(
            "exposure",
            mean,
            Limit(*EXPOSURE_PASS),
            exposure_status,
            note=exposure_note,
        ),
        Check(
            "clipped",
            clipped,
            Limit(None, CLIPPED_PASS),
            clipped_status,
            note="fraction of face pixels blown out or crushed",
        ),
    )


def face_colour(region: NDArray[np.uint8]) -> float | None:
    """The face's saturation: the median over ``region``'s pixels of their chroma (CIE a*b*
    distance from grey) per unit of lightness L*, so a dim photo of a colour face is not taken
    for a grey one. Blown-out and crushed pixels (no colour left to measure) are left out; None
    when nearly all are. 0 for a black-and-white photo."""
    return _saturation(_measurable_lab(region))


def _saturation(lab: NDArray[np.float32] | None) -> float | None:
    if lab is None:
        return None
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    lightness = np.maximum(lab[:, 0], np.float32(5.0))
    return float(np.median(chroma / lightness))


def _lab_rows(pixels: NDArray[np.uint8]) -> NDArray[np.float32]:
    """CIE L*a*b* (L* 0–100) of RGB ``pixels``, one row each."""
    lab = cv2.cvtColor(pixels.reshape(-1, 1, 3), cv2.COLOR_RGB2LAB)
    # 8-bit Lab: L* scaled by 255/100, a* and b* offset by 128.
    lab = lab.reshape(-1, 3).astype(np.float32) - np.array([0.0, 128.0, 128.0], np.float32)
    lab[:, 0] *= np.float32(100 / 255)
    return np.asarray(lab, dtype=np.float32)


def _measurable_lab(region: NDArray[np.uint8]) -> NDArray[np.float32] | None:
    """CIE L*a*b* of ``region``'s pixels that still hold colour (not blown out nor crushed), one
    row each; None when too few do."""
    if region.size == 0:
        return None
    pixels = region.reshape(-1, 3)
    measurable = (pixels.max(axis=1) < 250) & (_luma(region) > 5)
    if measurable.mean() < COLOUR_MIN_MEASURABLE:
        return None
    return _lab_rows(pixels[measurable])


def skin_colour(region: NDArray[np.uint8]) -> tuple[float, float] | None:
    """The face's median a* and b* (its colour apart from lightness); None when too little of it
    holds colour."""
    return _median_ab(_measurable_lab(region))


def _median_ab(lab: NDArray[np.float32] | None) -> tuple[float, float] | None:
    if lab is None:
        return None
    return float(np.median(lab[:, 1])), float(np.median(lab[:, 2]))


def skin_colour_distance(a: float, b: float) -> float:
    """How far (ΔE) the colour (a*, b*) lies outside the region real faces occupy (0 inside): the
    larger of its distance from the hue wedge (to chroma :data:`SKIN_CHROMA_MAX`) and from the
    a*/b* bounds."""
    hue = math.degrees(math.atan2(b, a))
    if SKIN_HUE_DEG[0] <= hue <= SKIN_HUE_DEG[1]:
        wedge = max(0.0, math.hypot(a, b) - SKIN_CHROMA_MAX)
    else:
        wedge = math.inf
        for edge in SKIN_HUE_DEG:
            ux, uy = math.cos(math.radians(edge)), math.sin(math.radians(edge))
            along = min(max(a * ux + b * uy, 0.0), SKIN_CHROMA_MAX)
            wedge = min(wedge, math.hypot(a - along * ux, b - along * uy))
    bounds = math.hypot(max(0.0, a - SKIN_A_MAX), max(0.0, b - SKIN_B_MAX))
    return max(wedge, bounds)


def _colour(lab: NDArray[np.float32] | None) -> Check:
    """The colour check on the face's measurable pixels (:func:`_measurable_lab`)."""
    saturation = _saturation(lab)
    if saturation is None:  # the clipped check fails such a face
        return Check(
            "colour",
            None,
            Limit(COLOUR_PASS),
            CheckStatus.PASS,
            note="too much of the face is blown out or black to measure its colour",
        )
    return Check(
        "colour",
        saturation,
        Limit(COLOUR_PASS),
        _at_least(saturation, COLOUR_PASS, COLOUR_FAIL),
        note="the face's saturation (a*b* chroma per unit of lightness); 0 in a black-and-white"
        " photo",
    )


def _skin_colour(lab: NDArray[np.float32] | None, colour: Check) -> Check:
    limit = Limit(None, SKIN_COLOUR_PASS)
    median = _median_ab(lab)
    if median is None or colour.status is not CheckStatus.PASS:
        # Grey or unmeasurable: the colour or clipped check speaks for it.
        return Check("skin_colour", None, limit, CheckStatus.PASS, note="no colour to judge")
    a, b = median
    distance = skin_colour_distance(a, b)
    return Check(
        "skin_colour",
        distance,
        limit,
        _at_most(distance, SKIN_COLOUR_PASS, SKIN_COLOUR_WARN),
        note=f"the face's median a* {a:.0f}, b* {b:.0f}: ΔE outside the colours real faces"
        " measure (0 inside)",
    )


def blockiness(region: NDArray[np.uint8]) -> float:
    """How strongly ``region``'s edges line up on a regular grid: JPEG's 8 × 8 blocks at a low
    quality, or the squares of a photo enlarged without smoothing. For each axis and each period
    ``k`` of :data:`BLOCK_PERIODS_PX`, the mean absolute difference between neighbours is folded
    by position modulo ``k``; the result is the largest fold's peak over its median (1 when no
    phase stands out)."""
    worst = 1.0
    if region.size == 0:
        return worst
    gray = cv2.cvtColor(region, cv2.COLOR_RGB2GRAY).astype(np.float32)
    for axis in (0, 1):
        profile = np.abs(np.diff(gray, axis=axis)).mean(axis=1 - axis)
        for period in BLOCK_PERIODS_PX:
            whole = profile.size // period * period
            if whole < 4 * period:
                continue
            fold = profile[:whole].reshape(-1, period).mean(axis=0)
            median = float(np.median(fold))
            peak = float(fold.max())
            ratio = peak / median if median > 0 else (BLOCKINESS_SHOWN_MAX if peak > 0 else 1.0)
            worst = max(worst, ratio)
    return min(worst, BLOCKINESS_SHOWN_MAX)


def _blockiness(region: NDArray[np.uint8]) -> Check:
    what = "JPEG blocks or mosaic squares: the strongest regular grid in the face's edges"
    return _grid_check("blockiness", region, what)


def file_compression(pixels: NDArray[np.uint8]) -> Check:
    """The blockiness of the photo as written: a JPEG quality low enough to fit a small
    ``max_kb`` (or asked for) shows its 8 × 8 blocks, which the source's own check cannot see.
    Over the whole photo, by the face's limits: the ID photos of the test and dev-set portraits
    measure 1.1–1.3 at quality 95, 1.9–2.3 at 20, 2.3–3.1 at 12, 4.5–7.3 at 4."""
    what = "JPEG blocks in the file as written: the strongest regular grid in its edges"
    return _grid_check("file_compression", pixels, what, FILE_BLOCKINESS_PASS)


def _grid_check(
    name: str, pixels: NDArray[np.uint8], what: str, pass_at: float = BLOCKINESS_PASS
) -> Check:
    """A check of :func:`blockiness`, passing up to ``pass_at``; ``what`` says what it
    measured."""
    value = blockiness(pixels)
    return Check(
        name,
        value,
        Limit(None, pass_at),
        _at_most(value, pass_at, BLOCKINESS_FAIL),
        note=f"{what}, as a multiple of their median (1 for none)",
    )


def _subject_cut_off(layout: Layout) -> Check:
    """Whether the frame reaches past the photo where the person is (a cut through the body).

    The layout avoids it whenever a choice inside the spec's ranges can; what is left is the
    photo's fault, said in millimetres with what to do.
    """
    if not layout.cut_edges:
        return Check(
            "subject_cut_off",
            0.0,
            Limit(rule="frame_inside_photo"),
            CheckStatus.PASS,
            "mm",
            note="plain background added at: " + ", ".join(layout.extended_edges)
            if layout.extended_edges
            else "",
        )
    worst = max(layout.cut_mm)
    parts = sorted(zip(layout.cut_mm, layout.cut_edges, strict=True), reverse=True)
    texts = [_CUT_TEXT[edge] for _, edge in parts]
    note = "; ".join(text[0].format(mm=mm) for (mm, _), text in zip(parts, texts, strict=True))
    note_zh = "；".join(text[2].format(mm=mm) for (mm, _), text in zip(parts, texts, strict=True))
    status = CheckStatus.FAIL if worst >= CUT_FAIL_MM else CheckStatus.WARN
    if status is CheckStatus.WARN:
        note += " (the edge was extended; check it)"
    return Check(
        "subject_cut_off",
        worst,
        Limit(rule="frame_inside_photo"),
        status,
        "mm",
        note=note,
        hint=_sentence(
            f"{note}: {texts[0][1]}." if status is CheckStatus.FAIL else f"{texts[0][1]}."
        ),
        hint_zh=f"{note_zh}：{texts[0][3]}。",
    )


def _sentence(text: str) -> str:
    """``text`` with a capital first letter, as every other hint starts."""
    return text[:1].upper() + text[1:]


def _box(matte: Matte, centre: Point, half_w: float, half_h: float) -> tuple[slice, slice]:
    """The rows and columns of the matte in a box around a source point, sizes in source px."""
    k = 1.0 / matte.source_px_per_matte_px
    at = matte.to_matte_px(centre)
    height, width = matte.alpha.shape
    x1, x2 = max(0, round(at.x - half_w * k)), min(width, round(at.x + half_w * k) + 1)
    y1, y2 = max(0, round(at.y - half_h * k)), min(height, round(at.y + half_h * k) + 1)
    return slice(y1, y2), slice(x1, x2)


def _patch(
    lab: NDArray[np.float32], matte: Matte, centre: Point, half_w: float, half_h: float
) -> NDArray[np.float32]:
    """A box of ``lab`` (the matte's pixels in Lab) around a source point, sizes in source px."""
    rows, cols = _box(matte, centre, half_w, half_h)
    return lab[rows, cols].reshape(-1, 3)


def _even_lighting(lab: NDArray[np.float32], matte: Matte, face: Face, distance: float) -> Check:
    """The darker cheek's lightness over the lighter one's: a shadow across half the face."""
    limit = Limit(LIGHTING_PASS)
    medians = []
    for eye in (face.landmarks.right_eye, face.landmarks.left_eye):
        centre = Point(eye.x, eye.y + 0.5 * distance)
        rows, cols = _box(matte, centre, 0.15 * distance, 0.12 * distance)
        cheek = lab[rows, cols].reshape(-1, 3)
        if cheek.size == 0 or float(matte.alpha[rows, cols].mean()) < LIGHTING_MIN_ALPHA:
            # A cheek turned away or cut by the frame: no light to compare.
            return Check(
                "even_lighting", None, limit, CheckStatus.PASS, note="a cheek is not in view"
            )
        medians.append(float(np.median(cheek[:, 0])))
    ratio = min(medians) / max(1.0, max(medians))
    return Check(
        "even_lighting",
        ratio,
        limit,
        _at_least(ratio, LIGHTING_PASS, LIGHTING_FAIL),
        note="the darker cheek's lightness over the lighter one's (1: evenly lit)",
    )


def _fine_spread(channel: NDArray[np.float32]) -> float:
    """1.4826 × the median absolute deviation of ``channel`` minus its Gaussian blur (σ 1 px),
    three pixels in from its edges."""
    detail = (channel - cv2.GaussianBlur(channel, (0, 0), 1.0))[3:-3, 3:-3]
    return 1.4826 * float(np.median(np.abs(detail - np.median(detail))))


def _noise(matte: Matte, face: Face, distance: float) -> Check:
    """Grain on the cheeks (see :data:`NOISE_PASS`): the smaller of the two, so a mole, a strand
    of hair or stubble on one cheek does not count."""
    limit = Limit(None, NOISE_PASS)
    spreads = []
    for eye in (face.landmarks.right_eye, face.landmarks.left_eye):
        rows, cols = _box(
            matte, Point(eye.x, eye.y + 0.5 * distance), 0.15 * distance, 0.12 * distance
        )
        # The blur reads three pixels around the box; its own edge pixels are left out.
        height, width = matte.alpha.shape
        y1, y2 = max(0, rows.start - 3), min(height, rows.stop + 3)
        x1, x2 = max(0, cols.start - 3), min(width, cols.stop + 3)
        if y2 - y1 < 8 or x2 - x1 < 8:
            continue  # a cheek outside the cut-out (a face at the photo's edge)
        rgb = matte.foreground[y1:y2, x1:x2]
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        if grey[3:-3, 3:-3].size < 20 or float(matte.alpha[rows, cols].mean()) < LIGHTING_MIN_ALPHA:
            continue  # a cheek turned away or cut by the frame
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
        colour = max(_fine_spread(lab[..., 1]), _fine_spread(lab[..., 2]))
        spreads.append(max(_fine_spread(grey), NOISE_COLOUR_WEIGHT * colour))
    if not spreads:
        return Check("noise", None, limit, CheckStatus.PASS, note="no cheek in view to measure")
    grain = min(spreads)
    return Check(
        "noise",
        grain,
        limit,
        _at_most(grain, NOISE_PASS, NOISE_WARN),
        note="grain on the cheeks, in grey levels (colour grain counted 1.5 times); real photos"
        " 0.2–4.7",
    )


def _eye_shadow(
    lab: NDArray[np.float32],
    matte: Matte,
    face: Face,
    distance: float,
    skin_l: float,
    *,
    turned: bool,
) -> Check:
    """The bridge of the nose at eye level over the cheeks' lightness ``skin_l``: a shadow
    across the eyes darkens it, not the cheeks (see :data:`EYE_SHADOW_PASS`)."""
    limit = Limit(EYE_SHADOW_PASS)
    if turned:
        note = "not judged: the head is turned (see yaw)"
        return Check("eye_shadow", None, limit, CheckStatus.PASS, note=note)
    marks = face.landmarks
    centre = Point(
        (marks.right_eye.x + marks.left_eye.x) / 2,
        (marks.right_eye.y + marks.left_eye.y) / 2 + 0.05 * distance,
    )
    band = _patch(lab, matte, centre, 0.06 * distance, 0.06 * distance)
    if band.size == 0:
        note = "not measured: the middle of the face is not in the cut-out"
        return Check("eye_shadow", None, limit, CheckStatus.PASS, note=note)
    ratio = float(np.median(band[:, 0])) / skin_l
    return Check(
        "eye_shadow",
        ratio,
        limit,
        _at_least(ratio, EYE_SHADOW_PASS, EYE_SHADOW_FAIL),
        note="the bridge of the nose at eye level over the cheeks' lightness (1: no shadow)",
    )


def _eye_distance(face: Face) -> float:
    """Between the eyes' centres, in source px (at least 1): the face checks' unit of size."""
    marks = face.landmarks
    return max(
        1.0, math.hypot(marks.left_eye.x - marks.right_eye.x, marks.left_eye.y - marks.right_eye.y)
    )


def _eye_glare(matte: Matte, face: Face) -> Check:
    """The share of blown-out pixels over the worse eye: a reflection where the eye should be."""
    marks = face.landmarks
    distance = _eye_distance(face)
    worst = 0.0
    for eye in (marks.right_eye, marks.left_eye):
        rows, cols = _box(matte, eye, 0.22 * distance, 0.1 * distance)
        pixels = matte.foreground[rows, cols].reshape(-1, 3)
        if pixels.size:
            worst = max(worst, float((pixels.min(axis=1) >= GLARE_BLOWN_MIN).mean()))
    return Check(
        "eye_glare",
        worst,
        Limit(None, GLARE_PASS, "fraction"),
        _at_most(worst, GLARE_PASS, GLARE_WARN),
        note="share of blown-out pixels over the worse eye (catchlights stay under 1 %)",
    )


def _face_features(
    matte: Matte,
    face: Face,
    *,
    colour_off: str = "",
    glasses_allowed: bool = True,
    closed_mouth: bool = False,
    turned: bool = False,
) -> tuple[Check, ...]:
    """Something in front of the face, eyes visible and open, glasses, the forehead uncovered,
    mouth closed, even lighting, no shadow over the eyes, red eyes: from small patches around
    the landmarks, compared with the cheeks (see the thresholds at the top).
    ``colour_off``: why the photo's colour cannot be trusted (black and white, a strong cast),
    if it cannot; its lips, teeth and the red of its eyes are then not judged.
    ``glasses_allowed``, ``closed_mouth``: the size's rules on glasses and on teeth showing;
    ``turned``: the head failed ``yaw`` (the
    nose's own shaded side would read as a shadow over the eyes)."""
    marks = face.landmarks
    distance = _eye_distance(face)
    # Lab of the face's neighbourhood only: a few thousand pixels, not the whole matte.
    top_left = matte.to_matte_px(
        Point(
            marks.right_eye.x - 0.6 * distance,
            min(marks.right_eye.y, marks.left_eye.y) - 0.95 * distance,  # the forehead's too
        )
    )
    bottom_right = matte.to_matte_px(
        Point(
            marks.left_eye.x + 0.6 * distance,
            max(marks.mouth_left.y, marks.mouth_right.y) + 0.4 * distance,
        )
    )
    height, width = matte.alpha.shape
    x1, y1 = max(0, int(top_left.x)), max(0, int(top_left.y))
    x2, y2 = min(width, math.ceil(bottom_right.x)), min(height, math.ceil(bottom_right.y))
    lab = np.zeros(matte.foreground.shape, dtype=np.float32)
    if x2 > x1 and y2 > y1:
        lab[y1:y2, x1:x2] = cv2.cvtColor(matte.foreground[y1:y2, x1:x2], cv2.COLOR_RGB2LAB)
    cheeks = np.concatenate(
        [
            _patch(
                lab, matte, Point(eye.x, eye.y + 0.5 * distance), 0.1 * distance, 0.08 * distance
            )
            for eye in (marks.right_eye, marks.left_eye)
        ]
    )
    if cheeks.size == 0:
        cheeks = np.full((1, 3), 128.0, dtype=np.float32)
    skin_l = max(1.0, float(np.median(cheeks[:, 0])))
    skin_a = float(np.median(cheeks[:, 1]))
    skin_chroma = float(np.hypot(skin_a - 128.0, np.median(cheeks[:, 2]) - 128.0))

    spreads = []
    for eye in (marks.right_eye, marks.left_eye):
        patch = _patch(lab, matte, eye, 0.22 * distance, 0.1 * distance)
        spreads.append(float(patch[:, 0].std()) / skin_l if patch.size else 0.0)
    spread = min(spreads)
    eyes_status = _at_least(spread, EYES_SPREAD_PASS, EYES_SPREAD_FAIL)
    eyes = Check(
        "eyes_visible",
        spread,
        Limit(EYES_SPREAD_PASS),
        eyes_status,
        note="lightness spread over the eyes against the cheeks; low when they are covered, "
        "closed or hidden by dark glasses",
    )
    eyes_open = _eyes_open(lab, matte, face, distance, eyes_status)
    glasses = _glasses(lab, matte, face, distance, skin_l, allowed=glasses_allowed)
    forehead = _forehead_visible(lab, matte, face, distance, cheeks)

    lighting = _even_lighting(lab, matte, face, distance)
    shadow = _eye_shadow(lab, matte, face, distance, skin_l, turned=turned)
    if colour_off:
        # Lips are told by their red and teeth by having none: in grey every bright pixel read
        # as teeth ("mouth open"), a hand over the mouth went unseen, and under a green cast
        # the lips lost their red ("mouth covered"). Said as not measured rather than guessed.
        unmeasured = f"not measured: {colour_off}"
        return (
            Check("face_occluded", None, Limit(rule="nothing"), CheckStatus.PASS, note=unmeasured),
            eyes,
            eyes_open,
            glasses,
            forehead,
            Check(
                "mouth_closed",
                None,
                Limit(None, MOUTH_OPEN_WARN, "fraction", "teeth_of_mouth"),
                CheckStatus.PASS,
                note=unmeasured,
            ),
            lighting,
            shadow,
            Check("red_eye", None, _RED_EYE_LIMIT, CheckStatus.PASS, note=unmeasured),
        )

    mouth_centre = marks.mouth_centre
    half_mouth = max(1.0, (marks.mouth_left.x - marks.mouth_right.x) / 2)
    mouth = _patch(lab, matte, mouth_centre, 0.7 * half_mouth, 0.22 * distance)
    if mouth.size == 0:
        mouth = cheeks
    lips_red = float(np.percentile(mouth[:, 1], 90)) - skin_a
    chroma = np.hypot(mouth[:, 1] - 128.0, mouth[:, 2] - 128.0)
    teeth = float(((mouth[:, 0] > skin_l) & (chroma < max(6.0, 0.6 * skin_chroma))).mean())
    opening = float((mouth[:, 0] < 0.45 * skin_l).mean())
    mouth_spread = float(np.percentile(mouth[:, 1], 90) - np.percentile(mouth[:, 1], 10))
    # Dark over the mouth box with the skin beside the mouth as dark is the lower face in
    # shadow, not an object: a hard shadow below the nose at 45 % light failed as "mouth
    # covered", whose hint tells the person to move a hand or a mask. (A microphone's head,
    # 0.42 eye distances across, leaves that skin lit.)
    beside = np.concatenate(
        [
            _patch(lab, matte, Point(x, mouth_centre.y), 0.1 * distance, 0.08 * distance)
            for x in (marks.mouth_right.x - 0.25 * distance, marks.mouth_left.x + 0.25 * distance)
        ]
    )
    lower_light = float(np.median(beside[:, 0])) / skin_l if beside.size else 1.0
    lower_in_shadow = opening > OBJECT_DARK_FRACTION and lower_light < LIGHTING_PASS
    if lower_in_shadow:
        lighting = Check(
            "even_lighting",
            lower_light,
            Limit(LIGHTING_PASS),
            CheckStatus.FAIL,
            note="the lower face is in deep shadow: the skin beside the mouth's lightness over"
            " the cheeks'",
        )
    covered_by_object = (
        (opening > OBJECT_DARK_FRACTION and not lower_in_shadow)  # a microphone, a dark mask
        or teeth > OBJECT_PALE_FRACTION  # a white or light mask
        # One even colour and no line between lips: a mask of any colour.
        or (mouth_spread < MOUTH_SPREAD_MIN and opening < OPENING_MIN)
    )
    mouth_seen = lips_red >= LIPS_RED_MIN or teeth >= TEETH_MIN or opening >= OPENING_MIN
    occluded = covered_by_object or not mouth_seen
    occlusion = Check(
        "face_occluded",
        "mouth covered" if occluded else "none",
        Limit(rule="nothing"),
        CheckStatus.FAIL if occluded else CheckStatus.PASS,
        note=f"lips {lips_red:.0f} redder than the cheeks, teeth {teeth:.0%}, dark {opening:.0%}"
        f" of the mouth area, its colour spread {mouth_spread:.0f}",
    )
    gap = lips_gap(lab, matte, face, distance, skin_l, skin_a)
    closed = _mouth_closed(
        teeth, None if occluded else gap, occluded=occluded, closed_mouth=closed_mouth
    )
    red = _red_eye(lab, matte, face, distance, skin_a)
    return occlusion, eyes, eyes_open, glasses, forehead, closed, lighting, shadow, red


def _mouth_closed(teeth: float, gap: float | None, *, occluded: bool, closed_mouth: bool) -> Check:
    """Teeth showing (``teeth``, their share of the mouth box) or the lips apart with none
    (``gap``, :func:`lips_gap`; None when not measured): a warning either way."""
    wanted = (
        "this size asks for the mouth closed"
        if closed_mouth
        else "most passports want the mouth closed"
    )
    teeth_limit = Limit(None, MOUTH_OPEN_WARN, "fraction", "teeth_of_mouth")
    if teeth >= MOUTH_OPEN_WARN and not occluded:
        # A warning even where the size asks for the mouth closed: the teeth measure reads pale
        # skin above the upper lip and the shine on the lips as teeth on 2 of 44 closed mouths
        # (rose_leslie 0.16, and only at some JPEG qualities), and misses teeth no lighter
        # than the cheeks on 8 of 25 open smiles: not sure enough to refuse a photo.
        return Check(
            "mouth_closed", teeth, teeth_limit, CheckStatus.WARN, note=f"teeth showing: {wanted}"
        )
    if gap is not None and gap >= MOUTH_GAP_WARN:
        return Check(
            "mouth_closed",
            gap,
            Limit(None, MOUTH_GAP_WARN, of="lips_gap"),
            CheckStatus.WARN,
            note=f"the lips are apart (a dark gap between them, no teeth): {wanted}",
        )
    apart = "" if gap is None else f"; the lips {gap:.2f} eye distances apart"
    return Check(
        "mouth_closed",
        teeth,
        teeth_limit,
        CheckStatus.PASS,
        note=f"teeth {teeth:.0%} of the mouth area{apart}",
    )


def _mouth_rows(
    lab: NDArray[np.float32], matte: Matte, face: Face, distance: float
) -> tuple[NDArray[np.float32], NDArray[np.float32]] | None:
    """The median L and a* (OpenCV's 8-bit Lab) of each row of the band over the mouth's middle
    (see :data:`MOUTH_GAP_WARN`), resampled to :data:`MOUTH_GAP_SCALE_PX` between the eyes so
    a row is 0.01 eye distances; None when the band is not in the cut-out."""
    marks = face.landmarks
    half_mouth = max(1.0, (marks.mouth_left.x - marks.mouth_right.x) / 2)
    top, bottom = MOUTH_GAP_BAND
    middle = Point(marks.mouth_centre.x, marks.mouth_centre.y + (top + bottom) / 2 * distance)
    rows, cols = _box(matte, middle, 0.35 * half_mouth, (bottom - top) / 2 * distance)
    band = np.ascontiguousarray(lab[rows, cols, :2])
    if band.shape[0] < 2 or band.shape[1] < 1:
        return None
    scale = MOUTH_GAP_SCALE_PX * matte.source_px_per_matte_px / distance
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resampled = cv2.resize(band, None, fx=scale, fy=scale, interpolation=interpolation)
    if resampled.ndim < 3:
        return None
    medians = np.median(resampled, axis=1).astype(np.float32)
    return medians[:, 0], medians[:, 1]


def lips_gap(
    lab: NDArray[np.float32],
    matte: Matte,
    face: Face,
    distance: float,
    skin_l: float,
    skin_a: float,
) -> float | None:
    """The height of the dark gap between parted lips, in eye distances (see
    :data:`MOUTH_GAP_WARN`): 0 for a closed mouth. ``lab`` is the matte's pixels in OpenCV's
    8-bit Lab, ``skin_l`` and ``skin_a`` the cheeks' median L and a* in it. None when the mouth
    is not in the cut-out."""
    found = _mouth_rows(lab, matte, face, distance)
    if found is None:
        return None
    light, red = found[0] / max(1.0, skin_l), found[1] - skin_a
    lips_red = max(MOUTH_GAP_LIPS_MIN, float(red.max()))
    lips = red >= max(MOUTH_GAP_LIPS_MIN, MOUTH_GAP_LIPS * lips_red)
    lips_light = float(np.median(light[lips])) if lips.any() else 1.0
    inside = (
        (light < MOUTH_GAP_INSIDE)
        & (light < MOUTH_GAP_INSIDE_OF_LIPS * lips_light)
        & (red < MOUTH_GAP_INSIDE_RED * lips_red)
    )
    reach = max(1, round(MOUTH_GAP_REACH * MOUTH_GAP_SCALE_PX))
    line = [round((at - MOUTH_GAP_BAND[0]) * MOUTH_GAP_SCALE_PX) for at in MOUTH_GAP_LINE]
    padded = np.concatenate(([0], (light < MOUTH_GAP_DARK).astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(padded))
    gaps = [
        int(end - start)
        for start, end in zip(edges[::2], edges[1::2], strict=True)
        if end > line[0]
        and start < line[1]
        and lips[max(0, start - reach) : start].any()
        and lips[end : end + reach].any()
        and inside[start:end].any()
    ]
    return max(gaps, default=0) / MOUTH_GAP_SCALE_PX


def _cie(lab: NDArray[np.float32]) -> NDArray[np.float32]:
    """OpenCV's 8-bit Lab (L* × 255/100, a* and b* + 128) as CIE L*a*b*."""
    out = lab.astype(np.float32) - np.array([0.0, 128.0, 128.0], np.float32)
    out[..., 0] *= np.float32(100 / 255)
    return np.asarray(out, dtype=np.float32)


def forehead_colour(
    lab: NDArray[np.float32], matte: Matte, face: Face, distance: float
) -> NDArray[np.float32] | None:
    """The forehead's median colour in CIE L*a*b* (see :data:`FOREHEAD_DE_WARN`); None when the
    forehead is not in the cut-out."""
    marks = face.landmarks
    centre = Point(
        (marks.right_eye.x + marks.left_eye.x) / 2,
        (marks.right_eye.y + marks.left_eye.y) / 2 - 0.8 * distance,
    )
    rows, cols = _box(matte, centre, 0.3 * distance, 0.1 * distance)
    patch = lab[rows, cols].reshape(-1, 3)
    if patch.size == 0 or float(matte.alpha[rows, cols].mean()) < LIGHTING_MIN_ALPHA:
        return None
    return _cie(np.median(patch, axis=0))


def _forehead_visible(
    lab: NDArray[np.float32], matte: Matte, face: Face, distance: float, cheeks: NDArray[np.float32]
) -> Check:
    limit = Limit(None, FOREHEAD_DE_WARN)
    forehead = forehead_colour(lab, matte, face, distance)
    if forehead is None:
        note = "not measured: the forehead is not in the cut-out"
        return Check("forehead_visible", None, limit, CheckStatus.PASS, note=note)
    difference = float(np.linalg.norm(forehead - _cie(np.median(cheeks, axis=0))))
    covered = difference > FOREHEAD_DE_WARN
    note = "ΔE of the forehead from the cheeks"
    if covered and _hair_coloured(forehead, matte, face, distance):
        covered = False
        note += ": hair over the forehead (a fringe), fine while the brows show"
    elif covered:
        note += ": headwear or hair over the forehead or brows"
    return Check(
        "forehead_visible",
        difference,
        limit,
        CheckStatus.WARN if covered else CheckStatus.PASS,
        note=note,
    )


def _hair_coloured(
    forehead: NDArray[np.float32], matte: Matte, face: Face, distance: float
) -> bool:
    """Whether the ``forehead``'s colour is within :data:`FOREHEAD_HAIR_DE` of the hair beside
    the head (either side, where the cut-out is opaque there)."""
    marks = face.landmarks
    middle = Point(
        (marks.right_eye.x + marks.left_eye.x) / 2, (marks.right_eye.y + marks.left_eye.y) / 2
    )
    for side in (-1.15, 1.15):
        for up in (0.0, 0.3):
            centre = Point(middle.x + side * distance, middle.y - up * distance)
            rows, cols = _box(matte, centre, 0.1 * distance, 0.1 * distance)
            pixels = matte.foreground[rows, cols][matte.alpha[rows, cols] >= LIGHTING_MIN_ALPHA]
            if len(pixels) < 10:
                continue
            hair = np.median(_lab_rows(pixels), axis=0)
            if float(np.linalg.norm(forehead - hair)) < FOREHEAD_HAIR_DE:
                return True
    return False


def _bridge_strip(
    lab: NDArray[np.float32], matte: Matte, face: Face, distance: float
) -> NDArray[np.float32] | None:
    """The rows of ``lab`` across a narrow strip between the eyes (±0.08 eye distances wide, from
    0.25 above the eye line to 0.1 below), where a frame's bridge crosses; None when the strip is
    not in the cut-out."""
    marks = face.landmarks
    centre = Point(
        (marks.right_eye.x + marks.left_eye.x) / 2,
        (marks.right_eye.y + marks.left_eye.y) / 2 - 0.075 * distance,
    )
    rows, cols = _box(matte, centre, 0.08 * distance, 0.175 * distance)
    strip = lab[rows, cols]
    if strip.size == 0 or float(matte.alpha[rows, cols].mean()) < LIGHTING_MIN_ALPHA:
        return None
    return strip


def glasses_bridge(
    lab: NDArray[np.float32], matte: Matte, face: Face, distance: float, skin_l: float
) -> float | None:
    """The darkest row of the strip between the eyes (:func:`_bridge_strip`) over the cheeks'
    ``skin_l`` (see :data:`GLASSES_BRIDGE_MAX`): low where a frame's bridge crosses it; None when
    the strip is not in the cut-out."""
    strip = _bridge_strip(lab, matte, face, distance)
    if strip is None:
        return None
    return float(strip[..., 0].mean(axis=1).min()) / skin_l


def glasses_line(
    lab: NDArray[np.float32], matte: Matte, face: Face, distance: float
) -> float | None:
    """The strongest thin line across the strip :func:`glasses_bridge` reads: the largest ΔE
    between a row's mean colour and the median of the rows around it (within 0.06 eye
    distances, its two neighbours left out). A thin metal bridge is a line whatever its colour,
    where the darkest row is no darker than skin. None when the strip is not in the cut-out."""
    strip = _bridge_strip(lab, matte, face, distance)
    if strip is None:
        return None
    means = _cie(strip.mean(axis=1))
    reach = max(2, round(0.06 * distance / matte.source_px_per_matte_px))
    strongest = 0.0
    for row in range(len(means)):
        around = np.concatenate(
            [means[max(0, row - reach) : max(0, row - 1)], means[row + 2 : row + reach + 1]]
        )
        if len(around) >= 2:
            strongest = max(
                strongest, float(np.linalg.norm(means[row] - np.median(around, axis=0)))
            )
    return strongest


def _glasses(
    lab: NDArray[np.float32],
    matte: Matte,
    face: Face,
    distance: float,
    skin_l: float,
    *,
    allowed: bool,
) -> Check:
    """Glasses, seen by their bridge (:func:`glasses_bridge`): a fail on a size that refuses
    them (``allowed`` false), else a pass whose note says they were seen."""
    limit = Limit(rule="glasses_allowed" if allowed else "no_glasses")
    bridge = glasses_bridge(lab, matte, face, distance, skin_l)
    if bridge is None:
        note = "not measured: the middle of the face is not in the cut-out"
        return Check("glasses", None, limit, CheckStatus.PASS, note=note)
    seen = bridge < GLASSES_BRIDGE_MAX
    measured = f"the darkest row between the eyes {bridge:.2f} of the cheeks' lightness"
    if not seen and not allowed:
        line = glasses_line(lab, matte, face, distance)
        if line is not None and line > GLASSES_LINE_WARN:
            note = (
                f"a thin line crosses between the eyes (ΔE {line:.0f}): a thin metal frame? "
                f"This photo does not allow glasses ({measured})"
            )
            return Check("glasses", "thin frame?", limit, CheckStatus.WARN, note=note)
    if not seen:
        note = measured
    elif allowed:
        note = f"glasses seen, and this photo allows them ({measured})"
    else:
        note = f"glasses seen: this photo does not allow them ({measured})"
    return Check(
        "glasses",
        "glasses" if seen else "none",
        limit,
        CheckStatus.FAIL if seen and not allowed else CheckStatus.PASS,
        note=note,
    )


_EYES_OPEN_LIMIT = Limit(EYES_OPEN_WARN, unit="", of="eye_distances")


@dataclass(frozen=True, slots=True)
class EyeOpening:
    """What the eyes show, each the smaller of the two eyes' (see :data:`EYES_OPEN_WARN` and
    :data:`EYES_IRIS_WARN`): ``height_eye_distances`` the opening, the longest band of rows with
    light and dark across them; ``iris`` how dark the eye's middle stays once dark lines thinner
    than :data:`EYES_IRIS_DISC` are closed over, as a share of the box's 90th-percentile
    lightness."""

    height_eye_distances: float
    iris: float

    @property
    def shut(self) -> bool:
        return self.height_eye_distances < EYES_OPEN_WARN or self.iris < EYES_IRIS_WARN


def eye_opening(
    lab: NDArray[np.float32], matte: Matte, face: Face, distance: float
) -> EyeOpening | None:
    """The eyes' opening and iris (:class:`EyeOpening`), from a box over each eye resampled to
    :data:`EYES_OPEN_SCALE_PX` between the eyes. ``lab`` is the matte's pixels in OpenCV's
    8-bit Lab; None when the eyes are under :data:`EYES_OPEN_MIN_PX` apart in the matte."""
    per_eye_distance = distance / matte.source_px_per_matte_px
    if per_eye_distance < EYES_OPEN_MIN_PX:
        return None
    scale = EYES_OPEN_SCALE_PX / per_eye_distance
    # Area averaging when shrinking (no aliasing of lashes into rows), linear when enlarging.
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    disc_px = round(EYES_IRIS_DISC * EYES_OPEN_SCALE_PX)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (disc_px, disc_px))
    reach_x, reach_y = (round(r * EYES_OPEN_SCALE_PX) for r in EYES_IRIS_REACH)
    heights, irises = [], []
    for eye in (face.landmarks.right_eye, face.landmarks.left_eye):
        rows, cols = _box(matte, eye, 0.22 * distance, 0.14 * distance)
        if lab[rows, cols, 0].size == 0:
            return None
        box = cv2.resize(
            np.ascontiguousarray(lab[rows, cols, 0]),
            None,
            fx=scale,
            fy=scale,
            interpolation=interpolation,
        )
        spread = np.percentile(box, 90, axis=1) - np.percentile(box, 10, axis=1)
        light = max(1.0, float(np.percentile(box, 90)))
        heights.append(_longest_run(spread > EYES_OPEN_ROW_SHARE * light) / EYES_OPEN_SCALE_PX)
        # A lash line, its fringe or a crease is thinner than the disc and closes over; an iris,
        # even a squint's, is not.
        closed = cv2.morphologyEx(box, cv2.MORPH_CLOSE, disc, borderType=cv2.BORDER_REPLICATE)
        middle_y, middle_x = box.shape[0] // 2, box.shape[1] // 2
        middle = closed[
            max(0, middle_y - reach_y) : middle_y + reach_y + 1,
            max(0, middle_x - reach_x) : middle_x + reach_x + 1,
        ]
        irises.append(1.0 - float(middle.min()) / light)
    return EyeOpening(min(heights), min(irises))


def _longest_run(marked: NDArray[np.bool_]) -> int:
    """The length of the longest unbroken run of True in ``marked``: an eye's opening is one
    band of rows, so rows apart from it (a brow, a crease over a shut lid) are not counted."""
    padded = np.concatenate(([0], marked.astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(padded))
    return int((edges[1::2] - edges[::2]).max(initial=0))


def _eyes_open(
    lab: NDArray[np.float32],
    matte: Matte,
    face: Face,
    distance: float,
    eyes_visible: CheckStatus,
) -> Check:
    if eyes_visible is CheckStatus.FAIL:
        note = "not judged: the eyes are not visible (see eyes_visible)"
        return Check("eyes_open", None, _EYES_OPEN_LIMIT, CheckStatus.PASS, note=note)
    opening = eye_opening(lab, matte, face, distance)
    if opening is None:
        note = "not measured: the eyes are too small in the photo to tell"
        return Check("eyes_open", None, _EYES_OPEN_LIMIT, CheckStatus.PASS, note=note)
    note = f"the smaller eye's opening in eye distances (iris {opening.iris:.2f})"
    if opening.height_eye_distances < EYES_OPEN_WARN:
        note += ": an eye looks closed or narrowed; check it"
    elif opening.iris < EYES_IRIS_WARN:
        note += ": no dark iris shows in an eye's middle, as over a closed lid; check it"
    return Check(
        "eyes_open",
        opening.height_eye_distances,
        _EYES_OPEN_LIMIT,
        CheckStatus.WARN if opening.shut else CheckStatus.PASS,
        note=note,
    )


_RED_EYE_LIMIT = Limit(None, RED_EYE_PASS, "fraction")


def _red_eye(
    lab: NDArray[np.float32], matte: Matte, face: Face, distance: float, skin_a: float
) -> Check:
    """The share of red pixels over the redder pupil (``lab`` is OpenCV's 8-bit Lab: a* + 128)."""
    red_min = 128.0 + max(RED_EYE_RED_MIN, skin_a - 128.0 + RED_EYE_OVER_SKIN)
    worst = 0.0
    for eye in (face.landmarks.right_eye, face.landmarks.left_eye):
        pupil = _patch(lab, matte, eye, 0.06 * distance, 0.05 * distance)
        if len(pupil) < RED_EYE_MIN_PIXELS:
            note = f"not measured: the eyes are too small in the photo ({len(pupil)} px a pupil)"
            return Check("red_eye", None, _RED_EYE_LIMIT, CheckStatus.PASS, note=note)
        worst = max(worst, float((pupil[:, 1] >= red_min).mean()))
    return Check(
        "red_eye",
        worst,
        _RED_EYE_LIMIT,
        _at_most(worst, RED_EYE_PASS, RED_EYE_WARN),
        note="share of red pixels over the redder pupil",
    )
