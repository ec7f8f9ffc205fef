"""An API process that serves one of every kind of request, then reports what it imported.

Run as ``python -m tests.service.lean_process MODEL_DIR PHOTO`` from the project root (by
tests/service/test_lean_process.py): a fresh interpreter, so nothing the test session imported
counts. It creates the real app in this process (its lifespan running, one inference process),
sends detect, analyze and annotate (a miss, then a hit), an ID photo as image and as JSON, a
print sheet, a job and its result, the example photos and their thumbnails, the info, specs and
metrics pages and a refused upload, and prints one JSON object: each request's status and the
image and inference libraries found in ``sys.modules``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import httpx

from faceflow.config import Settings
from tests.service.in_process import running_app

HEAVY = ("numpy", "cv2", "PIL", "onnxruntime", "dlib")
JOB_TIMEOUT_S = 120.0


async def serve_one_of_each(model_dir: Path, photo: bytes) -> dict[str, object]:
    settings = Settings.model_validate(
        {"models": {"dir": str(model_dir)}, "runtime": {"processes": 1, "warmup": False}}
    )
    jpeg = {"Content-Type": "image/jpeg"}
    statuses: dict[str, object] = {}
    async with running_app(settings) as running, running.client() as client:

        async def post(name: str, path: str, **params: str) -> httpx.Response:
            response = await client.post(path, params=params, content=photo, headers=jpeg)
            statuses[name] = [response.status_code, response.headers.get("X-Cache")]
            return response

        for operation in ("detect", "analyze", "annotate"):
            await post(f"{operation} miss", f"/v1/{operation}")
            await post(f"{operation} hit", f"/v1/{operation}")
        await post("id-photo", "/v1/id-photo", spec="us-passport", background="blue")
        await post("id-photo json", "/v1/id-photo", response="json")
        await post("id-photo sheet", "/v1/id-photo/sheet", sheet="6inch")
        accepted = await post("job", "/v1/jobs", operation="analyze", attributes="age")
        handle = accepted.json()["handle"]
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while (job := (await client.get(f"/v1/jobs/{handle}")).json())["status"] != "finished":
            if job["status"] in {"failed", "canceled"} or time.monotonic() > deadline:
                raise RuntimeError(f"the job did not finish: {job}")
            await asyncio.sleep(0.05)
        statuses["job result"] = (await client.get(f"/v1/jobs/{handle}/result")).status_code
        examples = (await client.get("/v1/examples")).json()["examples"]
        statuses["examples"] = len(examples)
        for example in examples:
            thumbnail = await client.get("/" + example["thumbnail_url"])
            statuses[f"thumbnail {example['name']}"] = thumbnail.status_code
        for path in ("/v1/info", "/v1/id-photo/specs", "/metrics"):
            statuses[path] = (await client.get(path)).status_code
        refused = await client.post("/v1/detect", content=b"GIF89a" + b"\0" * 32, headers=jpeg)
        statuses["corrupt upload"] = refused.status_code
    loaded = sorted({name.split(".")[0] for name in sys.modules} & set(HEAVY))
    return {"statuses": statuses, "heavy_modules": loaded}


def main() -> None:
    model_dir, photo = Path(sys.argv[1]), Path(sys.argv[2])
    print(json.dumps(asyncio.run(serve_one_of_each(model_dir, photo.read_bytes()))))


if __name__ == "__main__":
    main()
