#!/usr/bin/env python3
"""Observability: what the spans and log events cost a save, with OpenTelemetry absent, present without an SDK,
and recording through the SDK.

    python benchmarks/tracing.py                  # 3,000 saves per store and mode (a few minutes)
    python benchmarks/tracing.py --quick          # 600
    python benchmarks/tracing.py --out section.md # also write the results as a Markdown section

Each mode runs in its own interpreter: `absent` blocks `import opentelemetry` (as if the `otel` extra were not
installed), `api` imports the API with no tracer provider set (the no-op default a library sees when the program
configured nothing), `sdk` sets an SDK TracerProvider with a SimpleSpanProcessor into an InMemorySpanExporter
(tracing on, nothing sent over a network). In each, one session's checkpoints are committed alternately through
`Chain.commit` (the traced save: span `safepoint.save`, its attributes and a DEBUG log event, the logger
disabled as by default) and `Chain._commit` (the same commit without any of it), in pairs in random order, on a memory:// store (the
fastest save, so the largest relative cost) and on a directory store (fsync'd, the usual case). The overhead is
measured apart, as the medians of two noisy saves differ by more than it: `Chain.commit` timed around a
`_commit` that returns at once, less that `_commit` alone; its share is of the median untraced save. Also: the
time of one empty `tracing.span()` block.
Target: with OpenTelemetry absent or present without an SDK, the instrumentation adds at most 2% to a save on
the memory store and 0.5% on the directory store.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if sys.argv[1:3] == ["--child", "absent"]:  # before anything imports safepoint: as if the package were absent
    sys.modules["opentelemetry"] = None  # type: ignore[assignment]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    KIB,
    Report,
    Section,
    choose_tmp_base,
    describe_machine,
    markdown,
    median,
    parser,
    print_report,
    write_out,
)
from workloads import Mutator, Words, make_agent_state  # noqa: E402

MODES = ("absent", "api", "sdk")
TARGETS = {"memory": 0.02, "file": 0.005}


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.2f} us" if abs(seconds) < 1e-4 else f"{seconds * 1e6:,.0f} us"


def instrumentation(chain: Any, saved: Any, count: int) -> float:
    """Seconds `Chain.commit` adds around `Chain._commit`: the commit itself replaced by one returning a saved
    checkpoint at once, the wrapper timed against calling that replacement directly (best of 5)."""
    chain._commit = lambda doc, **fields: saved
    fields = dict(seq=1, parent=None, step="step", status=saved.checkpoint.status, schema_version=1, meta={})
    doc = {"state": {}, "runtime": {}}

    def loop(commit: Any) -> float:
        start = time.perf_counter()
        for _ in range(count):
            commit(doc, **fields, previous=None)
        return time.perf_counter() - start

    wrapped = min(loop(chain.commit) for _ in range(5))
    bare = min(loop(chain._commit) for _ in range(5))
    del chain._commit
    return (wrapped - bare) / count


def child(mode: str, root: Path, saves: int) -> dict[str, Any]:
    """Measure in this interpreter, with OpenTelemetry set up as `mode` says (run via `--child`)."""
    if mode == "sdk":
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
    import safepoint as sp
    from safepoint.core import tracing
    from safepoint.core.history import Chain

    assert (tracing._trace is None) == (mode == "absent")
    results: dict[str, Any] = {"mode": mode}
    for kind, url in (("memory", "memory://bench"), ("file", str(root / f"store-{mode}"))):
        store = sp.open(url).store
        chain = Chain(store, "bench")
        chain.create("bench", [], None)
        words = Words(random.Random(7))
        state = make_agent_state(1 * KIB, words)
        mutate = Mutator(state, words)
        previous, seq = None, 0
        order = random.Random(11)
        traced: list[float] = []
        untraced: list[float] = []
        gc.collect()
        for i in range(2 * saves):
            mutate.change_values(3)
            seq += 1
            fields = dict(seq=seq, parent=seq - 1 or None, step="step", status=sp.Status.RUNNING)
            if i % 2 == 0:  # in pairs, in random order: keyframes (every 32nd save) fall on either side
                pair = [chain.commit, chain._commit] if order.random() < 0.5 else [chain._commit, chain.commit]
            commit = pair[i % 2]
            start = time.perf_counter()
            previous = commit({"state": state, "runtime": {}}, **fields, schema_version=1, meta={}, previous=previous)
            took = time.perf_counter() - start
            (traced if commit == chain.commit else untraced).append(took)
        results[kind] = {
            "traced": median(traced),
            "untraced": median(untraced),
            "overhead": instrumentation(chain, previous, 5_000 if mode == "sdk" else 50_000),
        }
        if hasattr(store, "close"):
            store.close()
    count = 200_000
    attributes = {"safepoint.session.id": "bench", "safepoint.seq": 1}
    start = time.perf_counter()
    for _ in range(count):
        with tracing.span("safepoint.bench", attributes):
            pass
    results["span"] = (time.perf_counter() - start) / count
    return results


def main() -> int:
    options = parser(
        __doc__ or "",
        quick="600 saves per store and mode instead of 3,000",
        out="also write the results as a Markdown section to FILE",
        tmp_dir=True,
        strict="exit 1 when a target is missed",
    )
    options.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    options.add_argument("--root", help=argparse.SUPPRESS)
    options.add_argument("--saves", type=int, help=argparse.SUPPRESS)
    args = options.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(args.root), args.saves)))
        return 0
    saves = 600 if args.quick else 3000
    base = choose_tmp_base(args.tmp_dir)
    root = Path(tempfile.mkdtemp(prefix="tracing-", dir=base))
    header = describe_machine(root, packages=["opentelemetry-api", "opentelemetry-sdk"])
    started = time.perf_counter()
    try:
        measured = {}
        for mode in MODES:
            run = subprocess.run(
                [sys.executable, __file__, "--child", mode, "--root", str(root), "--saves", str(saves)],
                stdout=subprocess.PIPE,
                text=True,
                check=True,
            )
            measured[mode] = json.loads(run.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report = Report()
    section = Section(
        "What the instrumentation adds to a save",
        [
            "OpenTelemetry",
            "store",
            "untraced save (median)",
            "traced save (median)",
            "instrumentation",
            "share",
            "result",
        ],
    )
    for mode in MODES:
        for kind in ("memory", "file"):
            found = measured[mode][kind]
            share = found["overhead"] / found["untraced"]
            result = ""
            if mode != "sdk":
                result = report.check(
                    f"{kind} store, OpenTelemetry {mode}: overhead of a save",
                    share,
                    TARGETS[kind],
                    lambda x: f"{x * 100:.2f}%",
                )
            label = {"absent": "absent", "api": "API, no SDK", "sdk": "SDK recording"}[mode]
            section.rows.append(
                [label, kind, us(found["untraced"]), us(found["traced"]), us(found["overhead"]), f"{share:.2%}", result]
            )
    spans = Section("One empty `tracing.span()` block", ["OpenTelemetry", "time per span"])
    spans.rows = [[mode, us(measured[mode]["span"])] for mode in MODES]
    section.notes.append(
        f"{saves} saves of each kind per store and mode, a 1 KiB agent-like state with a few values changed per "
        "save (mostly deltas); untraced: `Chain._commit`, traced: `Chain.commit` around it (span `safepoint.save`, "
        "its attributes, a DEBUG log event with the logger off)."
    )
    report.sections += [section, spans]
    print_report(report, header)
    elapsed = time.perf_counter() - started
    text = markdown(report, header, args.quick, elapsed).replace("## Results,", "## Tracing and logs: the cost,", 1)
    write_out(text, args.out)
    return 1 if args.strict and not all(c.passed for c in report.checks) else 0


if __name__ == "__main__":
    raise SystemExit(main())
