"""`faceflow models list | verify | pull` against real and tampered stores."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from faceflow.cli.main import app
from faceflow.config import ModelSettings
from faceflow.models import store as store_module
from faceflow.models.catalog import CATALOG, DERIVED, EXAMPLES, model_spec, required_models
from faceflow.models.store import LOCK_FILE, ModelStore
from tests.fixtures.models import flip_a_byte


def run(store_dir: Path, *args: str) -> Result:
    env = {"FACEFLOW_MODELS__DIR": str(store_dir), "COLUMNS": "250"}
    return CliRunner().invoke(app, ["models", *args], env=env)


def line_for(result: Result, name: str) -> str:
    # Its own line: a mark then the name (a derived file's note names its model too).
    [line] = [line for line in result.output.splitlines() if line.split()[1:2] == [name]]
    return line


def test_list_shows_every_catalogued_model_and_its_state(
    pulled_model_settings: ModelSettings,
) -> None:
    result = run(pulled_model_settings.dir, "list")

    assert result.exit_code == 0, result.output
    for spec in CATALOG:
        assert spec.name in result.stdout
        assert spec.carrier.requirement in result.stdout
    for spec in required_models():
        assert "verified" in line_for(result, spec.name)


def test_list_reports_a_file_tampered_after_it_was_verified(model_store_copy: Path) -> None:
    assert "verified" in line_for(run(model_store_copy, "list"), "age-v1")
    assert "verified" in line_for(run(model_store_copy, "verify"), "age-v1")  # stamped now

    flip_a_byte(model_store_copy / model_spec("age-v1").filename)
    result = run(model_store_copy, "list")

    assert result.exit_code == 0, result.output
    assert "corrupt" in line_for(result, "age-v1")
    assert "verified" in line_for(result, "gender-v1")


def test_verify_passes_on_the_pulled_store(pulled_model_settings: ModelSettings) -> None:
    result = run(pulled_model_settings.dir, "verify")

    assert result.exit_code == 0, result.output
    for spec in required_models():
        assert "verified" in line_for(result, spec.name)


def test_verify_fails_on_a_tampered_store_and_names_the_corrupt_model(
    model_store_copy: Path,
) -> None:
    flip_a_byte(model_store_copy / model_spec("gender-v1").filename)

    result = run(model_store_copy, "verify")

    assert result.exit_code == 1
    assert "corrupt" in line_for(result, "gender-v1")
    assert "verified" in line_for(result, "age-v1")


def test_verify_fails_on_an_empty_store(tmp_path: Path) -> None:
    result = run(tmp_path, "verify")

    assert result.exit_code == 1
    assert all("missing" in line_for(result, spec.name) for spec in required_models())


@pytest.mark.usefixtures("forbid_downloads", "pulled_examples")
def test_pull_on_a_verified_store_succeeds_without_downloading(model_store_copy: Path) -> None:
    result = run(model_store_copy, "pull")

    assert result.exit_code == 0, result.output
    names = [spec.name for spec in required_models()] + [spec.name for spec in EXAMPLES]
    for name in names:
        assert "verified" in line_for(result, name)


@pytest.mark.usefixtures("forbid_downloads")
def test_pull_without_examples_leaves_them_out(model_store_copy: Path) -> None:
    shutil.rmtree(model_store_copy / "examples", ignore_errors=True)

    result = run(model_store_copy, "pull", "--no-examples")

    assert result.exit_code == 0, result.output
    assert not (model_store_copy / "examples").exists()


def test_verify_accepts_examples_never_pulled_but_not_tampered_ones(
    model_store_copy: Path, pulled_examples: ModelSettings
) -> None:
    shutil.rmtree(model_store_copy / "examples", ignore_errors=True)
    assert run(model_store_copy, "verify").exit_code == 0

    (model_store_copy / "examples").mkdir()
    astronaut = EXAMPLES[0]
    tampered = model_store_copy / astronaut.relative_path
    shutil.copyfile(pulled_examples.dir / astronaut.relative_path, tampered)
    flip_a_byte(tampered)
    result = run(model_store_copy, "verify")

    assert result.exit_code == 1
    assert "corrupt" in line_for(result, astronaut.name)


def test_pull_of_an_unknown_model_is_a_usage_error(tmp_path: Path) -> None:
    result = run(tmp_path, "pull", "nope")

    assert result.exit_code == 2
    assert "unknown model 'nope'" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("name", ["[/x]", "[bold]x"])
def test_a_name_that_reads_as_markup_is_shown_as_given(tmp_path: Path, name: str) -> None:
    result = run(tmp_path, "pull", name)

    assert result.exit_code == 2, result.output
    assert f"unknown model {name!r}" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_store_path_that_reads_as_markup_is_shown_as_given(tmp_path: Path) -> None:
    store = tmp_path / "[" / "x]"  # the path reads [/x], a closing tag
    store.mkdir(parents=True)

    result = run(store, "verify")

    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert str(store / model_spec("age-v1").filename) in result.output.replace("\n", "")


def test_list_shows_models_not_the_temporaries_of_pulls(model_store_copy: Path) -> None:
    yunet = model_spec("yunet")
    (model_store_copy / f".{yunet.filename}.k1ll3d__").write_bytes(b"half a model")
    (model_store_copy / LOCK_FILE).write_bytes(b"4242\n")

    result = run(model_store_copy, "list")

    assert result.exit_code == 0, result.output
    assert "verified" in line_for(result, yunet.name)
    assert "k1ll3d" not in result.stdout
    assert LOCK_FILE not in result.stdout


def test_a_pull_that_waited_too_long_for_another_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = os.open(tmp_path / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(other, fcntl.LOCK_EX)
    os.write(other, b"4242\n")
    monkeypatch.setattr(store_module, "PULL_LOCK_WAIT_S", 0.0)
    try:
        result = run(tmp_path, "pull", "yunet")
    finally:
        os.close(other)

    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith("error: another `faceflow models pull` (pid 4242) has been writing to")
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_store_that_cannot_be_made_is_one_line_naming_it(tmp_path: Path) -> None:
    # Its progress bar, not drawn where stderr is not a terminal, still began the output with an
    # empty line; and the message named the part of the path mkdir tried (see test_store.py).
    (tmp_path / "a-file").write_text("")

    result = run(tmp_path / "a-file" / "models", "pull", "yunet")

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: cannot make the model store {tmp_path}/a-file/models (models.dir): "
        f"{tmp_path}/a-file is not a folder"
    ]


def test_derived_files_are_listed_and_verified_and_a_damaged_one_is_made_again(
    model_store_copy: Path,
) -> None:
    [derived, *_] = DERIVED
    assert "missing" in line_for(run(model_store_copy, "list"), derived.name)
    assert run(model_store_copy, "verify").exit_code == 0  # made by the first load

    store = ModelStore(ModelSettings(dir=model_store_copy))
    store.read_derived(derived)
    assert "verified" in line_for(run(model_store_copy, "verify"), derived.name)
    flip_a_byte(model_store_copy / derived.filename)
    result = run(model_store_copy, "verify")

    # Exit 1 before, though the next load made it again, as a pull does.
    assert result.exit_code == 0, result.output
    line = line_for(result, derived.name)
    assert "corrupt" in line
    assert f"made again from {derived.source.name}" in line
    store.read_derived(derived)  # what the next load does
    assert "verified" in line_for(run(model_store_copy, "verify"), derived.name)


def test_verify_fails_on_a_damaged_derived_file_this_faceflow_cannot_make_again(
    model_store_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faceflow.models import weights

    [derived, *_] = DERIVED
    monkeypatch.setattr(weights, "without_denormal_weights", lambda data: data)  # off the pin

    result = run(model_store_copy, "verify")

    assert result.exit_code == 1
    assert "this faceflow's derivation does not make its pinned file" in line_for(
        result, derived.name
    )


def test_verify_fails_on_a_corrupt_model_whatever_its_derived_file(
    model_store_copy: Path,
) -> None:
    [derived, *_] = DERIVED
    ModelStore(ModelSettings(dir=model_store_copy)).read_derived(derived)
    flip_a_byte(model_store_copy / derived.source.filename)
    flip_a_byte(model_store_copy / derived.filename)

    result = run(model_store_copy, "verify")

    assert result.exit_code == 1
    assert "corrupt" in line_for(result, derived.source.name)
    assert f"once {derived.source.name} is pulled" in line_for(result, derived.name)


@pytest.mark.usefixtures("forbid_downloads")
def test_a_pull_into_a_store_that_cannot_take_a_derived_file_succeeds_and_says_so(
    model_store_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    [derived, *_] = DERIVED
    # A folder where the derived file goes: the store cannot take it, as a read-only volume
    # holding a store pulled by an older faceflow cannot. Every process derives it in memory.
    (model_store_copy / derived.filename).mkdir()

    result = run(model_store_copy, "pull", "--no-examples")

    # Exit 1 ("some models are not usable") before, where `verify` passed: a container running
    # an idempotent pull before `serve` stopped there.
    assert result.exit_code == 0, result.output
    line = line_for(result, derived.name)
    assert line.startswith("!")
    assert f"made from {derived.source.name} in memory" in line
    for spec in required_models():
        assert "verified" in line_for(result, spec.name)
    # Derived (and warned of) once, not again to show its state.
    assert sum(f"cannot store {derived.name}" in r.getMessage() for r in caplog.records) == 1
