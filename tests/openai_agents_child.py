"""A support agent run by the OpenAI Agents SDK's Runner on a SafepointSession, in a process of its own.

    python openai_agents_child.py STORE SESSION start|resume TOOL_LOG [KILL_AT_MODEL_CALL]

`start` runs it durably on "Cancel order 42"; `resume` resumes the session's run. The model (the offline
PlannedToolsModel) looks the order up, then cancels it; `cancel_order` needs approval. Each tool run appends a
line to TOOL_LOG (so the test counts executions across processes). With KILL_AT_MODEL_CALL=N the process SIGKILLs
itself when this process's Nth model call starts: between turns, after the earlier turns were saved. Prints one
JSON line: the pending approvals' names and the final output.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from agents import Agent, function_tool  # noqa: E402
from openai_agents_model import PlannedToolsModel  # noqa: E402

from safepoint.integrations.openai_agents import SafepointSession, resume, run  # noqa: E402

store, session_id, mode, tool_log = sys.argv[1:5]
kill_at = int(sys.argv[5]) if len(sys.argv) > 5 else 0


def logged(line: str) -> None:
    with open(tool_log, "a") as out:
        out.write(line + "\n")
        out.flush()
        os.fsync(out.fileno())


@function_tool
def lookup_order(order_id: int) -> str:
    logged(f"lookup_order {order_id}")
    return f"order {order_id}: shipped"


@function_tool(needs_approval=True)
def cancel_order(order_id: int) -> str:
    logged(f"cancel_order {order_id}")
    return f"order {order_id}: cancelled"


class KillingModel(PlannedToolsModel):
    async def get_response(self, *args: Any, **kwargs: Any) -> Any:
        if len(self.calls) + 1 == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return await super().get_response(*args, **kwargs)


model = KillingModel([("lookup_order", {"order_id": 42}), ("cancel_order", {"order_id": 42})], reply="done")
agent = Agent(name="support", instructions="Help with orders.", model=model, tools=[lookup_order, cancel_order])


async def main() -> None:
    session = SafepointSession(session_id, store)
    if mode == "start":
        result = await run(agent, "Cancel order 42", session=session)
    else:
        result = await resume(agent, session=session)
    names = [item.call_id for item in result.interruptions]
    print(json.dumps({"interruptions": names, "final": None if names else result.final_output}))


asyncio.run(main())
