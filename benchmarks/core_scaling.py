"""Core benchmark 3: save latency and head load time as the history grows, with a fixed-size state."""

from __future__ import annotations

import gc
import random
import shutil
import tempfile
import time
from pathlib import Path

from common import KIB, Report, Section, console, median, ms, p90, ratio, timed
from core_settings import Settings
from workloads import Bench, Mutator, Words, make_agent_state

import safepoint as sp
from safepoint.core import codec
from safepoint.core.history import KEYFRAME_EVERY


def _keyframe_of(repo: sp.Repository, session_id: str, seq: int) -> int:
    """The seq of the keyframe a checkpoint is built on."""
    while not repo.load(session_id, seq).keyframe:
        seq -= 1
    return seq


def section_scaling(settings: Settings, tmp: Path, report: Report) -> None:
    early, late = settings.latency_early, settings.latency_late
    short_n, long_n = settings.short_history, settings.long_history
    # Head loads are timed at every head over one whole keyframe cycle from each point: the cost of a load
    # depends on how many deltas follow its keyframe (0 to KEYFRAME_EVERY - 1), i.e. on the head's position in
    # its cycle, which differs between step 10 and step 10,000 by accident of arithmetic, not history length.
    cycle = KEYFRAME_EVERY
    total = max(settings.long_history + cycle, late[1])
    section = Section(
        "3. Scaling with history length (fixed-size ~64 KiB state, a few values changed per step)",
        ["store", "measure", "short history", "long history", "ratio", "target", "result"],
    )
    details: list[list[str]] = []
    for kind in ("sqlite", "file"):
        words = Words(random.Random(3))
        bench = Bench(kind, Path(tempfile.mkdtemp(prefix=f"scale-{kind}-", dir=tmp)))
        repo = bench.repo
        started = time.perf_counter()
        try:
            session = bench.session("long")
            session.state.update(make_agent_state(64 * KIB, words))
            mutator = Mutator(session.state, words)
            latency: dict[int, float] = {}
            cpu: dict[int, float] = {}
            keyframe_steps: list[int] = []
            head_loads: dict[int, list[float]] = {short_n: [], long_n: []}
            per_head = max(3, settings.loads // 4)
            gc.collect()
            for step in range(1, total + 1):
                if step > 1:
                    mutator.change_values(3)
                start, start_cpu = time.perf_counter(), time.process_time()
                checkpoint = session.save(step=f"step-{step}")
                latency[step] = time.perf_counter() - start
                cpu[step] = time.process_time() - start_cpu
                if checkpoint.keyframe:
                    keyframe_steps.append(step)
                for window in (short_n, long_n):
                    if window <= step < window + cycle:
                        head_loads[window] += [timed(repo.load, "long") for _ in range(per_head)]
                if step % 2000 == 0:
                    console.print(f"    {kind}: {step:,} checkpoints, {time.perf_counter() - started:.0f} s")
            size_state = len(codec.dumps(session.state))
            chains = {n: n - _keyframe_of(repo, "long", n) for n in (short_n, long_n)}

            # Control, side by side: a new session in the same store saves and loads alternately with the long one,
            # so both see the same disk and CPU contention.
            fresh = bench.session("fresh")
            fresh.state.update(make_agent_state(64 * KIB, words))
            fresh_mutator = Mutator(fresh.state, words)
            ab_fresh: list[float] = []
            ab_long: list[float] = []
            ab_loads: dict[str, list[float]] = {"fresh": [], "long": [], "fresh_seq": [], "long_seq": []}
            for i in range(1, early[1] + 1):
                if i > 1:
                    fresh_mutator.change_values(3)
                mutator.change_values(3)
                pair = (timed(fresh.save, step="fresh"), timed(session.save, step="long"))
                if i >= early[0]:
                    ab_fresh.append(pair[0])
                    ab_long.append(pair[1])
                if i == short_n:
                    long_head = repo.load("long").seq
                    long_keyframe = _keyframe_of(repo, "long", long_head)
                    same_chain = long_keyframe + chains[short_n]
                    if same_chain > long_head:
                        same_chain = _keyframe_of(repo, "long", long_keyframe - 1) + chains[short_n]
                    for _ in range(settings.ab_loads):
                        ab_loads["fresh"].append(timed(repo.load, "fresh"))
                        ab_loads["long"].append(timed(repo.load, "long"))
                        ab_loads["fresh_seq"].append(timed(repo.load, "fresh", short_n))
                        ab_loads["long_seq"].append(timed(repo.load, "long", same_chain))
                    ab_chain = long_head - long_keyframe
        finally:
            bench.close()
            shutil.rmtree(bench.root)
        early_steps = range(early[0], early[1] + 1)
        late_steps = range(late[0], late[1] + 1)
        e = [latency[s] for s in early_steps]
        lt = [latency[s] for s in late_steps]
        r = median(lt) / median(e)
        status = report.check(
            f"save latency, {kind} store, step ~{late[0] + 5:,} / step ~{early[0] + 5}", r, 1.3, ratio
        )
        rows = section.rows
        rows.append(
            [
                kind,
                f"save latency (median of saves {early[0]}-{early[1]} vs {late[0]:,}-{late[1]:,})",
                ms(median(e)),
                ms(median(lt)),
                ratio(r),
                "<= 1.30x",
                status,
            ]
        )
        e_cpu, l_cpu = [cpu[s] for s in early_steps], [cpu[s] for s in late_steps]
        rows.append(
            [
                kind,
                "- the same saves in CPU time (`time.process_time`: no waiting for the disk or for a CPU)",
                ms(median(e_cpu)),
                ms(median(l_cpu)),
                ratio(median(l_cpu) / median(e_cpu)),
                "(diagnostic)",
                "",
            ]
        )
        rows.append(
            [
                kind,
                f"- side by side: saves {early[0]}-{early[1]} of a new session vs saves {total + early[0]:,}-"
                f"{total + early[1]:,} of the long one, alternating, same store",
                ms(median(ab_fresh)),
                ms(median(ab_long)),
                ratio(median(ab_long) / median(ab_fresh)),
                "(diagnostic)",
                "",
            ]
        )
        short_loads, long_loads = head_loads[short_n], head_loads[long_n]
        r = median(long_loads) / median(short_loads)
        status = report.check(f"head load, {kind} store, {long_n:,} / {short_n} checkpoints", r, 1.3, ratio)
        rows.append(
            [
                kind,
                f"head load `store.load(id)`, median over every head of one keyframe cycle ({cycle} heads x "
                f"{per_head} loads) from {short_n} vs from {long_n:,} checkpoints",
                ms(median(short_loads)),
                ms(median(long_loads)),
                ratio(r),
                "<= 1.30x",
                status,
            ]
        )
        rows.append(
            [
                kind,
                f"- side by side: head of the new session ({short_n} checkpoints, {chains[short_n]} deltas) vs head "
                f"of the long one ({total + short_n:,} checkpoints, {ab_chain} deltas), alternating",
                ms(median(ab_loads["fresh"])),
                ms(median(ab_loads["long"])),
                ratio(median(ab_loads["long"]) / median(ab_loads["fresh"])),
                "(diagnostic)",
                "",
            ]
        )
        rows.append(
            [
                kind,
                f"- side by side, same chain length: `store.load(id, seq)` of seq {short_n} of the new session vs "
                f"seq {same_chain:,} of the long one (both {chains[short_n]} deltas after their keyframe)",
                ms(median(ab_loads["fresh_seq"])),
                ms(median(ab_loads["long_seq"])),
                ratio(median(ab_loads["long_seq"]) / median(ab_loads["fresh_seq"])),
                "(diagnostic)",
                "",
            ]
        )
        kf_early = sum(s in early_steps for s in keyframe_steps)
        kf_late = sum(s in late_steps for s in keyframe_steps)
        details.append(
            [
                kind,
                f"{size_state:,} B",
                f"{len(keyframe_steps):,} of {total:,}",
                f"{kf_early} / {kf_late}",
                f"{ms(p90(e))} / {ms(p90(lt))}",
                f"{ms(p90(short_loads))} / {ms(p90(long_loads))}",
                f"{time.perf_counter() - started:.0f} s",
            ]
        )
        console.print(
            f"  scaling {kind}: latency {ms(median(e))} -> {ms(median(lt))}, "
            f"load {ms(median(short_loads))} -> {ms(median(long_loads))}"
        )
    section.notes += [
        f"One session per store, `schema=dict`, a ~64 KiB agent-like state; every step replaces 3 random string "
        f"values with new text of the same length (the state keeps its size) and saves. {total:,} checkpoints "
        f"per store. Head loads are timed during the run, right after checkpoint {short_n} and checkpoint "
        f"{long_n:,}; each is a full `store.load(id)` (find the head, read its keyframe's tree and the deltas "
        "after it, verify checksums). The rows marked (diagnostic) carry no target.",
        "The short and long windows are measured minutes apart, so on a shared machine they also differ in the "
        "other processes' disk and CPU traffic. The side-by-side rows remove that: after the long run, a new "
        "session in the same store saves and loads alternately with the long one (loads: median of "
        f"{settings.ab_loads} each).",
        "A load reads a keyframe and the deltas after it, so its cost also depends on where the checkpoint falls in "
        "its keyframe cycle (at most 31 deltas), not only on the history's length; the same-chain-length row "
        "separates the two.",
    ]
    section.extra_tables.append(
        (
            "Details (short / long history)",
            [
                "store",
                "state",
                "keyframes",
                "keyframes in the latency windows",
                "save p90",
                "head load p90",
                "run time",
            ],
            details,
        )
    )
    report.sections.append(section)
