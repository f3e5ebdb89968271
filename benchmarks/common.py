"""What every benchmark script shares: timing statistics and formatting, the PASS/FAIL report and its
terminal and Markdown rendering, the machine description every results section starts with, the stores'
temporary directory, and the command-line options the scripts have in common.

The scripts run as `python benchmarks/<name>.py`, so this directory is on `sys.path` and they import it as
`common`.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import safepoint as sp

REPO_ROOT = Path(__file__).resolve().parent.parent
KIB = 1024
MIB = 1024 * 1024

console = Console(width=None if sys.stdout.isatty() else 200)


# --------------------------------------------------------------------------------------------------------
# Report: sections of tables and notes, rendered to the terminal (rich) and to Markdown
# --------------------------------------------------------------------------------------------------------
@dataclass
class Check:
    name: str
    measured: str
    limit: str
    passed: bool


@dataclass
class Section:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra_tables: list[tuple[str, list[str], list[list[str]]]] = field(default_factory=list)


@dataclass
class Report:
    sections: list[Section] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def check(self, name: str, value: float, limit: float, fmt: Callable[[float], str]) -> str:
        passed = value <= limit
        self.checks.append(Check(name, fmt(value), "<= " + fmt(limit), passed))
        return "PASS" if passed else "FAIL"


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    """Seconds one call of `fn` takes."""
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


# --------------------------------------------------------------------------------------------------------
# Formatting helpers
# --------------------------------------------------------------------------------------------------------
def ms(seconds: float) -> str:
    value = seconds * 1e3
    if value >= 100:
        return f"{value:,.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def size(n: float) -> str:
    if abs(n) >= MIB:
        return f"{n / MIB:.2f} MiB"
    if abs(n) >= KIB:
        return f"{n / KIB:.1f} KiB"
    return f"{n:.0f} B"


def ratio(x: float) -> str:
    return f"{x:.2f}x"


def median(values: list[float]) -> float:
    return statistics.median(values)


def p90(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[8]


# --------------------------------------------------------------------------------------------------------
# Machine description
# --------------------------------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _virtualisation() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        for line in out.splitlines():
            if line.startswith("Hypervisor vendor:"):
                return line.split(":", 1)[1].strip() + " virtual machine"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        if " hypervisor" in Path("/proc/cpuinfo").read_text():
            return "virtual machine"
    except OSError:
        pass
    return ""


def filesystem_of(path: Path) -> dict[str, str]:
    """The mount holding `path`: mount point, filesystem type, source device and options (Linux only)."""
    st_dev = os.stat(path).st_dev
    dev = f"{os.major(st_dev)}:{os.minor(st_dev)}"
    best: dict[str, str] = {}
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return {"type": "unknown", "mount": "?", "source": "?", "options": ""}
    text = str(path.resolve())
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) < 6 or len(rest) < 2:
            continue
        mount = fields[4]
        inside = text == mount or text.startswith(mount.rstrip("/") + "/")
        if fields[2] == dev and inside and len(mount) >= len(best.get("mount", "")):
            best = {"mount": mount, "type": rest[0], "source": rest[1], "options": fields[5]}
    return best or {"type": "unknown", "mount": "?", "source": "?", "options": ""}


def _git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "safepoint"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return f"{rev}{' + uncommitted or untracked library files' if dirty else ''}" if rev else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def installed(name: str) -> str:
    """The installed version of a distribution, or "not installed"."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine_facts(tmp_base: Path | None, *, packages: Sequence[str] = ()) -> dict[str, str]:
    """What every results section says about its run: CPU (and virtualisation), RAM, the filesystem the
    stores are on (left out when `tmp_base` is None: the benchmark stores nothing on this machine's disk), OS,
    Python and SQLite, safepoint's version and git revision (with the versions of `packages`), and the load."""
    virt = _virtualisation()
    load = os.getloadavg()
    facts = {
        "CPU": f"{_cpu_model()} ({platform.machine()}{', ' + virt + ' guest' if virt else ''}), {os.cpu_count()} cores",
        "RAM": f"{_ram_bytes() / 2**30:.1f} GiB",
    }
    if tmp_base is not None:
        fs = filesystem_of(tmp_base)
        facts["Stores in"] = f"`{tmp_base}` on {fs['type']} ({fs['source']} mounted at {fs['mount']}, {fs['options']})"
    facts["OS"] = (
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}; SQLite {sqlite3.sqlite_version}"
    )
    facts["Versions"] = f"safepoint {sp.__version__}, git {_git_revision()}" + "".join(
        f", {name} {installed(name)}" for name in packages
    )
    facts["Load average at start"] = f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    return facts


def describe_machine(tmp_base: Path | None, *, packages: Sequence[str] = ()) -> list[str]:
    """`machine_facts` as the lines a results section starts with (`- ` each in Markdown)."""
    facts = machine_facts(tmp_base, packages=packages)
    return [value if name == "Versions" else f"{name}: {value}" for name, value in facts.items()]


def choose_tmp_base(requested: str | None) -> Path:
    """A directory for stores on the same filesystem as the working directory, and not a tmpfs."""
    if requested:
        return Path(requested).resolve()
    work = Path.cwd()
    candidate = Path(tempfile.gettempdir())
    same_device = os.stat(candidate).st_dev == os.stat(work).st_dev
    if same_device and filesystem_of(candidate).get("type") not in ("tmpfs", "ramfs"):
        return candidate
    return work


# --------------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------------
def _styled(cell: str) -> str:
    if cell == "PASS":
        return "[bold green]PASS[/]"
    if cell == "FAIL":
        return "[bold red]FAIL[/]"
    return cell


def print_report(report: Report, header: list[str]) -> None:
    for line in header:
        console.print(line, markup=False, highlight=False)
    for section in report.sections:
        table = Table(title=section.title, title_justify="left", show_lines=False)
        for column in section.columns:
            table.add_column(column, overflow="fold")
        for row in section.rows:
            table.add_row(*(_styled(c) for c in row))
        console.print(table)
        for title, columns, rows in section.extra_tables:
            sub = Table(title=title, title_justify="left")
            for column in columns:
                sub.add_column(column, overflow="fold")
            for row in rows:
                sub.add_row(*row)
            console.print(sub)
    summary = Table(title="Targets", title_justify="left")
    for column in ("target", "measured", "limit", "result"):
        summary.add_column(column, overflow="fold")
    for check in report.checks:
        summary.add_row(check.name, check.measured, check.limit, _styled(verdict(check.passed)))
    console.print(summary)
    passed = sum(c.passed for c in report.checks)
    console.print(f"[bold]{passed} of {len(report.checks)} targets met[/]")


def md_table(columns: list[str], rows: list[list[str]]) -> list[str]:
    def esc(cell: str) -> str:
        cell = cell.replace("|", "\\|")
        return f"**{cell}**" if cell in ("PASS", "FAIL") else cell

    out = ["| " + " | ".join(columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
    out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return out


def markdown(report: Report, header: list[str], quick: bool, elapsed: float) -> str:
    today = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    mode = "quick run: `--quick`, smaller counts, not comparable with a full run" if quick else "full run"
    lines = [f"## Results, {today} ({mode})", ""]
    lines += [f"- {line}" for line in header]
    lines += [
        f"- Run time: {elapsed / 60:.1f} min; load average at the end: "
        + " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "",
    ]
    passed = sum(c.passed for c in report.checks)
    lines += [f"### Targets: {passed} of {len(report.checks)} met", ""]
    lines += md_table(
        ["target", "measured", "limit", "result"],
        [[c.name, c.measured, c.limit, verdict(c.passed)] for c in report.checks],
    )
    lines.append("")
    for section in report.sections:
        lines += [f"### {section.title}", ""]
        lines += md_table(section.columns, section.rows)
        lines.append("")
        for title, columns, rows in section.extra_tables:
            lines += [f"{title}:", ""]
            lines += md_table(columns, rows)
            lines.append("")
        lines += [f"- {note}" for note in section.notes]
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------
# Command line and output
# --------------------------------------------------------------------------------------------------------
POSTGRES_URL = os.environ.get("SAFEPOINT_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = os.environ.get("SAFEPOINT_TEST_REDIS_URL") or "redis://127.0.0.1:6379/0"


def parser(
    doc: str,
    *,
    whole_doc: bool = False,
    quick: str | None = None,
    out: str | None = None,
    tmp_dir: bool = False,
    strict: str | None = None,
    postgres: str | None = None,
    redis: str | None = None,
) -> argparse.ArgumentParser:
    """An ArgumentParser described by the first paragraph of `doc` (all of it with `whole_doc`), with the
    options the scripts share; each given one is added with that help text (`postgres` and `redis` default
    to $SAFEPOINT_TEST_POSTGRES_URL / $SAFEPOINT_TEST_REDIS_URL or the local servers)."""
    if whole_doc:
        made = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    else:
        made = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    if quick is not None:
        made.add_argument("--quick", action="store_true", help=quick)
    if out is not None:
        made.add_argument("--out", metavar="FILE", type=Path, help=out)
    if tmp_dir:
        made.add_argument(
            "--tmp-dir",
            metavar="DIR",
            help="where to create the stores (default: a temp directory "
            "on the working directory's filesystem, never a tmpfs)",
        )
    if strict is not None:
        made.add_argument("--strict", action="store_true", help=strict)
    if postgres is not None:
        made.add_argument("--postgres", default=POSTGRES_URL, help=postgres or None)
    if redis is not None:
        made.add_argument("--redis", default=REDIS_URL, help=redis or None)
    return made


def write_out(section: str, out: Path | None) -> None:
    """Write a Markdown section to `out` (when given) and say so."""
    if out:
        Path(out).write_text(section)
        console.print(f"Markdown section written to {out}", markup=False, highlight=False)


def replace_section(path: Path, heading: str, section: str) -> None:
    """Replace the section of `path` starting with `heading` (up to the next `## `), or append it at the end."""
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(rf"^{re.escape(heading)}.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip("\n") + "\n\n", text, count=1).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    path.write_text(text)
