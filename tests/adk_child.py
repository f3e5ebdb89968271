"""One turn of a real ADK `Runner` on SafepointSessionService in its own process, for tests/test_adk_runner.py.

    python adk_child.py STORE "add apples"
    ADK_HANG_MARKER=FILE python adk_child.py STORE "add apples"     (hangs in the tool, for a SIGKILL)

The model is a small fake `BaseLlm` (no network): asked with a user message it calls `add_item` with the last
word; given the tool's answer it replies saying how many contents it was sent, so the test can tell the history
of earlier turns (from other processes) reached it. Prints the final reply, the session state and event count.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncGenerator
from pathlib import Path

from google.adk.agents import LlmAgent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import Runner
from google.adk.tools.tool_context import ToolContext
from google.genai import types

from safepoint.integrations.adk import SafepointSessionService


class FakeLlm(BaseLlm):
    model: str = "fake"

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        last = llm_request.contents[-1]
        if any(p.function_response for p in last.parts or []):
            text = f"added; I was sent {len(llm_request.contents)} contents"
            yield LlmResponse(content=types.Content(role="model", parts=[types.Part(text=text)]))
            return
        call = types.FunctionCall(name="add_item", args={"item": last.parts[0].text.split()[-1]})
        yield LlmResponse(content=types.Content(role="model", parts=[types.Part(function_call=call)]))


def add_item(item: str, tool_context: ToolContext) -> dict:
    """Put an item in the user's cart (user-scoped state, shared by all of the user's sessions)."""
    if os.environ.get("ADK_HANG_MARKER"):  # the test kills this process here, mid-tool
        Path(os.environ["ADK_HANG_MARKER"]).write_text(item)
        time.sleep(600)
    cart = [*tool_context.state.get("user:cart", []), item]
    tool_context.state["user:cart"] = cart
    tool_context.state["last_item"] = item
    tool_context.state["temp:scratch"] = "never stored"
    return {"cart": cart}


async def main(store: str, text: str) -> None:
    service = SafepointSessionService(store)
    agent = LlmAgent(name="shopper", model=FakeLlm(), tools=[add_item], instruction="Keep the cart.")
    runner = Runner(agent=agent, app_name="shop", session_service=service)
    if await service.get_session(app_name="shop", user_id="ann", session_id="cart-1") is None:
        await service.create_session(app_name="shop", user_id="ann", session_id="cart-1", state={"app:currency": "EUR"})
    final = None
    message = types.Content(role="user", parts=[types.Part(text=text)])
    async for event in runner.run_async(user_id="ann", session_id="cart-1", new_message=message):
        if event.is_final_response() and event.content and event.content.parts:
            final = event.content.parts[0].text
    session = await service.get_session(app_name="shop", user_id="ann", session_id="cart-1")
    print(json.dumps({"final": final, "state": session.state, "events": len(session.events)}))


asyncio.run(main(sys.argv[1], sys.argv[2]))
