"""`safepoint demo`: a research-and-write agent over a small corpus, built on safepoint's durable runtime.

The agent (`research`, registered as "demo-researcher") plans, reads each file of `safepoint/demo/corpus` and
extracts notes (one durable step per file), writes an outline, asks a human to approve it (`wait_for`), writes
the report, stores it as an artifact and "sends" it through a recorded effect into an outbox. Its model is
`OfflineModel` (deterministic, offline and fake: no network, no real LLM) unless `SAFEPOINT_DEMO_BASE_URL`
names an OpenAI-compatible endpoint. Failures can be injected: transient model errors (503, 429 with
Retry-After) that the retry policy absorbs, and hard crashes (SIGKILL of the process) at chosen or random
points. The outbox is a SQLite file the demo owns (default `demo-outbox.db` next to the store): the `outbox`
table counts deliveries per idempotency key, `model_calls` is the bill (one row per model call made, also by
processes that were killed later) and `runs` records what each resume replayed.
"""

from __future__ import annotations

import contextvars
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

from ..agents.runner import RunResult, agent, run
from ..core.summary import done_steps, kept_tokens
from ..core.summary import retries as count_retries
from ..errors import WAITING_EXIT_CODE, SafepointError
from ..model import Status
from ..repository import Repository
from ..runtime.effects import NOT_DONE
from ..runtime.retry import RetryPolicy
from ..session import Session
from ..stores import DEFAULT_URL
from ..version import __version__
from .world import (
    DEFAULT_DELAY,
    TEMPERATURE,
    FlakyModel,
    Model,
    ModelError,
    Outbox,
    build_model,
    bullets,
    default_outbox,
    model_spec_from_env,
)

AGENT = "demo-researcher"
GOAL = "Write a short report on heat pumps in Europe: how they work, the market, costs, policy and obstacles"
APPROVAL = "approve_outline"
RECIPIENT = "energy-team@example.com"
PROMPTS = {
    "plan": "Goal: {goal}\nSources:\n{sources}\n\nList the questions the report must answer, one per line "
    "starting with '- '.",
    "extract": "Goal: {goal}\nQuestions:\n{questions}\n\nSource {name}:\n{text}\n\nExtract the two to four facts "
    "from this source that best answer the questions, one per line starting with '- '.",
    "outline": "Goal: {goal}\nNotes:\n{notes}\n\nWrite an outline of four to eight section titles, one per line "
    "starting with '- '.",
    "write": "Goal: {goal}\nOutline:\n{outline}\n\nNotes:\n{notes}\n\nWrite the report in Markdown, one section "
    "per outline line, citing the sources in brackets like [market-growth.txt].",
}


# --- the corpus ---------------------------------------------------------------------------------------------
def corpus() -> list[tuple[str, str]]:
    """(file name, text) of every file of the demo corpus shipped with the package, by name."""
    folder = resources.files("safepoint.demo") / "corpus"
    files = sorted((item.name, item) for item in folder.iterdir() if item.name.endswith(".txt"))
    return [(name, item.read_text(encoding="utf-8")) for name, item in files]


def step_names() -> list[str]:
    """The agent's steps in order, as the progress numbers them: plan, extract:<file>..., outline, approve..."""
    return ["plan", *[f"extract:{name}" for name, _ in corpus()], "outline", "approve", "write", "send"]


# --- what a run prints ----------------------------------------------------------------------------------------
class Display:
    """A progress bar when stdout is a terminal, plain lines otherwise; `quiet` prints nothing (worker, resume)."""

    def __init__(self, total: int, *, quiet: bool = False, live: bool | None = None) -> None:
        self.total, self.quiet = total, quiet
        self.live = not quiet and (sys.stdout.isatty() if live is None else live)
        self._progress: Any = None
        self._task: Any = None

    def start(self) -> None:
        if self.live and self._progress is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]demo[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.description}"),
                transient=False,
            )
            self._task = self._progress.add_task("", total=self.total)
            self._progress.start()

    def advance(self, number: int, name: str, *, replayed: bool, tokens: int = 0) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=number, description=name)
        elif not self.quiet and not replayed:
            line = f"step {number:>2}/{self.total} {name:<36}" + (f" {tokens:>6,} tokens" if tokens else "")
            self.say(line.rstrip())

    def say(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        elif not self.quiet:
            print(text, flush=True)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


# --- one run of the agent ---------------------------------------------------------------------------------------
@dataclass
class Options:
    """How one run behaves. Not recorded: `safepoint resume` and workers run the agent with the defaults."""

    crash_at: int | None = None  # kill the process in the middle of step N (numbered as `step_names()`)
    crash_rate: float = 0.0  # or: at every crash point, kill it with this probability
    fail_rate: float = 0.0  # share of model calls failing with 503 or 429 (retried)
    delay: float = DEFAULT_DELAY  # offline model latency; 0 also skips the back-off waits
    seed: int | None = None
    outbox: Path | None = None  # for a new session (then recorded in its state)
    display: Display | None = None


_options: contextvars.ContextVar[Options | None] = contextvars.ContextVar("safepoint_demo_options", default=None)


@dataclass
class _Run:
    s: Session
    options: Options
    display: Display
    outbox: Outbox
    model: Model
    retry: RetryPolicy
    rng: random.Random
    done: set[str] = field(default_factory=set)

    @classmethod
    def start(cls, s: Session, options: Options) -> _Run:
        data = s.state.data
        if "config" not in data:  # a new session: record where its outbox is and which model it uses
            s.state.mission.goal = GOAL
            s.state.mission.remaining = step_names()
            outbox = options.outbox or Path("demo-outbox.db")
            data.update(config={"outbox": str(Path(outbox).resolve()), "model": model_spec_from_env()}, notes=[])
        config = data["config"]
        rng = random.Random(options.seed)
        model = build_model(config["model"], options.delay)
        offline_instant = config["model"].get("kind") == "offline" and options.delay == 0
        retry = RetryPolicy(
            attempts=8, initial=0.2, maximum=5.0, sleep=(lambda _: None) if offline_instant else time.sleep
        )
        display = options.display or Display(len(step_names()), quiet=True)
        run = cls(s, options, display, Outbox(config["outbox"]), FlakyModel(model, options.fail_rate, rng), retry, rng)
        run.done = {name for name, r in s.runtime.get("steps", {}).items() if r.get("status") == "done"}
        s.configure(model=model.name, temperature=TEMPERATURE, prompts=PROMPTS, code_version=__version__)
        return run

    def crash_point(self, number: int, name: str, where: str, what: str) -> None:
        """Kill this process here if the options say so: `crash_at` at a step's main point, `crash_rate` anywhere."""
        chosen = self.options.crash_at == number and where == "mid"
        if not chosen and not (self.options.crash_rate and self.rng.random() < self.options.crash_rate):
            return
        self.display.say(f"crash: SIGKILL {what} (step {number}/{self.display.total} {name}); no cleanup runs")
        self.display.stop()
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    def model_step(self, number: int, name: str, task: str, prompt: str, material: dict[str, Any], apply: Any) -> str:
        """Durable step `name`: one model call, billed, recorded; `apply(text)` updates the state in the same save."""

        def call() -> str:
            try:
                reply = self.model.complete(task, prompt, material)
            except (ModelError, ConnectionError, TimeoutError) as exc:
                self.display.say(f"  {name}: {exc}; retrying with back-off")
                raise
            self.outbox.bill(self.s.id, name, self.model.name, reply.tokens)
            self.s.report_usage(tokens=reply.tokens, cost=reply.cost)
            self.crash_point(number, name, "mid", "in the middle of a step: its model call is paid, its result unsaved")
            _mark_done(self.s, name)
            apply(reply.text)
            return reply.text

        replayed = name in self.done
        text = self.s.step(name, call, retry=self.retry)
        tokens = self.s.runtime["steps"][name].get("usage", {}).get("tokens", 0)
        self.display.advance(number, name, replayed=replayed, tokens=int(tokens))
        if not replayed:
            self.crash_point(number, name, "after", "right after a checkpoint")
        return text


def _mark_done(s: Session, name: str) -> None:
    mission = s.state.mission
    if name not in mission.done:
        mission.done.append(name)
    if name in mission.remaining:
        mission.remaining.remove(name)


@agent(AGENT)
def research(s: Session) -> dict[str, Any]:
    """The demo agent: plan, extract notes from each corpus file, outline, approval, write, store, send."""
    r = _Run.start(s, _options.get() or Options())
    try:
        return _research(s, r)
    finally:
        r.display.stop()
        r.outbox.close()


def _research(s: Session, r: _Run) -> dict[str, Any]:
    if r.done:
        saved = sum(int(rec.get("usage", {}).get("tokens", 0)) for n, rec in s.runtime["steps"].items() if n in r.done)
        r.outbox.record_run(s.id, s.seq, len(r.done), saved)
        r.display.say(
            f"resumed at seq {s.seq}: {len(r.done)} steps replayed from checkpoints, {saved:,} tokens not spent again"
        )
    r.display.start()
    files = corpus()
    titles = {name: text.partition("\n")[0] for name, text in files}
    sources = "\n".join(f"- {name}: {title}" for name, title in titles.items())
    plan = r.model_step(
        1,
        "plan",
        "plan",
        PROMPTS["plan"].format(goal=GOAL, sources=sources),
        {"titles": titles},
        lambda text: s.state.data.update(questions=bullets(text)),
    )
    questions = "\n".join(f"- {q}" for q in bullets(plan))
    notes: dict[str, list[str]] = {}
    for number, (name, text) in enumerate(files, start=2):
        prompt = PROMPTS["extract"].format(goal=GOAL, questions=questions, name=name, text=text)
        answer = r.model_step(
            number,
            f"extract:{name}",
            "extract",
            prompt,
            {"goal": GOAL, "name": name, "text": text},
            lambda t, n=name: s.state.data["notes"].extend(f"[{n}] {f}" for f in bullets(t)),
        )
        notes[name] = bullets(answer)
    number = len(files) + 2
    all_notes = "\n".join(f"- [{n}] {fact}" for n, facts in notes.items() for fact in facts)
    outline = bullets(
        r.model_step(
            number,
            "outline",
            "outline",
            PROMPTS["outline"].format(goal=GOAL, notes=all_notes),
            {"titles": titles},
            lambda t: s.state.data.update(outline=bullets(t)),
        )
    )

    listed = "\n".join(f"  {i}. {title}" for i, title in enumerate(outline, start=1))
    approved = s.wait_for(APPROVAL, prompt=f"Approve this outline for the report?\n{listed}", schema=bool)
    r.display.advance(number + 1, "approve", replayed="approve" in s.state.mission.done)
    if "approve" not in s.state.mission.done:
        _mark_done(s, "approve")
        r.crash_point(number + 1, "approve", "mid", "right after the approval was read")
    if not approved:
        return {"sent": False, "reason": "the outline was rejected; no report was written"}

    prompt = PROMPTS["write"].format(goal=GOAL, outline="\n".join(f"- {t}" for t in outline), notes=all_notes)
    material = {"outline": outline, "notes": notes, "titles": titles}
    report = r.model_step(number + 2, "write", "write", prompt, material, lambda t: None)
    ref = s.put_artifact("report.md", report.encode(), "text/markdown")

    key = f"send-report:{s.id}"
    sent_before = s.runtime.get("effects", {}).get(key, {}).get("status") == "done"

    def send() -> dict[str, Any]:
        receipt = r.outbox.deliver(key, s.id, RECIPIENT, "Heat pumps in Europe: the report", report)
        r.crash_point(number + 3, "send", "mid", "after the outbox took the report, before its receipt was saved")
        _mark_done(s, "send")
        return receipt

    def reconcile(k: str) -> Any:
        receipt = r.outbox.receipt(k)
        found = "it was delivered: recorded as done, not sent again" if receipt else "it was not: sending it now"
        r.display.say(f"effect {k} was in doubt (a crash hit mid-send); asked the outbox: {found}")
        if receipt is not None:
            _mark_done(s, "send")
        return receipt if receipt is not None else NOT_DONE

    receipt = s.effect(key, send, reconcile=reconcile)
    r.display.advance(number + 3, "send", replayed=sent_before)
    if not sent_before:
        r.crash_point(number + 3, "send", "after", "right after the send was recorded")
    return {"sent": True, "report": ref.model_dump(mode="json"), "receipt": receipt}


# --- what `safepoint demo` runs ---------------------------------------------------------------------------------
def command_prefix(store_url: str) -> str:
    return "safepoint" if store_url == DEFAULT_URL else f"safepoint --store {shlex.quote(store_url)}"


def run_session(
    repo: Repository, store_url: str, session_id: str, options: Options, *, auto_approve: bool = False
) -> int:
    """`safepoint demo --session ID`: run or resume the agent in this process. Returns the exit code:
    0 completed, 75 waiting for the approval, 1 failed (SIGKILL, when asked for, ends the process)."""
    if repo.exists(session_id) and repo.info(session_id).agent != AGENT:
        raise SafepointError(f"session {session_id!r} was not made by the demo; pick another --session")
    display = options.display = options.display or Display(len(step_names()))
    options.outbox = options.outbox or default_outbox(repo)
    if not repo.exists(session_id):
        model = model_spec_from_env()
        display.say(
            f"new session {session_id} in {repo.url}; model: {model['name']}"
            + (" (offline and fake: deterministic, no network)" if model["kind"] == "offline" else "")
        )
    elif _asks_approval(repo, session_id) and not auto_approve:
        return _waiting(repo, store_url, session_id, display)
    token = _options.set(options)
    try:
        while True:
            if auto_approve and _asks_approval(repo, session_id):
                repo.send(session_id, APPROVAL, True, by="demo --auto-approve")
                display.say(
                    f"approved the outline (--auto-approve: `{command_prefix(store_url)} send "
                    f"{session_id} {APPROVAL} true`)"
                )
            result = run(research, session_id, store=repo)
            if result.status == Status.WAITING and auto_approve:
                continue
            break
    finally:
        display.stop()
        _options.reset(token)
    return _finish(repo, store_url, result, display)


def _asks_approval(repo: Repository, session_id: str) -> bool:
    """Whether the session waits for the outline's approval (False before its first checkpoint)."""
    return repo.exists(session_id) and repo.info(session_id).seq > 0 and APPROVAL in repo.pending_inputs(session_id)


def _finish(repo: Repository, store_url: str, result: RunResult, display: Display) -> int:
    if result.status == Status.WAITING:
        return _waiting(repo, store_url, result.session, display)
    if result.status == Status.FAILED:
        display.say(f"failed: {result.error}")
        display.say(
            f"run it again to retry from the failed step: {command_prefix(store_url)} demo --session {result.session}"
        )
        return 1
    for line in summary(repo, result.session):
        display.say(line)
    return 0


def _waiting(repo: Repository, store_url: str, session_id: str, display: Display) -> int:
    prompt = repo.pending_inputs(session_id)[APPROVAL]["prompt"]
    sp = command_prefix(store_url)
    display.say(
        f"waiting for a human (session {session_id} saved as waiting at seq {repo.info(session_id).seq}; this "
        f"process exits with code {WAITING_EXIT_CODE} and holds nothing open):"
    )
    display.say(prompt)
    display.say(f"answer:  {sp} send {session_id} {APPROVAL} true      (or false)")
    display.say(f"then:    {sp} demo --session {session_id}      (or {sp} resume {session_id})")
    return WAITING_EXIT_CODE


def summary(repo: Repository, session_id: str) -> list[str]:
    """What the run did and what the checkpoints saved, from the session's head and the demo's outbox file."""
    head = repo.load(session_id)
    runtime = head.runtime
    outbox = Outbox(head.state["data"]["config"]["outbox"])
    try:
        calls = outbox.calls(session_id)
        resumes, replayed, saved = outbox.resumes(session_id)
        key = f"send-report:{session_id}"
        deliveries = outbox.deliveries(key)
    finally:
        outbox.close()
    steps = done_steps(runtime)
    kept = kept_tokens(runtime)
    spent = sum(tokens for _, tokens in calls)
    retries = count_retries(runtime)
    result = runtime.get("result") or {}
    lines = [
        f"session {session_id}: {head.status} at seq {head.seq}",
        f"  steps    {len(calls)} model steps run ({len(calls) - len(steps)} again after a crash cut them off); "
        f"{replayed} replayed from checkpoints over {resumes} resume(s)",
        f"  tokens   {spent:,} spent ({spent - kept:,} on work a crash cut off); {saved:,} not spent again thanks to "
        f"the checkpoints (restarting from scratch at each stop: {spent + saved:,})",
        f"  retries  {retries} transient model error(s) (503, 429) retried with back-off",
    ]
    report = result.get("report")
    if report:
        lines.append(
            f"  report   {report['name']} {report['ref'][:23]}... ({report['size']:,} bytes) in state.artifacts"
        )
    else:
        lines.append(f"  report   none: {result.get('reason', 'not written')}")
    lines.append(f"  outbox   {deliveries} delivery of {key} in {head.state['data']['config']['outbox']}")
    return lines


def tour(repo: Repository, store_url: str, options: Options) -> int:
    """`safepoint demo`: the agent in child processes, one killed in the middle of step `crash_at` (default: a
    random step before the approval); each next one resumes the session, and the approval is answered in
    between, as a supervisor and a human would. Returns the last exit code (0 when the agent completed)."""
    if repo.url.startswith("memory://"):
        raise SafepointError(
            "the demo tour runs the agent in separate processes, so it needs a store on disk "
            "(a path or sqlite:///...), not memory://; or pass --session ID"
        )
    rng = random.Random(options.seed)
    session_id = base = datetime.now().strftime("demo-%Y%m%d-%H%M%S")
    while repo.exists(session_id):
        session_id = f"{base}-{rng.randrange(1000)}"
    outline_number = len(step_names()) - 3
    crash_at = options.crash_at or (None if options.crash_rate else rng.randint(2, outline_number))
    outbox = options.outbox or default_outbox(repo)
    crashed = False

    def say(text: str) -> None:
        print(text, flush=True)

    say(
        f"safepoint demo: a research agent over {len(corpus())} files in session {session_id} "
        f"(store {repo.url}, outbox {outbox})"
    )
    for attempt in range(1, 51):
        command = [sys.executable, "-m", "safepoint", "--store", store_url, "demo", "--session", session_id]
        command += ["--outbox", str(outbox), "--delay", str(options.delay), "--fail-rate", str(options.fail_rate)]
        command += ["--crash-rate", str(options.crash_rate)]
        if crash_at and not crashed:  # until the crash happened (a later step than the first run reaches)
            command += ["--crash-at", str(crash_at)]
        if options.seed is not None:
            command += ["--seed", str(options.seed + attempt)]
        say(
            f"\n== run {attempt}: the agent in a new process"
            + (f" (it will be killed in step {crash_at})" if crash_at and not crashed else "")
        )
        code = subprocess.run(command, check=False).returncode
        if code == -signal.SIGKILL:
            crashed = True
            say(
                "== the agent's process was killed (SIGKILL). Starting it again, as a supervisor such as systemd or "
                "Kubernetes would: it resumes from its last checkpoint."
            )
        elif code == WAITING_EXIT_CODE:
            say(
                f"== the process exited with {WAITING_EXIT_CODE}: the session waits for a human. The tour answers "
                f"for you: {command_prefix(store_url)} send {session_id} {APPROVAL} true"
            )
            repo.send(session_id, APPROVAL, True, by="demo tour")
        else:
            if code == 0:
                sp = command_prefix(store_url)
                say(
                    f"\nlook inside: {sp} history {session_id} ; {sp} show {session_id}\n"
                    f"step by step: {sp} demo --session my-run --crash-at 5 ; {sp} demo --session my-run"
                )
            return code
    raise SafepointError(f"session {session_id!r} did not finish in 50 runs; lower --crash-rate")
