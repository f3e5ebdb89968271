#!/usr/bin/env python3
"""The dashboard's sessions list at 10,000 sessions, per store: server-side time to render the page.

    python benchmarks/dashboard.py                 # 10,000 sessions in a directory and a SQLite store (~3 min)
    python benchmarks/dashboard.py --quick         # 1,000 sessions: a smoke test
    python benchmarks/dashboard.py --postgres URL  # also PostgreSQL (a fresh schema, dropped afterwards)
    python benchmarks/dashboard.py --out part.md   # also write the results as a Markdown section

Each store gets `--sessions` sessions written through the public API (`Repository.session(...).save()`, no
lease): 60% completed, 15% waiting for an answer, 10% failed, 15% running; four agents, a tag on every third.
Then the dashboard app (`safepoint.dashboard.create_app`) is called in-process through starlette's test client,
and the time from the request entering the app to the last byte of the response leaving it is measured by an
ASGI wrapper (server-side: no network, no browser). Pages: the sessions list (first page of 50, newest
activity first), filtered to waiting sessions, a text search, a deep page, and the overview. Target: the list
page under 300 ms (median) on the directory and SQLite stores.

Diagnostic: `Repository.sessions()`, which reads the summary index and checks every entry against its chain's
commit keys (core.index_check; before that it read every session's head from its chain), timed once.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rich.progress import Progress

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import (  # noqa: E402
    Report,
    Section,
    choose_tmp_base,
    describe_machine,
    markdown,
    median,
    ms,
    p90,
    parser,
    print_report,
    write_out,
)

import safepoint as sp  # noqa: E402

TARGET_SECONDS = 0.300
AGENTS = ["researcher", "writer", "planner", "mailer"]
PAGES = {
    "sessions list, first page": "/sessions",
    "filtered: status=waiting": "/sessions?status=waiting",
    "text search: q=writer-77": "/sessions?q=writer-77",
    "deep page (page 100)": "/sessions?page=100",
    "overview (attention list)": "/",
}
TARGETED = {"sessions list, first page", "filtered: status=waiting", "text search: q=writer-77"}


class Timed:
    """ASGI wrapper: the server-side time of each HTTP request, from entering the app to its last body byte."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.last = 0.0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()

        async def timed_send(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.last = time.perf_counter() - started

        await self.app(scope, receive, timed_send)


def populate(repo: sp.Repository, count: int, label: str, threads: int) -> None:
    """Write the sessions, `threads` at a time (on the directory store the fsyncs overlap; SQLite has one writer)."""
    with Progress(transient=True) as progress, ThreadPoolExecutor(threads) as pool:
        task = progress.add_task(f"{label}: writing {count:,} sessions", total=count)
        for _ in pool.map(lambda i: _write_one(repo, i), range(count)):
            progress.advance(task)


def _write_one(repo: sp.Repository, i: int) -> None:
    agent = AGENTS[i % len(AGENTS)]
    tags = ["nightly"] if i % 3 == 0 else []
    kind = i % 20
    with repo.session(f"{agent}-{i}", agent=agent, tags=tags, lease=False, schema=dict) as s:
        s.state["topic"] = f"report {i}"
        s.report_usage(tokens=100 + i % 900, cost=0.001)
        if kind < 12:
            s.save("write")
            s.save("completed", status=sp.Status.COMPLETED)
        elif kind < 15:
            try:
                s.wait_for("approve", prompt="Publish?", schema=bool)
            except sp.Suspended:
                pass
        elif kind < 17:
            s.runtime["error"] = {"error": "RuntimeError: source gone"}
            s.save("fetch", status=sp.Status.FAILED)
        else:
            s.save("fetch")


def measure(repo: sp.Repository, runs: int, poll: float, pages: dict[str, str]) -> dict[str, list[float]]:
    """Server-side times of each page: two warm-up requests, then `runs` timed ones, on one app."""
    from starlette.testclient import TestClient

    from safepoint.dashboard import Settings, create_app

    timed = Timed(create_app(Settings(poll=poll), repo=repo))
    client = TestClient(timed, base_url="http://127.0.0.1")
    times: dict[str, list[float]] = {}
    for name, path in pages.items():
        for _ in range(2):  # warm-up: templates compiled, the index copy loaded
            assert client.get(path).status_code == 200
        samples = []
        for _ in range(runs):
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code)
            samples.append(timed.last)
        times[name] = samples
    return times


def timed_call(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def cold_listing(url: str, samples: int) -> list[float]:
    """`find_sessions()` (the list page's one API call) on a newly opened store: every index entry read and
    decoded, nothing cached."""
    found = []
    for _ in range(samples):
        with sp.open(url) as repo:
            t0 = time.perf_counter()
            repo.find_sessions()
            found.append(time.perf_counter() - t0)
    return found


def main() -> None:
    args = parser(
        __doc__ or "",
        quick="1,000 sessions instead of 10,000",
        out="write the results as a Markdown section to FILE",
        tmp_dir=True,
        strict="exit with status 1 when a target is missed",
    )
    args.add_argument("--sessions", type=int, default=None, help="sessions per store (default 10,000)")
    args.add_argument("--runs", type=int, default=15, help="timed requests per page (default 15)")
    args.add_argument("--postgres", default=None, help="also a PostgreSQL store at this URL (a fresh schema)")
    options = args.parse_args()
    count = options.sessions or (1000 if options.quick else 10_000)
    tmp_base = choose_tmp_base(options.tmp_dir)
    work = Path(tempfile.mkdtemp(prefix="sp-dash-bench-", dir=tmp_base))
    started = time.monotonic()
    report = Report()
    section = Section(
        f"Dashboard pages at {count:,} sessions (server-side, in-process)",
        ["store", "page", "median", "p90", "max", "target", "result"],
    )
    diagnostics: list[list[str]] = []
    stores = [("directory", str(work / "files")), ("sqlite", f"sqlite:///{work / 'store.db'}")]
    schema = None
    if options.postgres:
        schema = f"bench_dash_{uuid.uuid4().hex[:10]}"
        sep = "&" if "?" in options.postgres else "?"
        stores.append(("postgresql", f"{options.postgres}{sep}schema={schema}"))
    try:
        for label, url in stores:
            with sp.open(url) as repo:
                t0 = time.monotonic()
                populate(repo, count, label, threads=8 if label == "directory" else 1)
                written = time.monotonic() - t0
                variants = [("", measure(repo, options.runs, 1.0, PAGES))]
                mirror = repo.follow_index()
                mirror.refresh()
                rereads = [timed_call(mirror.refresh) for _ in range(5)]
                checking = repo.follow_index(check_every=0)  # every refresh checks every entry against its chain
                checking.refresh()
                checks = [timed_call(checking.refresh) for _ in range(3)]
                t0 = time.perf_counter()
                listed = len(repo.sessions())
                full_scan = time.perf_counter() - t0
                assert listed == count
            cold = cold_listing(url, 3)
            for suffix, times in variants:
                for name, samples in times.items():
                    targeted = name in TARGETED and label in ("directory", "sqlite")
                    result = ""
                    if targeted:
                        result = report.check(f"{label}: {name}{suffix}", median(samples), TARGET_SECONDS, ms)
                    section.rows.append([label, name + suffix, ms(median(samples)), ms(p90(samples)),
                                         ms(max(samples)), "< 300 ms" if targeted else "(none)", result])  # fmt: skip
            diagnostics.append(
                [
                    label,
                    f"{count:,}",
                    f"{written:.0f} s",
                    ms(median(rereads)),
                    ms(median(checks)),
                    ms(median(cold)),
                    ms(full_scan),
                ]  # fmt: skip
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if schema is not None:
            import psycopg

            with psycopg.connect(options.postgres, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    section.extra_tables.append(
        (
            "Diagnostics (no target)",
            [
                "store",
                "sessions",
                "time to write them",
                "index re-read in the background (median of 5)",
                "re-read and checked against the chains (median of 3)",
                "cold find_sessions() (median of 3)",
                "Repository.sessions() (index, checked)",
            ],
            diagnostics,
        )  # fmt: skip
    )
    section.notes += [
        "Server-side: from the request entering the ASGI app to the last byte of its response (an ASGI wrapper "
        "around `create_app`), through starlette's in-process test client; each page requested twice to warm up, "
        f"then {options.runs} times.",
        "The pages list from the summary index (`summaries/<session>`, one small record per session written with "
        "each commit): the dashboard keeps a copy in memory, at most `--poll` (1 s) old, re-read by its change "
        "feed or by the first request after it aged; the records are filtered and sorted as plain dicts and "
        "summaries are built only for the 50 rows shown (a running row also reads its lease, for stuck detection).",
        "The rows: the dashboard's steady state (requests answered from the copy; a copy older than 1 s is re-read "
        "by a background thread, which these requests compete with for the CPU). *Index re-read in the "
        "background*: `Mirror.refresh()`, every entry read again and compared (decoding only changed ones), off "
        "the request path; every `--check-every` seconds (30 s) it also checks every entry against its chain "
        "(*re-read and checked*, as `Repository.sessions()` does), and each re-read checks the entries that changed. "
        "*Cold find_sessions()*: the list's API call on a newly "
        "opened store, every entry read and decoded (what the first page of a newly started dashboard pays, "
        "besides compiling its templates).",
        "`Repository.sessions()` reads every entry and checks it against its chain's commit keys (one "
        "`Store.present` call; core/index_check.py): what `safepoint ls` pays for its data.",
    ]
    report.sections.append(section)
    header = describe_machine(tmp_base, packages=["starlette", "jinja2"])
    print_report(report, header)
    write_out(markdown(report, header, options.quick, time.monotonic() - started), options.out)
    if options.strict and not all(c.passed for c in report.checks):
        sys.exit(1)


if __name__ == "__main__":
    main()
