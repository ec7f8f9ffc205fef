"""The cache's result format is bumped whenever the code that makes answers changes them.

A cache key names the models and :data:`faceflow.cache.keys.RESULT_FORMAT`, not faceflow's code,
so that API nodes and workers of two releases share what both make alike (a rolling deploy keeps
its cache and its queued jobs). The cost is that a change to what an answer holds (a new ID-photo
check, a threshold, a field) must bump the format by hand, or nodes keep serving the answers the
code before it made, a photo's old "pass" among them, for ``cache.ttl_s`` (a day), from the shared
cache and from workers of the older release. This test makes that a decision at every change: it
pins a fingerprint of the source that makes answers beside the format it was last pinned for.
"""

from __future__ import annotations

from pathlib import Path

from blake3 import blake3

from faceflow.cache import keys

SOURCE = Path(keys.__file__).resolve().parents[1]

# What makes an answer: the pipeline and the models it runs, decoding and encoding, the
# operations' options as they become the pipeline's requests, the tasks that run them and the
# entries that hold their answers.
MAKES_ANSWERS = (
    "pipeline",
    "models",
    "imaging",
    "operations",
    "domain.py",
    "runtime/tasks.py",
    "runtime/idphoto_tasks.py",
    "cache/entry.py",
)

PINNED = (9, "192fda9fce6fc3d2")
"""(RESULT_FORMAT, the fingerprint of MAKES_ANSWERS) as they were last decided together."""


def fingerprint(root: Path = SOURCE) -> str:
    digest = blake3()
    for name in MAKES_ANSWERS:
        path = root / name
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(file.relative_to(root).as_posix().encode() + b"\0")
            digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def test_the_code_that_makes_answers_is_the_code_the_result_format_was_pinned_for() -> None:
    found = (keys.RESULT_FORMAT, fingerprint())
    assert found == PINNED, (
        f"the code that makes answers changed (now {found}, pinned {PINNED}). If an answer can "
        f"differ from what the code before made (a check, a threshold, a field, a model's pre- or "
        f"post-processing), bump RESULT_FORMAT in src/faceflow/cache/keys.py and pin "
        f"({keys.RESULT_FORMAT + 1}, fingerprint) here; if no answer can (a refactor, a comment), "
        f"pin the new fingerprint with the same format."
    )


def test_the_fingerprint_reads_every_file_that_makes_answers(tmp_path: Path) -> None:
    for name in MAKES_ANSWERS:
        assert (SOURCE / name).exists(), name
    # A byte changed in any one of them changes it.
    (tmp_path / "pipeline").mkdir()
    for name in MAKES_ANSWERS:
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not name.endswith(".py"):
            target.mkdir(exist_ok=True)
            target = target / "a.py"
        target.write_text("x = 1\n")
    before = fingerprint(tmp_path)
    (tmp_path / "cache/entry.py").write_text("x = 2\n")
    assert fingerprint(tmp_path) != before
