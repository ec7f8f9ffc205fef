"""The cache-hit reference: an image-analysis endpoint built the common way.

Flask under gunicorn (2 sync workers), the SHA-256 of the upload as the cache key, the result
in Redis. A miss decodes the upload with OpenCV and runs OpenCV's YuNet face detector (the same
model file faceflow uses), stores the JSON answer for an hour and returns it; a hit returns the
stored answer. Runs in its own virtualenv, built and started by bench/reference_server.py.
"""

from __future__ import annotations

import hashlib
import json
import os

import cv2
import numpy as np
import redis
from flask import Flask, Response, request

app = Flask(__name__)
cache = redis.Redis.from_url(os.environ["REFERENCE_REDIS_URL"])
detector = cv2.FaceDetectorYN.create(os.environ["REFERENCE_YUNET"], "", (320, 320), 0.7, 0.3)
cv2.setNumThreads(1)
TTL_S = 3600


def analyze(body: bytes) -> bytes:
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return b""
    scale = min(1.0, 640 / max(image.shape[:2]))
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    detector.setInputSize((small.shape[1], small.shape[0]))
    _, found = detector.detect(small)
    faces = []
    for row in found if found is not None else []:
        x, y, w, h = (float(v) / scale for v in row[:4])
        faces.append({"box": [x, y, x + w, y + h], "score": float(row[14])})
    return json.dumps({"faces": faces}).encode()


def readyz() -> Response:
    cache.ping()
    return Response(b"ok")


def analyze_route() -> Response:
    body = request.get_data()
    key = "ref:" + hashlib.sha256(body).hexdigest()
    cached = cache.get(key)
    if cached is not None:
        return Response(cached, mimetype="application/json", headers={"X-Cache": "hit"})
    answer = analyze(body)
    if not answer:
        return Response(b'{"error": "not an image"}', status=422, mimetype="application/json")
    cache.set(key, answer, ex=TTL_S)
    return Response(answer, mimetype="application/json", headers={"X-Cache": "miss"})


app.add_url_rule("/readyz", view_func=readyz, methods=["GET"])
app.add_url_rule("/v1/analyze", view_func=analyze_route, methods=["POST"])
