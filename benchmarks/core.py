#!/usr/bin/env python3
"""Core benchmarks of safepoint: save latency against the raw durable-write floor, bytes stored, scaling.

    python benchmarks/core.py                  # the full run (a few minutes)
    python benchmarks/core.py --quick          # a smoke test with smaller counts (under a minute)
    python benchmarks/core.py --out section.md # also write the results as a Markdown section
    python benchmarks/core.py --strict         # exit with status 1 when a target is missed

Four workloads, each checked against a target (PASS/FAIL):

1. Durable save of a 1 KiB and a 64 KiB dict state as the FIRST checkpoint of a fresh session (a keyframe),
   for the file store and the SQLite store, against the raw floor of writing the same canonical bytes
   durably (file: temp + fsync + rename + directory fsync; SQLite: one WAL/synchronous=FULL insert
   transaction). Also steady-state saves (~1% of the state changed per save). Target: store/raw <= 1.5.
2. A 1,000-step conversation gaining one ~500-byte message per step: bytes stored after 200 and 1,000 steps
   against the state's JSON size. Target: <= 3x.
3. Scaling with history length: save latency at step ~1,000 against step ~10, and head load time after
   10,000 checkpoints against 10, with a fixed-size (~64 KiB) state. Target: ratio <= 1.3.
4. A 16 MiB state with one 1 KiB change per save: bytes written per save (target: median <= 256 KiB) and save
   time against a full durable write of the state (target: median <= 0.3x).

Stores live in a temporary directory on the same filesystem as the working directory (never a tmpfs) and
are removed afterwards. The workloads are seeded: every run saves the same states.

Each workload is a module of its own: `core_saves.py`, `core_chat.py`, `core_scaling.py` and `core_big.py`,
with their counts in `core_settings.py`; the helpers they share with the other benchmark scripts are in
`common.py` and `workloads.py`.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import Report, choose_tmp_base, console, describe_machine, markdown, parser, print_report, write_out
from core_big import section_big
from core_chat import section_chat
from core_saves import section_saves
from core_scaling import section_scaling
from core_settings import FULL, QUICK
from workloads import FSYNC

SECTIONS = {"saves": section_saves, "chat": section_chat, "scaling": section_scaling, "big": section_big}


def main(argv: list[str] | None = None) -> int:
    options = parser(
        __doc__,
        quick="smaller counts: a smoke test of about a minute",
        out="write the results as a Markdown section to FILE",
        tmp_dir=True,
        strict="exit with status 1 when a target is missed",
    )
    options.add_argument("--only", choices=sorted(SECTIONS), action="append", help="run only these workloads")
    args = options.parse_args(argv)
    settings = QUICK if args.quick else FULL
    FSYNC.install()
    base = choose_tmp_base(args.tmp_dir)
    tmp = Path(tempfile.mkdtemp(prefix="safepoint-bench-", dir=base))
    header = describe_machine(tmp)
    for line in header:
        console.print(line, markup=False, highlight=False)
    report = Report()
    started = time.perf_counter()
    try:
        for name, run in SECTIONS.items():
            if args.only and name not in args.only:
                continue
            t0 = time.perf_counter()
            console.print(f"[bold]{name}[/] ...")
            run(settings, tmp, report)
            console.print(f"  ({time.perf_counter() - t0:.0f} s)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.perf_counter() - started
    print_report(report, header)
    if args.out:
        write_out(markdown(report, header, settings.quick, elapsed), args.out)
    return 1 if args.strict and not all(c.passed for c in report.checks) else 0


if __name__ == "__main__":
    sys.exit(main())
