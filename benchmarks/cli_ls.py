#!/usr/bin/env python3
"""`safepoint ls` of 10,000 sessions: the whole command, piped (as `safepoint ls | grep ID` runs it), as a table
and as `--json`, on the directory and SQLite stores; and `Repository.sessions()` in-process, the data part.

    python benchmarks/cli_ls.py                   # 10,000 sessions per store (creating them takes minutes)
    python benchmarks/cli_ls.py --quick           # 1,000 sessions
    python benchmarks/cli_ls.py --keep DIR        # create the stores in DIR once, reuse them on later runs
    python benchmarks/cli_ls.py --out part.md     # also write the Markdown section

Each session is created through the public API (`repo.session(...)`, one save). Each timing is the median of 3
runs of a new `python -m safepoint --store URL ls` process with stdout a pipe; "process start" is the same for
`safepoint --help` (Python, typer and safepoint imported), the floor any command pays. Target: under 1 s.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (
    Report,
    Section,
    choose_tmp_base,
    describe_machine,
    markdown,
    median,
    ms,
    parser,
    print_report,
    write_out,
)

import safepoint as sp

TARGET = 1.0


def populate(url: str, count: int) -> None:
    with sp.open(url) as repo:
        have = sum(1 for _ in repo.session_ids())
        for n in range(have, count):
            with repo.session(f"session-{n:05d}", agent="bench", lease=False) as s:
                s.state.mission.goal = f"goal {n}"
                s.save(step="first")


def run_cli(url: str, *args: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "safepoint", "--store", url, *args], capture_output=True, check=True)
    elapsed = time.perf_counter() - start
    assert done.stdout, "no output"
    return elapsed


def main(argv: list[str] | None = None) -> int:
    options = parser(__doc__, quick="1,000 sessions instead of 10,000", out="also write the Markdown section to FILE")
    options.add_argument("--keep", metavar="DIR", type=Path, help="create (or reuse) the stores in DIR")
    args = options.parse_args(argv)
    count = 1_000 if args.quick else 10_000
    started = time.perf_counter()
    base = args.keep or Path(tempfile.mkdtemp(dir=choose_tmp_base(None), prefix="cli-ls-"))
    base.mkdir(parents=True, exist_ok=True)
    stores = {"directory": str(base / f"dir-{count}"), "SQLite": f"sqlite:///{base / f'store-{count}.db'}"}
    report = Report()
    section = Section(
        f"`safepoint ls` of {count:,} sessions",
        ["store", "create (once)", "process start", "ls (table, piped)", "ls --json", "Repository.sessions()"],
    )
    for name, url in stores.items():
        t0 = time.perf_counter()
        populate(url, count)
        created = time.perf_counter() - t0
        floor = median([run_cli(url, "--help") for _ in range(3)])
        table = median([run_cli(url, "ls") for _ in range(3)])
        as_json = median([run_cli(url, "ls", "--json") for _ in range(3)])
        with sp.open(url) as repo:
            data = median([timed_sessions(repo, count) for _ in range(3)])
        section.rows.append([name, f"{created:.1f} s", ms(floor), ms(table), ms(as_json), ms(data)])
        report.check(f"{name}: `safepoint ls` of {count:,} sessions, piped", table, TARGET, ms)
    section.notes.append("The table goes to a pipe, so it is plain text, never wrapped (see docs/cli.md).")
    report.sections.append(section)
    header = describe_machine(base)
    print_report(report, header)
    text = markdown(report, header, args.quick, time.perf_counter() - started)
    write_out(text, args.out)
    return 0 if all(c.passed for c in report.checks) else 1


def timed_sessions(repo: sp.Repository, count: int) -> float:
    start = time.perf_counter()
    found = repo.sessions()
    elapsed = time.perf_counter() - start
    assert len(found) == count, len(found)
    return elapsed


if __name__ == "__main__":
    sys.exit(main())
