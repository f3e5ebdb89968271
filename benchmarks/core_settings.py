"""The settings of `benchmarks/core.py`: the counts of a full run and of a `--quick` one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    quick: bool
    first_saves: int  # timed first-checkpoint saves per (store, size)
    steady_saves: int  # timed steady-state saves per (store, size)
    warmup: int  # untimed iterations before each timed loop
    chat_steps: tuple[int, ...]  # steps at which the chat's storage is measured (the last is the length)
    latency_early: tuple[int, int]  # inclusive window of steps for "early" save latency
    latency_late: tuple[int, int]  # inclusive window of steps for "late" save latency
    long_history: int  # checkpoints before the "long history" head load
    short_history: int  # checkpoints before the "short history" head load
    loads: int  # head loads per measurement
    ab_loads: int  # loads per side in the side-by-side diagnostic
    big_docs: int  # documents in the big state (16,384 x ~1 KiB = ~16 MiB)
    big_saves: int  # 1 KiB-change saves of the big state
    big_full_writes: int  # raw full durable writes of the big state


FULL = Settings(
    quick=False,
    first_saves=200,
    steady_saves=200,
    warmup=5,
    chat_steps=(200, 1000),
    latency_early=(5, 15),
    latency_late=(995, 1005),
    long_history=10_000,
    short_history=10,
    loads=20,
    ab_loads=100,
    big_docs=16 * 1024,
    big_saves=64,
    big_full_writes=5,
)

QUICK = Settings(
    quick=True,
    first_saves=20,
    steady_saves=20,
    warmup=2,
    chat_steps=(50, 200),
    latency_early=(5, 15),
    latency_late=(95, 105),
    long_history=300,
    short_history=10,
    loads=10,
    ab_loads=20,
    big_docs=2 * 1024,
    big_saves=8,
    big_full_writes=3,
)
