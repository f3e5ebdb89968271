#!/usr/bin/env python3
"""`safepoint ls` of 10,000 sessions: the whole command, piped (as `safepoint ls | grep ID` runs it), as a table
and as `--json`, on the directory, SQLite and PostgreSQL stores; and `Repository.sessions()` in-process.

    python benchmarks/cli_ls.py                   # 10,000 sessions per store (creating them takes minutes)
    python benchmarks/cli_ls.py --quick           # 1,000 sessions
    python benchmarks/cli_ls.py --keep DIR        # create the stores in DIR (and schema bench_cli_ls_N) once, reuse
    python benchmarks/cli_ls.py --no-postgres     # only the directory and SQLite stores
    python benchmarks/cli_ls.py --out part.md     # also write the Markdown section

Each session is created through the public API (`repo.session(...)`, one save). Each timing is the median of 5
runs of a new `python -m safepoint --store URL ls` process with stdout a pipe (its output is checked: one row or
object per session); "process start" is the same for `safepoint --help` (Python, typer and safepoint imported),
the floor any command pays. Beside each wall time, the CPU time the process used (user + system), which a
loaded machine inflates much less. "One entry behind" is `ls` right after the entries of 1% of the sessions
were put back one commit (what writers killed between a commit and its entry leave): those are rebuilt from
their chains during that listing. Target: under 1 s.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (
    POSTGRES_URL,
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
from safepoint.core import session_index
from safepoint.core.history import session_segment

TARGET = 1.0
RUNS = 5


def populate(url: str, count: int) -> None:
    with sp.open(url) as repo:
        have = sum(1 for _ in repo.session_ids())
        for n in range(have, count):
            with repo.session(f"session-{n:05d}", agent="bench", lease=False) as s:
                s.state.mission.goal = f"goal {n}"
                s.save(step="first")


def run_cli(url: str, *args: str, rows: int | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of one `safepoint --store URL ARGS` process writing to a pipe (`rows`: the rows or
    JSON objects it must print)."""
    before = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "safepoint", "--store", url, *args], capture_output=True)
    elapsed = time.perf_counter() - start
    assert done.returncode == 0, done.stderr.decode()
    if rows is not None:
        found = len(json.loads(done.stdout)) if "--json" in args else len(done.stdout.splitlines()) - 1
        assert found == rows, (args, found, rows)
    return elapsed, _children_cpu() - before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(url: str, *args: str, rows: int | None = None) -> tuple[float, float]:
    """Median wall and median CPU seconds over RUNS processes."""
    samples = [run_cli(url, *args, rows=rows) for _ in range(RUNS)]
    return median([w for w, _ in samples]), median([c for _, c in samples])


def put_back_one_commit(url: str, share: float) -> int:
    """Make the entries of `share` of the sessions one commit behind their chains, as a writer killed between a
    commit and its entry leaves them; return how many."""
    with sp.open(url) as repo:
        ids = sorted(repo.session_ids())[:: round(1 / share)]
        for session_id in ids:
            key = session_index.key(session_segment(session_id))
            behind = repo.store.get(key)
            with repo.session(session_id, lease=False) as s:
                s.save("again")
            repo.store.put(key, behind)
        return len(ids)


def pair(times: tuple[float, float]) -> str:
    return f"{ms(times[0])} ({ms(times[1])} CPU)"


def main(argv: list[str] | None = None) -> int:
    options = parser(__doc__, quick="1,000 sessions instead of 10,000", out="also write the Markdown section to FILE")
    options.add_argument("--keep", metavar="DIR", type=Path, help="create (or reuse) the stores in DIR")
    options.add_argument("--postgres", default=POSTGRES_URL, metavar="URL", help="PostgreSQL (a schema of its own)")
    options.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    args = options.parse_args(argv)
    count = 1_000 if args.quick else 10_000
    started = time.perf_counter()
    base = args.keep or Path(tempfile.mkdtemp(dir=choose_tmp_base(None), prefix="cli-ls-"))
    base.mkdir(parents=True, exist_ok=True)
    stores = {"directory": str(base / f"dir-{count}"), "SQLite": f"sqlite:///{base / f'store-{count}.db'}"}
    schema = f"bench_cli_ls_{count}" if args.keep else f"bench_cli_ls_{os.getpid()}"
    if not args.no_postgres:
        stores["PostgreSQL"] = f"{args.postgres}{'&' if '?' in args.postgres else '?'}schema={schema}"
    report = Report()
    section = Section(
        f"`safepoint ls` of {count:,} sessions",
        ["store", "create (once)", "process start", "ls (table, piped)", "ls --json", "one entry behind (1%)",
         "Repository.sessions()"],
    )  # fmt: skip
    try:
        for name, url in stores.items():
            t0 = time.perf_counter()
            populate(url, count)
            created = time.perf_counter() - t0
            floor = timed(url, "--help")
            table = timed(url, "ls", rows=count)
            as_json = timed(url, "ls", "--json", rows=count)
            put_back_one_commit(url, 0.01)
            behind = run_cli(url, "ls", rows=count)
            with sp.open(url) as repo:
                data = median([timed_sessions(repo, count) for _ in range(3)])
            section.rows.append(
                [name, f"{created:.1f} s", pair(floor), pair(table), pair(as_json), pair(behind), ms(data)]
            )
            report.check(f"{name}: `safepoint ls` of {count:,} sessions, piped", table[0], TARGET, ms)
            report.check(f"{name}: `safepoint ls --json` of {count:,} sessions, piped", as_json[0], TARGET, ms)
    finally:
        if not args.keep and not args.no_postgres:
            import psycopg

            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    section.notes.append("The table goes to a pipe, so it is plain text, never wrapped (see docs/cli.md).")
    section.notes.append(
        "`ls` reads the summary index (one small record per session) and checks every entry against its chain "
        "with one `Store.present` call (the commit keys of each head and of the seq after it: one query on "
        "SQLite and PostgreSQL, a stat each on the directory store); see safepoint/core/index_check.py."
    )
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
