"""The corruption trials of the store suite: damage a store's raw data at random, then ask what a user would.

A workload of several sessions (one a fork, long enough to be packed where the store packs) with artifacts is
written once and read back as the truth. Each trial then damages one stored value behind the store's back
(a flipped byte, a truncation, a deletion, or a stray key beside the commits), opens the store again, runs
fsck and reads everything: the session list, every history, every checkpoint, every artifact, and the last
good checkpoint fsck names. Then the raw data is put back as it was for the next trial.

A trial is
- *detected* when fsck reports a problem (reads may fail with a typed error meanwhile, never return wrong data);
- *harmless* when fsck finds nothing and every read gives back the truth;
- *wrong* when a read returns data that is not the truth (a checkpoint, an artifact, a last good checkpoint
  that does not load), or something changed (a list, a head) with neither an error nor an fsck report;
- a *crash* when fsck raises or reports an unexpected error, or a read raises anything but a SafepointError.

`missed` counts the trials where a read failed with a typed error though fsck said ok (not wrong, but worth
knowing). Wrong and crash must stay 0.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core.fsck import UNEXPECTED
from ..core.history import Chain
from ..errors import SafepointError
from ..repository import Repository
from ..stores.base import Store

#: Trials per backend; the damage of trial i is drawn from random.Random(SEED + i).
TRIALS = 200
SEED = 19
#: How often a trial adds a stray key instead of damaging an existing one.
STRAY_SHARE = 0.05
_KEY_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._~-/"


class TrialCounts(UserWarning):
    """The counts of a backend's corruption trials, shown in pytest's warnings summary."""


RawItems = Callable[[], dict[str, bytes]]
RawPut = Callable[[str, bytes], None]
RawDelete = Callable[[str], None]


@dataclass
class Truth:
    """What the workload wrote, as read back right after: the reference every trial is judged against."""

    heads: dict[str, int]
    checkpoints: dict[tuple[str, int], tuple[Any, Any]]  # (session, seq) -> (state, runtime)
    artifacts: dict[str, bytes]  # ref -> bytes
    refs: dict[tuple[str, int], list[str]]  # (session, seq) -> the artifacts it references


@dataclass
class Tally:
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, outcome: str, detail: str = "") -> None:
        self.counts[outcome] += 1
        if detail and len(self.examples.setdefault(outcome, [])) < 5:
            self.examples[outcome].append(detail)

    def line(self, name: str) -> str:
        c = self.counts
        return (
            f"corruption trials on {name}: {sum(c.values())} trials, detected {c['detected']} / harmless "
            f"{c['harmless']} / wrong {c['wrong']} / crash {c['crash']} (typed read errors fsck did not report: "
            f"{c['missed']})"
        )


def write_workload(repo: Repository) -> Truth:
    """Three sessions: a long one (packed on packing stores) with two artifacts, a fork of it, and a short one
    with an artifact of its own; each state grows by a few KiB per save."""
    for session_id, count in {"long": 45, "short": 6}.items():
        with repo.session(session_id, schema=dict, agent="trial") as s:
            s.state.update(notes=[])
            for i in range(count):
                s.state["notes"].append(f"{session_id} note {i} " + "abcdefgh" * (200 + 37 * (i % 7)))
                if i in (1, 20):
                    s.put_artifact(f"{session_id}-{i}.bin", random.Random(i).randbytes(20_000 + i))
                s.save(step=f"step {i}")
    repo.fork("long", at=30, new_id="fork")
    with repo.session("fork", schema=dict) as s:
        for i in range(8):
            s.state["notes"].append(f"fork note {i} " + "ijkl" * 300)
            s.save(step=f"fork step {i}")
    return read_truth(repo)


def read_truth(repo: Repository) -> Truth:
    heads, checkpoints, refs, artifacts = {}, {}, {}, {}
    for info in repo.sessions():
        heads[info.id] = info.seq
        for cp in repo.history(info.id):
            loaded = repo.load(info.id, cp.seq)
            checkpoints[(info.id, cp.seq)] = (loaded.state, loaded.runtime)
            found = [item["ref"] for item in loaded.state.get("artifacts", [])]
            refs[(info.id, cp.seq)] = found
            for ref in found:
                if ref not in artifacts:
                    with repo.open_artifact(ref) as handle:
                        artifacts[ref] = handle.read()
    return Truth(heads, checkpoints, artifacts, refs)


def damage(rng: random.Random, raw: dict[str, bytes], put: RawPut, delete: RawDelete) -> str:
    """Damage one value at random (or add a stray key); return what was done, for the report."""
    if rng.random() < STRAY_SHARE:
        segment = rng.choice(sorted({k.split("/")[1] for k in raw if k.startswith("commits/")}))
        key = f"commits/{segment}/" + rng.choice(["junk", "00000000000x", "0000000000001", "README"])
        put(key, b"stray")
        return f"stray {key}"
    key = rng.choice(sorted(raw))
    value = raw[key]
    kind = rng.choice(["flip", "flip", "flip", "truncate", "delete", "rename"]) if value else "delete"
    if kind == "rename":  # a damaged name: the value moves to a key one character off
        at = rng.randrange(len(key))
        renamed = key[:at] + rng.choice(_KEY_CHARS.replace(key[at], "")) + key[at + 1 :]
        if "//" in renamed or renamed.startswith("/") or renamed.endswith("/") or "/." in renamed:
            renamed = key + "0"
        delete(key)
        put(renamed, value)
        return f"rename {key} to {renamed}"
    if kind == "flip":
        at = rng.randrange(len(value))
        put(key, value[:at] + bytes([value[at] ^ rng.randrange(1, 256)]) + value[at + 1 :])
        return f"flip {key} byte {at}"
    if kind == "truncate":
        size = rng.randrange(len(value))
        put(key, value[:size])
        return f"truncate {key} to {size} of {len(value)} bytes"
    delete(key)
    return f"delete {key}"


def restore(before: dict[str, bytes], now: dict[str, bytes], put: RawPut, delete: RawDelete) -> None:
    """Put the raw data back as it was (the damage, and whatever reads healed since, such as index entries)."""
    for key in now.keys() - before.keys():
        delete(key)
    for key, value in before.items():
        if now.get(key) != value:
            put(key, value)


def judge(store: Store, truth: Truth) -> tuple[str, str]:
    """Open the damaged store afresh, run fsck and read everything; (outcome, why)."""
    repo = Repository(store)
    try:
        report = repo.fsck()
    except Exception as exc:  # noqa: BLE001 - the point: fsck must never raise for damage
        return "crash", f"fsck raised {type(exc).__name__}: {exc}"
    unexpected = [f"{p.key}: {p.reason}" for p in report.problems if p.reason.startswith(UNEXPECTED)]
    if unexpected:
        return "crash", f"fsck: {unexpected[0]}"
    reads = _Reads(repo)
    wrong = reads.compare(truth)
    if reads.crash:
        return "crash", reads.crash
    if wrong:
        return "wrong", wrong
    for session_id, seq in report.last_good.items():
        if seq is not None and (why := _last_good_fails(repo, truth, session_id, seq)):
            return "wrong", f"fsck named {session_id}@{seq} the last good checkpoint, but {why}"
    if not report.ok:
        return "detected", f"{report.problems[0].key}: {report.problems[0].reason}"
    if reads.changed:
        return "wrong", f"silent change, fsck ok: {reads.changed}"
    if reads.errors:
        return "missed", reads.errors[0]
    return "harmless", ""


class _Reads:
    """Every read a user makes, each sorted into: as the truth, a typed error, changed, wrong or a crash."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.errors: list[str] = []
        self.changed = ""
        self.crash = ""

    def read(self, what: str, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except SafepointError as exc:
            self.errors.append(f"{what}: {type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 - an untyped error escaping a read is what the trial looks for
            self.crash = self.crash or f"{what} raised {type(exc).__name__}: {exc}"
        return None

    def compare(self, truth: Truth) -> str:
        listed = self.read("sessions()", lambda: {i.id: i.seq for i in self.repo.sessions() if not _marked(i)})
        if listed is not None and listed != truth.heads:
            self.changed = self.changed or f"sessions() gave {listed}, not {truth.heads}"
        for session_id, head in truth.heads.items():
            seqs = self.read(f"history {session_id}", lambda s=session_id: [c.seq for c in self.repo.history(s)])
            if seqs is not None and seqs != list(range(1, head + 1)):
                self.changed = self.changed or f"history of {session_id}: {seqs}"
            loaded = self.read(f"head of {session_id}", lambda s=session_id: self.repo.load(s))
            if loaded is not None and loaded.seq != head:
                self.changed = self.changed or f"head of {session_id} is {loaded.seq}, not {head}"
        for (session_id, seq), (state, runtime) in truth.checkpoints.items():
            found = self.read(f"{session_id}@{seq}", lambda s=session_id, n=seq: self.repo.load(s, n))
            if found is not None and (found.seq != seq or found.state != state or found.runtime != runtime):
                return f"load({session_id!r}, {seq}) returned other data"
        for ref, data in truth.artifacts.items():
            got = self.read(f"artifact {ref}", lambda r=ref: _read_artifact(self.repo, r))
            if got is not None and got != data:
                return f"artifact {ref} returned other bytes"
        return ""


def _marked(info: Any) -> bool:
    """A session the listing marks as damaged (shown, but not as the truth)."""
    return bool(getattr(info, "damaged", None))


def _read_artifact(repo: Repository, ref: str) -> bytes:
    with repo.open_artifact(ref) as handle:
        return handle.read()


def _last_good_fails(repo: Repository, truth: Truth, session_id: str, seq: int) -> str:
    """Why the checkpoint fsck names as last good does not load with all its artifacts ("" when it does)."""
    try:
        record, doc = Chain(repo.store, session_id).load(seq)
        if (session_id, seq) in truth.checkpoints and (doc["state"], doc.get("runtime", {})) != truth.checkpoints[
            (session_id, seq)
        ]:
            return "it loads other data"
        for ref in record.get("artifacts", []):
            if _read_artifact(repo, ref) != truth.artifacts.get(ref):
                return f"artifact {ref} reads other bytes"
    except SafepointError as exc:
        return f"it does not load: {exc}"
    return ""


def run_trials(
    store: Store,
    raw_items: RawItems,
    raw_put: RawPut,
    raw_delete: RawDelete,
    *,
    trials: int = TRIALS,
    seed: int = SEED,
    damage_one: Callable[[random.Random, dict[str, bytes]], str] | None = None,
) -> Tally:
    """Write the workload, then run `trials` seeded trials of damage, judgement and restore."""
    truth = write_workload(Repository(store))
    before = raw_items()
    tally = Tally()
    for trial in range(trials):
        rng = random.Random(seed + trial)
        if damage_one is None:
            what = damage(rng, before, raw_put, raw_delete)
        else:
            what = damage_one(rng, before)
        outcome, why = judge(store, truth)
        tally.add(outcome, f"trial {trial} ({what}): {why}")
        restore(before, raw_items(), raw_put, raw_delete)
    return tally
