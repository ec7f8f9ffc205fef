"""The bare u2netp ``session.run`` under different onnxruntime and malloc settings, side by side.

    .venv/bin/python bench/u2netp_session.py [--rounds 4] [--runs 5] [--configs NAME ...]
        [--photo PATH] [--sizes]

Each configuration runs in a fresh process of its own (glibc reads ``GLIBC_TUNABLES`` only when a
process starts, and one session's heap must not serve another's), pinned to one CPU with every
thread pool at one thread, on the same input tensor (faceflow's own ``to_tensor`` of the photo:
the model's cost does not depend on how the 320 × 320 input was made). Per process: the session is
built, run once untimed, then ``--runs`` timed runs: CPU ms (user and system apart), minor page
faults per run, and the process's RSS after them. Configurations alternate (ABC.. ABC.., several
rounds), and the table gives min and median over every timed run of every round.

``--sizes`` makes each process an inference process as the service has it instead: every model
loaded (u2netp with the configuration's session), the service's warm-up, then the timed runs, then
200 ID-photo cut-outs (``matte_task``: decode, detect, u2netp, refinement, serialised matte) of
the test and dev-set portraits at long sides of 320–3,000 px, with the worker's heap trimming
after each task; RSS after the warm-up and after the 200.

The machine is shared: the load average before and after is printed with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_PHOTO = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "portrait_1.jpg"
HUGETLB = "glibc.malloc.hugetlb=1"
SIZED_CUTOUTS = 200
PORTRAITS = ("portrait_1.jpg", "portrait_2.jpg", "obama.jpg", "rose_leslie.jpg", "biden.jpg")


@dataclass(frozen=True, slots=True)
class Config:
    """One way to run u2netp: session options and the process's malloc tunables."""

    name: str
    arena: bool
    mem_pattern: bool
    tunables: str | None
    denormal_as_zero: bool = False
    same_as_requested: bool = False
    spinning_off: bool = True
    shrink_after_run: bool = False
    about: str = ""


CONFIGS = {
    c.name: c
    for c in (
        Config("faceflow", False, True, HUGETLB, about="inference process: no arena, huge pages"),
        Config("faceflow-4k", False, True, None, about="no arena, no tunables (bench in-process)"),
        Config(
            "rembg", True, True, None, spinning_off=False, about="onnxruntime defaults, no tunables"
        ),
        Config("rembg-huge", True, True, HUGETLB, spinning_off=False, about="defaults, huge pages"),
        Config("faceflow-daz", False, True, HUGETLB, denormal_as_zero=True, about="+ denormals 0"),
        Config(
            "rembg-daz", True, True, None, denormal_as_zero=True, about="defaults + denormals 0"
        ),
        Config(
            "arena-same",
            True,
            True,
            HUGETLB,
            same_as_requested=True,
            about="arena kSameAsRequested, pattern on, huge pages",
        ),
        Config("arena-nopat", True, False, HUGETLB, about="arena, pattern off, huge pages"),
        Config("malloc", False, False, HUGETLB, about="no arena, no pattern: glibc per tensor"),
        Config(
            "arena-shrink",
            True,
            False,
            HUGETLB,
            same_as_requested=True,
            shrink_after_run=True,
            about="arena kSameAsRequested, pattern off, shrunk after every run, huge pages",
        ),
    )
}


def child(config: Config, runs: int, photo: Path, sizes: bool) -> dict[str, Any]:
    """Runs in the configuration's own process; returns what it measured."""
    import cv2
    import onnxruntime as ort

    from faceflow.config import load_settings
    from faceflow.imaging.ingest import decode_image
    from faceflow.models.catalog import model_spec
    from faceflow.models.segmenter import U2NetpSegmenter, to_tensor
    from faceflow.models.store import ModelStore
    from faceflow.runtime.heap import resident_bytes

    cv2.setNumThreads(1)
    settings = load_settings(models={"intra_op_threads": 1})
    model = ModelStore(settings.models).read_verified(model_spec("u2netp"))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = config.arena
    options.enable_mem_pattern = config.mem_pattern
    if config.spinning_off:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if config.denormal_as_zero:
        options.add_session_config_entry("session.set_denormal_as_zero", "1")
    providers: list[Any] = ["CPUExecutionProvider"]
    if config.same_as_requested:
        providers = [("CPUExecutionProvider", {"arena_extend_strategy": "kSameAsRequested"})]
    session = ort.InferenceSession(model, sess_options=options, providers=providers)
    rgb = decode_image(photo.read_bytes(), settings.limits).rgb
    tensor = to_tensor(rgb)
    feed = {session.get_inputs()[0].name: tensor}
    output = [session.get_outputs()[0].name]
    answer: dict[str, Any] = {}
    context = None
    if sizes:
        context = sized_context(settings, config, U2NetpSegmenter(session))
        answer["warm_mb"] = resident_bytes() / 2**20
        print(f"warmed up: RSS {answer['warm_mb']:.0f} MB", file=sys.stderr)
    loaded_rss = resident_bytes()
    run_options = ort.RunOptions()
    if config.shrink_after_run:
        # onnxruntime frees the arena's unused chunks at the end of every such run.
        run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    session.run(output, feed, run_options)
    user, system, faults = [], [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_SELF)
        session.run(output, feed, run_options)
        after = resource.getrusage(resource.RUSAGE_SELF)
        user.append((after.ru_utime - before.ru_utime) * 1000)
        system.append((after.ru_stime - before.ru_stime) * 1000)
        faults.append(after.ru_minflt - before.ru_minflt)
    answer |= {
        "user": user,
        "system": system,
        "faults": faults,
        "loaded_mb": loaded_rss / 2**20,
        "rss_mb": resident_bytes() / 2**20,
        "peak_mb": peak_resident_bytes() / 2**20,
    }
    if context is not None:
        answer["rss_sized_mb"] = sized_cutouts(context, photo.parent) / 2**20
    return answer


def peak_resident_bytes() -> int:
    """This process's largest resident set so far (``VmHWM``), 0 where /proc is absent."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def sized_context(settings: Any, config: Config, segmenter: Any) -> Any:
    """An inference process's context with ``segmenter`` for u2netp, warmed up as the service
    warms its processes (u2netp run in the warm-up only when it keeps an arena)."""
    import dataclasses

    from faceflow.runtime.context import load_context, warm_up

    settings = settings.model_copy(
        update={"models": settings.models.model_copy(update={"segmenter_arena": config.arena})}
    )
    context = load_context(settings.model_dump_json())
    models = dataclasses.replace(context.models, portrait_segmenter=segmenter)
    context = dataclasses.replace(context, models=models)
    warm_up(context)
    return context


def sized_cutouts(context: Any, testdata: Path) -> int:
    """RSS after :data:`SIZED_CUTOUTS` matte tasks on portraits at varied sizes, each followed by
    the worker's heap trimming."""
    import cv2
    import numpy as np

    from faceflow.imaging.ingest import decode_image
    from faceflow.runtime.heap import HeapKeeper, resident_bytes
    from faceflow.runtime.idphoto_tasks import MatteRequest, matte_task

    generator = np.random.default_rng(13)
    limits = context.settings.limits
    sources = [
        cv2.cvtColor(decode_image((testdata / name).read_bytes(), limits).rgb, cv2.COLOR_RGB2BGR)
        for name in PORTRAITS
    ]
    keeper = HeapKeeper()
    for number in range(SIZED_CUTOUTS):
        source = sources[number % len(sources)]
        long_side = int(generator.integers(320, 3000))
        scale = long_side / max(source.shape[:2])
        size = (round(source.shape[1] * scale), round(source.shape[0] * scale))
        sized = cv2.resize(source, size, interpolation=cv2.INTER_CUBIC)
        ok, jpeg = cv2.imencode(".jpg", sized, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        matte_task(context, MatteRequest(jpeg.tobytes()))
        keeper.after_task()
        if (number + 1) % 50 == 0:
            print(f"{number + 1} cut-outs: RSS {resident_bytes() / 2**20:.0f} MB", file=sys.stderr)
    return resident_bytes()


def run_child(config: Config, runs: int, photo: Path, sizes: bool, cpu: int) -> dict[str, Any]:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    env.pop("GLIBC_TUNABLES", None)
    if config.tunables:
        env["GLIBC_TUNABLES"] = config.tunables
    command = [sys.executable, __file__, "--child", config.name, "--runs", str(runs)]
    command += ["--photo", str(photo)] + (["--sizes"] if sizes else [])
    done = subprocess.run(
        ["taskset", "-c", str(cpu), *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=3000,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{config.name} failed:\n{done.stderr[-3000:]}")
    if sizes:
        print(done.stderr.strip()[-400:], file=sys.stderr)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="rounds, each running every configuration in a fresh process (default: %(default)s)",
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs per process")
    parser.add_argument(
        "--configs",
        nargs="+",
        default=["faceflow", "rembg"],
        choices=CONFIGS,
        help="configurations run in turn, one or more; CONFIGS in this script says what each "
        "is (default: %(default)s)",
    )
    parser.add_argument(
        "--photo",
        type=Path,
        default=DEFAULT_PHOTO,
        help="the photo made into u2netp's input for the timed runs; --sizes takes the "
        "portraits from its folder (default: %(default)s)",
    )
    parser.add_argument("--sizes", action="store_true", help="RSS after 200 varied cut-outs")
    parser.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        answer = child(CONFIGS[args.child], args.runs, args.photo, args.sizes)
        print(json.dumps(answer))
        return
    cpu = max(os.sched_getaffinity(0))
    load_before = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in args.configs}
    for number in range(args.rounds):
        for name in args.configs:
            result = run_child(CONFIGS[name], args.runs, args.photo, args.sizes, cpu)
            results[name].append(result)
            cpu_ms = [u + s for u, s in zip(result["user"], result["system"], strict=True)]
            print(
                f"round {number + 1} {name}: CPU ms {' '.join(f'{v:.0f}' for v in cpu_ms)}",
                file=sys.stderr,
            )
    load_after = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"{started}; CPU {cpu}; {args.rounds} rounds × {args.runs} runs; load average before "
        f"{load_before}, after {load_after}; photo {args.photo.name}"
    )
    header = (
        "| config | CPU ms min / median | user | system | minor faults/run | RSS loaded → after"
        " | peak RSS"
    )
    print(header + (" | RSS warmed up → after 200 cut-outs |" if args.sizes else " |"))
    print("|---" * (8 if args.sizes else 7) + "|")
    for name, rounds in results.items():
        user = [v for r in rounds for v in r["user"]]
        system = [v for r in rounds for v in r["system"]]
        total = [u + s for u, s in zip(user, system, strict=True)]
        faults = [v for r in rounds for v in r["faults"]]
        loaded = statistics.median(r["loaded_mb"] for r in rounds)
        rss = statistics.median(r["rss_mb"] for r in rounds)
        peak = statistics.median(r["peak_mb"] for r in rounds)
        row = (
            f"| {name} ({CONFIGS[name].about}) | {min(total):.0f} / {statistics.median(total):.0f}"
            f" | {statistics.median(user):.0f} | {statistics.median(system):.0f}"
            f" | {statistics.median(faults):.0f} | {loaded:.0f} → {rss:.0f} MB | {peak:.0f} MB"
        )
        if args.sizes:
            warm = statistics.median(r["warm_mb"] for r in rounds)
            sized = statistics.median(r["rss_sized_mb"] for r in rounds)
            row += f" | {warm:.0f} → {sized:.0f} MB"
        print(row + " |")


if __name__ == "__main__":
    main()
