"""One contract per operation (detect, analyze, annotate, id-photo, id-photo-sheet).

For each operation this package holds the one pydantic model of its options (bounds, and defaults
taken from the settings), the parameters that go into its cache key, and the task that runs it.
The routes (as FastAPI's query parameters), the cache-hit fast path, jobs and the CLI all parse
options through these models, so they cannot drift apart. Options stay apart from the image: a
model resolves into a request's work, and the bytes join it only when the work is handed on.

It sits between the entry points (service, jobs, cli) and the cache and runtime below them.
"""

from faceflow.domain import Operation

__all__ = ["Operation"]
