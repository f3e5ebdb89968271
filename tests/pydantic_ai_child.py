"""A harnessed Pydantic AI agent run in a child process, for tests/test_pydantic_ai_crash.py.

    python pydantic_ai_child.py STORE WORKDIR crash      run until `ship` starts, then hang (the test SIGKILLs it)
    python pydantic_ai_child.py STORE WORKDIR resume     resume the crashed run in this new process
    python pydantic_ai_child.py STORE WORKDIR strict     the same, without allowing an in-doubt call to run again

The model (Pydantic AI's FunctionModel: no network) asks for two tools in one response, `charge` and `ship`; each
appends its name to WORKDIR/effects when it really runs, so the test can count side effects.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from pydantic_ai import Agent
from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai_harness import StepPersistence
from pydantic_ai_harness.step_persistence import continue_run

from safepoint.integrations.pydantic_ai import DurableTools, SafepointStepStore, ToolCallInDoubt

STORE, WORK, PHASE = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
EFFECTS = WORK / "effects"


def model(messages: list, info: AgentInfo) -> ModelResponse:
    returned = sorted(
        p.tool_name for m in messages if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, ToolReturnPart)
    )
    if not returned:
        calls = [ToolCallPart("charge", {"amount": 7}, tool_call_id="c1"), ToolCallPart("ship", {"order": "o-7"})]
        return ModelResponse(parts=calls)
    return ModelResponse(parts=[TextPart(f"done after {', '.join(returned)}")])


def effect(name: str) -> None:
    with EFFECTS.open("a") as f:
        f.write(name + "\n")


steps = SafepointStepStore(STORE)
retry = ("ship",) if PHASE == "resume" else ()
agent = Agent(
    FunctionModel(model),
    capabilities=[
        StepPersistence(store=steps, agent_name="shop", capture_frontier=True),
        DurableTools(steps, retry_in_doubt=retry),
    ],
)


@agent.tool_plain
async def charge(amount: int) -> str:
    effect("charge")
    return f"charged {amount}"


@agent.tool_plain
async def ship(order: str) -> str:
    if PHASE == "crash":
        # Wait until charge's result is recorded, then hang mid-call: the test kills this process here.
        while "charge" not in (EFFECTS.read_text() if EFFECTS.exists() else ""):
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        (WORK / "shipping").write_text("started")
        time.sleep(600)
    effect("ship")
    return f"shipped {order}"


async def main() -> None:
    if PHASE == "crash":
        await agent.run("buy and ship order o-7", conversation_id="order-7")
        return
    crashed = (await steps.list_runs(conversation_id="order-7"))[0]  # the first run: the one killed
    unresolved = [e.tool_name for e in await steps.list_unresolved_tool_effects(run_id=crashed.run_id)]
    history = await continue_run(steps, run_id=crashed.run_id, include_interrupted=True)
    try:
        result = await agent.run(message_history=history, conversation_id="order-7")
    except ToolCallInDoubt as exc:
        print(json.dumps({"in_doubt": str(exc), "unresolved": unresolved}))
        sys.exit(3)
    print(json.dumps({"output": result.output, "unresolved": unresolved, "crashed": crashed.run_id}))


asyncio.run(main())
