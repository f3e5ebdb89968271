#!/usr/bin/env python3
"""Encryption at rest: an encrypted save against an unencrypted one, on the file and the SQLite store.

    python benchmarks/security.py                  # 200 saves per case (a few minutes)
    python benchmarks/security.py --quick          # 40 saves per case
    python benchmarks/security.py --out section.md # also write the results as a Markdown section

Cases: a 1 KiB and a 64 KiB agent-like state (`workloads.make_agent_state`, seeded), saved as the first
checkpoint of a new session (a keyframe: the whole state is encoded, checked, scanned for credentials,
sealed, encrypted and written durably), and in steady state (about 1% of the state changed per save, mostly
deltas). Each case has a plain store and an encrypted one (`sp.open(url, key=...)`) side by side in the same
directory; their saves alternate, one of each in turn (the order swapped every other pair), so a drift of the
disk or of the machine's load falls on both. Target: the median encrypted save at most 1.2x the median plain
save. Also shown: the median of the per-pair ratios, and CPU time per save (`time.process_time`, which leaves
out waiting for the disk: what encryption adds is CPU).
"""

from __future__ import annotations

import gc
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    KIB,
    Report,
    Section,
    choose_tmp_base,
    console,
    describe_machine,
    markdown,
    median,
    ms,
    p90,
    parser,
    print_report,
    ratio,
    write_out,
)
from workloads import Mutator, Words, make_agent_state  # noqa: E402

import safepoint as sp  # noqa: E402
from safepoint.core import codec  # noqa: E402

TARGET = 1.2
SIZES = (1 * KIB, 64 * KIB)
KINDS = ("file", "sqlite")


def url_of(kind: str, root: Path, name: str) -> str:
    return str(root / name) if kind == "file" else f"sqlite:///{root / (name + '.db')}"


def first_saves(repos: dict[str, sp.Repository], states: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    """Each state saved as the first checkpoint of a new session in each store, alternating the stores."""
    wall: dict[str, list[float]] = {name: [] for name in repos}
    cpu: dict[str, list[float]] = {name: [] for name in repos}
    pairs: list[float] = []
    gc.collect()
    for i, state in enumerate(states):
        order = list(repos) if i % 2 == 0 else list(reversed(repos))
        took: dict[str, float] = {}
        for name in order:
            session = repos[name].session(f"first-{i}", schema=dict)
            session.state.update(state)
            c0, t0 = time.process_time(), time.perf_counter()
            session.save(step="first")
            t1, c1 = time.perf_counter(), time.process_time()
            session.close()
            if i >= warmup:
                wall[name].append(t1 - t0)
                cpu[name].append(c1 - c0)
                took[name] = t1 - t0
        if took:
            pairs.append(took["encrypted"] / took["plain"])
    return {"wall": wall, "cpu": cpu, "pairs": pairs}


def steady_saves(
    repos: dict[str, sp.Repository], state: dict[str, Any], words: Words, count: int, warmup: int
) -> dict[str, Any]:
    """One session per store; before each save ~1% of the state's bytes change, the same change in both."""
    wall: dict[str, list[float]] = {name: [] for name in repos}
    cpu: dict[str, list[float]] = {name: [] for name in repos}
    pairs: list[float] = []
    sessions = {name: repo.session("steady", schema=dict) for name, repo in repos.items()}
    mutator = Mutator(state, words)
    try:
        for session in sessions.values():
            session.state.update(state)
            session.save(step="start")
        for i in range(count + warmup):
            mutator.change_bytes(max(1, len(codec.dumps(state)) // 100))
            order = list(sessions) if i % 2 == 0 else list(reversed(sessions))
            took: dict[str, float] = {}
            for name in order:
                session = sessions[name]
                session.state.clear()
                session.state.update(codec.loads(codec.dumps(state)))
                c0, t0 = time.process_time(), time.perf_counter()
                session.save(step=f"step-{i}")
                t1, c1 = time.perf_counter(), time.process_time()
                if i >= warmup:
                    wall[name].append(t1 - t0)
                    cpu[name].append(c1 - c0)
                    took[name] = t1 - t0
            if took:
                pairs.append(took["encrypted"] / took["plain"])
    finally:
        for session in sessions.values():
            session.close()
    return {"wall": wall, "cpu": cpu, "pairs": pairs}


def main() -> int:
    options = parser(
        __doc__,
        quick="40 saves per case instead of 200",
        out="also write the results as a Markdown section to this file",
        tmp_dir=True,
        strict="exit 1 when a target is missed",
    )
    args = options.parse_args()
    started = time.monotonic()
    count, warmup = (40, 5) if args.quick else (200, 5)
    base = choose_tmp_base(args.tmp_dir)
    key = os.urandom(32)
    report = Report()
    section = Section(
        "Encrypted against plain saves",
        [
            "case",
            "store",
            "state",
            "plain median",
            "encrypted median",
            "plain p90",
            "encrypted p90",
            "ratio of medians",
            "median pair ratio",
            "CPU per save: plain / encrypted",
            "target",
            "result",
        ],
    )
    for kind in KINDS:
        for size in SIZES:
            rng = random.Random(16 + size)
            words = Words(rng)
            root = Path(tempfile.mkdtemp(prefix="safepoint-security-", dir=base))
            try:
                repos = {
                    "plain": sp.open(url_of(kind, root, "plain")),
                    "encrypted": sp.open(url_of(kind, root, "encrypted"), key=key),
                }
                states = [make_agent_state(size, words) for _ in range(count + warmup)]
                console.print(f"{kind} {size // KIB} KiB: first saves", markup=False)
                first = first_saves(repos, states, warmup)
                console.print(f"{kind} {size // KIB} KiB: steady state", markup=False)
                steady = steady_saves(repos, make_agent_state(size, words), words, count, warmup)
                for repo in repos.values():
                    repo.close()
            finally:
                shutil.rmtree(root, ignore_errors=True)
            for case, result in (("first checkpoint", first), ("steady state", steady)):
                plain, enc = result["wall"]["plain"], result["wall"]["encrypted"]
                value = median(enc) / median(plain)
                verdict = ""
                if case == "first checkpoint":
                    verdict = report.check(
                        f"{case}, {kind} store, {size // KIB} KiB: encrypted/plain", value, TARGET, ratio
                    )
                section.rows.append(
                    [
                        case,
                        kind,
                        f"{size // KIB} KiB",
                        ms(median(plain)),
                        ms(median(enc)),
                        ms(p90(plain)),
                        ms(p90(enc)),
                        ratio(value),
                        ratio(median(result["pairs"])),
                        f"{ms(median(result['cpu']['plain']))} / {ms(median(result['cpu']['encrypted']))}",
                        f"<= {ratio(TARGET)}" if verdict else "(none)",
                        verdict,
                    ]
                )
    section.notes += [
        f"Median and p90 of {count} saves after {warmup} untimed warm-up saves per case and store. First "
        "checkpoint: each save is seq 1 of a new session (`schema=dict`), so the whole state is a keyframe; the "
        "session is opened (and its lease taken) outside the timing. Steady state: one session per store; before "
        "each save random string leaves (about 1% of the state's bytes) are replaced, the same change in both.",
        "Plain and encrypted stores run with the defaults (redaction of known credential formats on); the "
        "encrypted one adds AES-256-GCM of every value written (the commit record and any new objects), the "
        "keyed names of new objects and the lease fence looked up from the last ciphertext written.",
        "Median pair ratio: the median over each pair of saves (one plain, one encrypted, back to back) of "
        "encrypted/plain, less sensitive to the disk's speed drifting during the run.",
    ]
    report.sections.append(section)
    header = describe_machine(base, packages=("cryptography",))
    print_report(report, header)
    elapsed = time.monotonic() - started
    text = markdown(report, header, args.quick, elapsed).replace("## Results,", "## Security: encryption at rest,", 1)
    write_out(text, args.out)
    return 1 if args.strict and not all(c.passed for c in report.checks) else 0


if __name__ == "__main__":
    sys.exit(main())
