"""A toy research agent for `safepoint demo`: six steps, a checkpoint after each, resumable after a crash.

It shows the main job in a few seconds: run it with `--crash-at 3`, the process is killed right after step 3
is saved; run it again with the same `--session` and it skips the steps its state says are done.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable

from .errors import SafepointError
from .model import Status
from .repository import Repository

AGENT = "demo-researcher"

#: (step name, what the step pretends to do). Each would be an expensive model or tool call in a real agent.
STEPS = [
    ("plan", "split the question into three sub-questions"),
    ("search", "searched the web: 12 sources found"),
    ("read", "read the 5 most relevant sources"),
    ("extract", "extracted prices and efficiency figures"),
    ("draft", "drafted a 2-page report"),
    ("review", "checked every figure against its source"),
]


def run(
    repo: Repository,
    session_id: str,
    *,
    crash_at: int | None = None,
    delay: float = 0.25,
    say: Callable[[str], None] = print,
) -> int:
    """Run (or resume) the demo agent in session `session_id`; return the seq of its last checkpoint.

    With `crash_at=N` the process kills itself with SIGKILL right after step N is saved: no cleanup, no
    `finally`, exactly like a machine losing power or an OOM kill.
    """
    if repo.exists(session_id) and repo.info(session_id).agent != AGENT:
        raise SafepointError(f"session {session_id!r} was not made by the demo; pick another --session")
    with repo.session(session_id, agent=AGENT, tags=["demo"]) as s:
        mission = s.state.mission
        if s.is_new:
            mission.goal = "Write a short report comparing heat pump prices in Europe"
            mission.remaining = [name for name, _ in STEPS]
            say(f"new session {session_id} in {repo.url}")
        elif not mission.remaining:
            say(f"session {session_id} finished at seq {s.seq}: nothing left to do")
            return s.seq
        else:
            done = mission.done
            say(f"resumed at seq {s.seq}: skipping {len(done)} steps already done ({', '.join(done)})")
        for number, (name, result) in enumerate(STEPS, start=1):
            if name in mission.done:
                continue
            time.sleep(delay)  # the expensive part: a model call, a web search...
            mission.done.append(name)
            mission.remaining.remove(name)
            s.state.data.setdefault("notes", []).append(f"{name}: {result}")
            status = Status.RUNNING if mission.remaining else Status.COMPLETED
            checkpoint = s.save(step=name, status=status)
            say(f"step {number}/{len(STEPS)} {name}: {result} (saved seq {checkpoint.seq})")
            if crash_at == number:
                say(
                    f"crash: killing this process (SIGKILL) after step {number}; run the same command "
                    f"without --crash-at to resume (safepoint demo --session {session_id})"
                )
                sys.stdout.flush()
                sys.stderr.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        return s.seq
