"""Settings: environment, YAML and TOML files, precedence, and refusal of unsafe values."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from faceflow.config import (
    ALL_OPERATIONS,
    DEFAULT_KEY_FAILURE_LIMIT,
    MAX_TTL_S,
    RuntimeSettings,
    ServerSettings,
    Settings,
    environment_names_a_setting,
    load_settings,
    read_config_file,
    settings_problems,
)
from faceflow.domain import Operation
from faceflow.errors import InvalidParameter

SHA256_OF_KEY = hashlib.sha256(b"secret-key").hexdigest()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No FACEFLOW_* variable from the developer's shell leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("FACEFLOW_"):
            monkeypatch.delenv(name)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8", errors="surrogateescape")  # \udcff: the byte 0xff
    return path


def test_defaults_need_nothing() -> None:
    settings = load_settings()

    assert settings.cache.redis_url is None
    assert settings.detection.score_threshold == 0.7
    assert settings.models.dir.name == "models"
    assert settings.runtime.waiting_limit == max(1, settings.runtime.processes // 2)


def test_nested_environment_variables_set_group_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEFLOW_CACHE__REDIS_URL", "redis://cache.internal:6379/2")
    monkeypatch.setenv("FACEFLOW_RUNTIME__PROCESSES", "3")
    monkeypatch.setenv("FACEFLOW_SERVER__CORS_ORIGINS", '["https://a.example"]')

    settings = load_settings()

    assert settings.cache.redis_url == "redis://cache.internal:6379/2"
    assert settings.runtime.processes == 3
    assert settings.server.cors_origins == ["https://a.example"]


def test_yaml_file_loads(tmp_path: Path) -> None:
    config = write(
        tmp_path / "faceflow.yaml",
        "server:\n  port: 9000\ncache:\n  redis_url: redis://yaml:6379/0\n"
        "detection:\n  score_threshold: 0.8\n",
    )

    settings = load_settings(config)

    assert settings.server.port == 9000
    assert settings.cache.redis_url == "redis://yaml:6379/0"
    assert settings.detection.score_threshold == 0.8


def test_toml_file_loads(tmp_path: Path) -> None:
    config = write(
        tmp_path / "faceflow.toml",
        '[server]\nport = 9001\n[jobs]\nredis_url = "redis://toml:6379/1"\n'
        "[limits]\nmax_upload_bytes = 2048\n",
    )

    settings = load_settings(config)

    assert settings.server.port == 9001
    assert settings.jobs.redis_url == "redis://toml:6379/1"
    assert settings.limits.max_upload_bytes == 2048


def test_config_file_can_be_named_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(tmp_path / "faceflow.yml", "server:\n  port: 9002\n")
    monkeypatch.setenv("FACEFLOW_CONFIG", str(config))

    assert load_settings().server.port == 9002


def test_environment_beats_the_file_and_the_file_beats_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(
        tmp_path / "faceflow.yaml",
        "cache:\n  redis_url: redis://file:6379/0\n  ttl_s: 60\n",
    )
    monkeypatch.setenv("FACEFLOW_CACHE__REDIS_URL", "redis://env:6379/0")

    settings = load_settings(config)

    assert settings.cache.redis_url == "redis://env:6379/0"
    assert settings.cache.ttl_s == 60  # only the file sets it
    assert settings.cache.lock_ttl_ms == 30_000  # nobody sets it


def test_explicit_overrides_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEFLOW_SERVER__PORT", "9100")

    settings = load_settings(server={"port": 9200})

    assert settings.server.port == 9200


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FACEFLOW_SERVER__TRUSTED_PROXIES", "127.0.0.1"),
        ("FACEFLOW_RUNTIME__OPERATIONS", "detect,analyze"),
        ("FACEFLOW_MODELS", "{bad"),
    ],
)
def test_a_list_or_group_variable_that_is_not_json_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    # pydantic-settings raised its SettingsError, a traceback naming only the group.
    monkeypatch.setenv(variable, value)
    monkeypatch.setenv("FACEFLOW_SERVER__HOST", "not json, and a plain string setting")

    with pytest.raises(InvalidParameter) as raised:
        load_settings()

    assert raised.value.message.startswith(f"{variable} is not valid JSON")
    assert "HOST" not in raised.value.message


def test_settings_survive_the_json_round_trip_to_a_worker(tmp_path: Path) -> None:
    settings = load_settings(models={"dir": tmp_path, "paths": {"yunet": tmp_path / "y.onnx"}})

    assert Settings.model_validate_json(settings.model_dump_json()) == settings


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("server:\n  api_key_hashes: [secret-key]\n", "api_key_hashes"),
        (f"server:\n  api_key_hashes: ['{SHA256_OF_KEY[:-1]}']\n", "api_key_hashes"),
        (f"server:\n  api_key_hashes: ['{SHA256_OF_KEY[:-1]}z']\n", "api_key_hashes"),
        ("limits:\n  min_side_px: 500\n  max_side_px: 400\n", "min_side_px"),
        ("detection:\n  score_threshold: 1.5\n", "score_threshold"),
        ("server:\n  port: 0\n", "port"),
        ("runtime:\n  processes: 0\n", "processes"),
        ("cache:\n  ttl_s: 0\n", "ttl_s"),
        ("cahce:\n  redis_url: redis://typo:6379\n", "cahce"),
        ("server:\n  prot: 9000\n", "prot"),
    ],
    ids=[
        "plain-api-key",
        "short-hash",
        "non-hex-hash",
        "min-side-over-max-side",
        "threshold-over-1",
        "port-0",
        "no-processes",
        "zero-ttl",
        "misspelt-group",
        "misspelt-field",
    ],
)
def test_unsafe_or_unknown_values_are_refused(tmp_path: Path, text: str, field: str) -> None:
    config = write(tmp_path / "faceflow.yaml", text)

    with pytest.raises(ValidationError, match=field):
        load_settings(config)


@pytest.mark.parametrize("share", [0.0, 0.05, 0.95, 1.0, "half"])
def test_a_cutout_share_outside_its_bounds_is_refused(share: object) -> None:
    # At 0 a cut-out would have no room (every source= render a 404); at 1, nothing else would.
    with pytest.raises(ValidationError, match="memory_cutout_share"):
        load_settings(cache={"memory_cutout_share": share})


def test_the_cutout_share_takes_values_within_its_bounds() -> None:
    assert load_settings().cache.memory_cutout_share == 0.5
    assert load_settings(cache={"memory_cutout_share": 0.1}).cache.memory_cutout_share == 0.1
    assert load_settings(cache={"memory_cutout_share": 0.9}).cache.memory_cutout_share == 0.9


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("trusted_proxies", ["proxy.example"]),
        ("trusted_proxies", ["10.0.0.0/33"]),
        ("public_url", "faces.example.com"),
        ("public_url", "ftp://faces.example.com"),
        ("public_url", "https://faces.example.com/?x=1"),
        ("public_paths", ["metrics"]),
        ("public_paths", ["/v1/*/x"]),
        ("rate_limit_storage", "foo"),
        ("rate_limit_storage", "memcached://cache:11211"),  # its client is not installed
        ("root_path", "faces"),
        ("root_path", "/"),
        ("root_path", "/faces/"),
        ("root_path", "/fa ces"),
        ("root_path", "/faces\r\nX-Injected: 1"),
        ("root_path", "/gesichtsanalyse-für-alle"),  # uvicorn writes it as ASCII: every request 500
        ("root_path", "/faces//v2"),
        ("root_path", "/faces?x=1"),
        ("root_path", "/" + "f" * 256),
    ],
)
def test_unsafe_edge_settings_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        load_settings(server={field: value})


@pytest.mark.parametrize("group", ["cache", "jobs"])
@pytest.mark.parametrize("url", ["notaurl", "http://cache:6379", "unix://", "127.0.0.1:6379"])
def test_a_redis_url_that_redis_py_would_refuse_is_refused_with_the_settings(
    monkeypatch: pytest.MonkeyPatch, group: str, url: str
) -> None:
    # Checked when the settings are read, not when a server or worker first connects.
    monkeypatch.setenv(f"FACEFLOW_{group.upper()}__REDIS_URL", url)

    with pytest.raises(ValidationError) as raised:
        load_settings()

    assert settings_problems(raised.value) == [
        f"{group}.redis_url (FACEFLOW_{group.upper()}__REDIS_URL): not a Redis URL:"
        " redis://host:port/db, rediss://… (TLS) or unix:///path/to/socket"
    ]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis://:secret@queue:99999/0", "not a Redis URL redis-py can read: Port out of range"),
        ("redis://queue:port/0", "not a Redis URL redis-py can read: Port could not be cast"),
        ("redis://queue/0?socket_timeout=soon", "Invalid value for 'socket_timeout'"),
        ("redis://queue:6379/cache", "the database after the host must be a number"),
        ("rediss://queue:6380/0/jobs", "the database after the host must be a number"),
    ],
)
def test_a_redis_url_redis_py_would_fail_on_connecting_is_refused_with_the_settings(
    monkeypatch: pytest.MonkeyPatch, url: str, reason: str
) -> None:
    # redis-py reads the port and options only as it connects (a traceback in `faceflow
    # worker`), and takes a database that is no number as database 0, quietly.
    monkeypatch.setenv("FACEFLOW_JOBS__REDIS_URL", url)

    with pytest.raises(ValidationError) as raised:
        load_settings()

    [problem] = settings_problems(raised.value)
    assert problem.startswith("jobs.redis_url (FACEFLOW_JOBS__REDIS_URL): ")
    assert reason in problem
    assert "secret" not in problem


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://",
        "rediss://:pw@cache.example:6380",
        "unix:///run/r.sock",
        "redis://cache:6379/",
        "redis://cache:6379/15?socket_timeout=0.05",
    ],
)
def test_redis_urls_redis_py_takes_are_taken(url: str) -> None:
    import redis

    redis.Redis.from_url(url)  # the same URL, as redis-py reads it (no connection is made)
    assert load_settings(jobs={"redis_url": url}).jobs.redis_url == url


@pytest.mark.parametrize(
    "origin",
    [
        "https://portal.example.com; script-src *",  # a directive of the client's own
        "https://portal.example.com https://evil.example",
        "'self'",
        "*",
        "javascript:alert(1)",
        "https://portal.example.com/path",
    ],
)
def test_a_frame_ancestor_that_is_not_one_origin_is_refused(origin: str) -> None:
    with pytest.raises(ValidationError, match="web_page_frame_ancestors"):
        load_settings(server={"web_page_frame_ancestors": [origin]})


def test_frame_ancestors_take_origins_with_ports_and_subdomain_wildcards() -> None:
    origins = ["https://portal.example.com", "http://10.0.0.5:8080", "https://*.example.org"]
    settings = load_settings(server={"web_page_frame_ancestors": origins})
    assert settings.server.web_page_frame_ancestors == origins


@pytest.mark.parametrize("root_path", ["", "/faces", "/tools/faces-v2", "/" + "f" * 255])
def test_a_root_path_is_empty_or_a_path_without_a_trailing_slash(root_path: str) -> None:
    assert load_settings(server={"root_path": root_path}).server.root_path == root_path


def test_public_url_loses_its_trailing_slash() -> None:
    settings = load_settings(server={"public_url": "https://faces.example.com/api/"})
    assert settings.server.public_url == "https://faces.example.com/api"


def test_unsafe_value_from_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEFLOW_SERVER__API_KEY_HASHES", '["secret-key"]')

    with pytest.raises(ValidationError, match="sha256"):
        load_settings()


def test_api_key_hashes_are_accepted_and_lower_cased() -> None:
    settings = load_settings(server={"api_key_hashes": [SHA256_OF_KEY.upper()]})

    assert settings.server.api_key_hashes == [SHA256_OF_KEY]


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("faceflow.ini", "[server]\nport = 1\n", "must end in"),
        ("faceflow.yaml", "- just\n- a list\n", "mapping"),
        ("absent.yaml", None, "cannot read"),
        # Malformed: one line naming the place, not the parser's traceback.
        ("faceflow.yaml", "server:\n  port: [1\n", r"not valid YAML: .* \(line 3, column 1\)$"),
        ("faceflow.yaml", "a: b: c\n", r"not valid YAML: .* \(line 1, column 5\)$"),
        # PyYAML kept the last of a repeated key: the first block's settings silently dropped.
        (
            "faceflow.yaml",
            "server:\n  port: 8000\nlimits: {}\nserver:\n  host: 0.0.0.0\n",
            r"not valid YAML: 'server' is given twice \(line 4, column 1\)$",
        ),
        ("faceflow.yaml", "server:\n  port: 1\n  port: 2\n", r"'port' is given twice \(line 3,"),
        ("faceflow.toml", "[server\nport = 1\n", r"not valid TOML: .*line 1, column 8"),
        ("faceflow.yaml", "server:\n  port: \udcff\n", r"not UTF-8 text \(byte 16\)$"),
        ("faceflow.yaml", "#" * (1 << 20) + "\n", "is over 1048576 bytes"),
    ],
)
def test_unusable_config_files_are_refused(
    tmp_path: Path, name: str, text: str | None, problem: str
) -> None:
    path = tmp_path / name
    if text is not None:
        write(path, text)

    with pytest.raises(InvalidParameter, match=problem):
        read_config_file(path)


def test_a_yaml_merge_may_be_overridden_by_the_keys_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "faceflow.yaml"
    write(path, "base: &base {port: 8000, host: 0.0.0.0}\nserver:\n  <<: *base\n  port: 9000\n")

    assert read_config_file(path)["server"] == {"port": 9000, "host": "0.0.0.0"}


def test_a_config_file_that_never_ends_is_refused_after_its_limit(tmp_path: Path) -> None:
    endless = tmp_path / "settings.yaml"
    endless.symlink_to("/dev/zero")

    with pytest.raises(InvalidParameter, match="is over"):
        read_config_file(endless)


def test_empty_yaml_file_means_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path / "faceflow.yaml", "")) == load_settings()


def test_override_of_an_unknown_group_is_refused() -> None:
    with pytest.raises(InvalidParameter, match="serevr"):
        load_settings(serevr={"port": 1})


def test_overrides_are_validated() -> None:
    with pytest.raises(ValidationError, match="min_side_px"):
        load_settings(limits={"min_side_px": 500, "max_side_px": 400})


def test_runtime_operations_are_the_domain_verbs_written_as_before() -> None:
    # Every verb but the sheet (id-photo loads its models): a new verb must be placed here too.
    assert set(ALL_OPERATIONS) == set(Operation) - {Operation.ID_PHOTO_SHEET}
    runtime = RuntimeSettings.model_validate_json('{"operations": ["detect", "id-photo"]}')
    assert runtime.operations == [Operation.DETECT, Operation.ID_PHOTO]
    assert runtime.model_dump_json().startswith('{"operations":["detect","id-photo"]')
    with pytest.raises(ValidationError, match="operations"):
        RuntimeSettings.model_validate({"operations": ["id-photo-sheet"]})


def test_each_problem_names_the_setting_its_variable_and_a_likely_meant_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "faceflow.yaml"
    config.write_text("server:\n  prot: 9\ncache:\n  memory_bytes: -5\nserverr: {}\n")
    monkeypatch.setenv("FACEFLOW_LIMITS__MAX_UPLOAD", "1")

    with pytest.raises(ValidationError) as raised:
        load_settings(config)

    assert sorted(settings_problems(raised.value)) == [
        "cache.memory_bytes (FACEFLOW_CACHE__MEMORY_BYTES): "
        "Input should be greater than or equal to 0",
        "limits.max_upload (FACEFLOW_LIMITS__MAX_UPLOAD): unknown setting "
        "(did you mean 'limits.max_upload_bytes'?)",
        "server.prot (FACEFLOW_SERVER__PROT): unknown setting (did you mean 'server.port'?)",
        "serverr (FACEFLOW_SERVERR): unknown setting (did you mean 'server'?)",
    ]


def test_a_yaml_true_or_false_for_a_number_is_refused_naming_the_setting(tmp_path: Path) -> None:
    # pydantic's lax mode read a bool as 1 or 0: max_faces: true kept one face, and a yes for
    # max_side_px was refused as "greater than or equal to 16".
    config = tmp_path / "faceflow.yaml"
    config.write_text(
        "detection:\n  max_faces: true\n  score_threshold: false\n"
        "limits:\n  max_side_px: yes\nruntime:\n  max_waiting: off\n"
        "jobs:\n  retry_backoff_s: [1, on]\n"
    )

    with pytest.raises(ValidationError) as raised:
        load_settings(config)

    said = "a number is wanted, not {} (YAML's yes/no, on/off too)"
    assert sorted(settings_problems(raised.value)) == [
        f"detection.max_faces (FACEFLOW_DETECTION__MAX_FACES): {said.format('true')}",
        f"detection.score_threshold (FACEFLOW_DETECTION__SCORE_THRESHOLD): {said.format('false')}",
        f"jobs.retry_backoff_s (FACEFLOW_JOBS__RETRY_BACKOFF_S): {said.format('true')}",
        f"limits.max_side_px (FACEFLOW_LIMITS__MAX_SIDE_PX): {said.format('true')}",
        f"runtime.max_waiting (FACEFLOW_RUNTIME__MAX_WAITING): {said.format('false')}",
    ]


def test_a_yaml_true_for_a_bool_setting_and_numbers_for_numbers_are_taken(tmp_path: Path) -> None:
    config = tmp_path / "faceflow.yaml"
    config.write_text("runtime:\n  warmup: no\n  max_waiting: 3\ndetection:\n  max_faces: 2\n")

    settings = load_settings(config)

    assert (settings.runtime.warmup, settings.runtime.max_waiting) == (False, 3)
    assert settings.detection.max_faces == 2


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "Infinity"])
def test_an_infinite_or_nan_float_setting_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    # inf passed breaker_reset_s's one bound (> 0): a breaker, once open, never let Redis in.
    monkeypatch.setenv("FACEFLOW_CACHE__BREAKER_RESET_S", value)

    with pytest.raises(ValidationError) as raised:
        load_settings()

    assert settings_problems(raised.value) == [
        "cache.breaker_reset_s (FACEFLOW_CACHE__BREAKER_RESET_S): Input should be a finite number"
    ]


def test_a_yaml_infinity_for_a_float_setting_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "faceflow.yaml"
    config.write_text("cache:\n  breaker_reset_s: .inf\n")

    with pytest.raises(ValidationError, match="finite number"):
        load_settings(config)


@pytest.mark.parametrize("setting", ["cache.ttl_s", "jobs.result_ttl_s", "jobs.failure_ttl_s"])
def test_a_ttl_past_a_hundred_years_is_refused(tmp_path: Path, setting: str) -> None:
    # Redis refuses an expiry past 2^63 ms: cache.ttl_s 10^17 made every store there fail, silently.
    group, name = setting.split(".")
    config = tmp_path / "faceflow.yaml"
    config.write_text(f"{group}:\n  {name}: {10**17}\n")

    with pytest.raises(ValidationError) as raised:
        load_settings(config)

    assert settings_problems(raised.value) == [
        f"{setting} (FACEFLOW_{group.upper()}__{name.upper()}): "
        f"Input should be less than or equal to {MAX_TTL_S}"
    ]


def test_the_longest_ttl_with_the_widest_jitter_is_an_expiry_redis_takes() -> None:
    from faceflow.cache.redis_cache import jittered_ttl_ms

    assert jittered_ttl_ms(MAX_TTL_S, 1.0, rng=lambda: 0.999999) < 2**63 // 1000


@pytest.mark.parametrize("given", ["INFO", "Warning", " debug "])
def test_a_log_level_is_read_in_any_case(monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    # Python's logging spells its levels in capitals: LOG_LEVEL=INFO stopped the service.
    monkeypatch.setenv("FACEFLOW_SERVER__LOG_LEVEL", given)

    assert load_settings().server.log_level == given.strip().lower()


def test_a_log_level_that_is_none_is_still_refused() -> None:
    with pytest.raises(ValidationError, match="'debug', 'info', 'warning' or 'error'"):
        ServerSettings.model_validate({"log_level": "verbose"})


@pytest.mark.parametrize(
    ("origin", "meant"),
    [
        ("https://app.example/", "https://app.example"),
        ("https://App.Example:8443", "https://app.example:8443"),
        ("https://app.example/page?x=1", "https://app.example"),
        ("app.example", None),
        ("https://app.example https://b.example", None),
    ],
)
def test_a_cors_origin_that_no_browser_sends_is_refused(origin: str, meant: str | None) -> None:
    # Compared with Origin as written: a trailing slash or a capital never matched, silently.
    with pytest.raises(ValidationError) as raised:
        ServerSettings(cors_origins=[origin])

    [problem] = settings_problems(raised.value)
    assert problem.startswith("cors_origins (FACEFLOW_CORS_ORIGINS): cors_origins entry")
    assert problem.endswith(f"(did you mean {meant!r}?)" if meant else "app.example.com")


@pytest.mark.parametrize(
    "origin",
    [
        "https://app.example",
        "http://localhost:5173",
        "http://[::1]:8080",
        "chrome-extension://abcdefghijklmnop",
        "*",
        "null",
    ],
)
def test_cors_origins_take_what_browsers_send(origin: str) -> None:
    assert ServerSettings(cors_origins=[origin]).cors_origins == [origin]


def test_the_default_key_failure_limit_is_in_limits_notation() -> None:
    from limits import parse_many

    assert parse_many(DEFAULT_KEY_FAILURE_LIMIT)
    assert ServerSettings().key_failure_limit == DEFAULT_KEY_FAILURE_LIMIT


@pytest.mark.parametrize("field", ["rate_limit", "key_failure_limit"])
def test_a_rate_limit_out_of_limits_notation_is_refused(field: str) -> None:
    with pytest.raises(ValidationError, match="not in `limits` notation"):
        ServerSettings.model_validate({field: "20 a minute"})


# What an inference process does with its settings, in a fresh interpreter: which of the
# modules named in argv it imported.
_READ_AS_A_PROCESS = """
import json, sys
from faceflow.config import Settings
Settings.model_validate_json(Settings().model_dump_json())
print(json.dumps(sorted(m for m in sys.argv[1:] if m in sys.modules)))
"""


def test_reading_default_settings_imports_no_rate_limiter_nor_settings_sources() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _READ_AS_A_PROCESS, "limits", "pydantic_settings"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    assert json.loads(done.stdout) == []


_LOAD = """
import json, sys
from faceflow.config import load_settings
settings = load_settings()
print(json.dumps([settings.server.port, "pydantic_settings" in sys.modules]))
"""


@pytest.mark.parametrize(
    ("variables", "port", "sources_imported"),
    [
        ({}, 8000, False),
        # Read by load_settings itself, or by nothing in faceflow: no setting.
        ({"FACEFLOW_CONFIG": "", "FACEFLOW_TESTDATA": "/x", "FACEFLOW_SERVERS": "1"}, 8000, False),
        ({"FACEFLOW_SERVER__PORT": "9001"}, 9001, True),
        ({"faceflow_server__port": "9002"}, 9002, True),
        ({"FACEFLOW_SERVER": '{"port": 9003}'}, 9003, True),
    ],
)
def test_the_environment_is_read_through_settings_sources_only_when_it_names_a_setting(
    variables: dict[str, str], port: int, sources_imported: bool
) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.upper().startswith("FACEFLOW_")}
    done = subprocess.run(
        [sys.executable, "-c", _LOAD],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**environment, **variables},
    )

    assert json.loads(done.stdout) == [port, sources_imported]
    assert environment_names_a_setting(variables) is sources_imported


def test_settings_built_directly_take_only_what_they_are_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FACEFLOW_SERVER__PORT", "9100")

    assert Settings().server.port == 8000
    assert Settings(server={"port": 9200}).server.port == 9200
    assert load_settings().server.port == 9100
