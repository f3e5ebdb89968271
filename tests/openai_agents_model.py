"""A deterministic offline model for the OpenAI Agents SDK tests: a small `agents.models.interface.Model`.

It decides from the input it is given, never from its own memory, so a run resumed in another process (from a saved
conversation or a saved RunState) sees the same model: after the latest user message it calls the planned tools one
per turn, in order, then answers with a message naming the tool outputs it saw. Every call is recorded in `calls`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from agents.items import ModelResponse
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


Call = tuple[str, dict[str, Any]]


class PlannedToolsModel(Model):
    """Calls the `plan`'s tools after each user message, one turn per entry (an entry is a (name, arguments) pair,
    or a list of them, called together in one turn), then replies with the outputs it saw."""

    def __init__(self, plan: list[Call | list[Call]] | None = None, reply: str = "done") -> None:
        self.plan = [entry if isinstance(entry, list) else [entry] for entry in plan or []]
        self.reply = reply
        self.calls: list[list[Any]] = []

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[Any],  # noqa: A002 - the SDK's name
        model_settings: Any,
        tools: list[Any],
        output_schema: Any,
        handoffs: list[Any],
        tracing: Any,
        *,
        previous_response_id: str | None = None,
        conversation_id: str | None = None,
        prompt: Any = None,
        **_: Any,
    ) -> ModelResponse:
        items = [{"role": "user", "content": input}] if isinstance(input, str) else list(input)
        self.calls.append(items)
        users = [i for i, item in enumerate(items) if _field(item, "role") == "user"]
        turn = len(users)
        since = items[users[-1] + 1 :] if users else items
        outputs = [str(_field(item, "output")) for item in since if _field(item, "type") == "function_call_output"]
        usage = Usage(requests=1, input_tokens=10 * len(items), output_tokens=5, total_tokens=10 * len(items) + 5)
        step, answered = 0, 0  # the plan entries whose every call has its output
        while step < len(self.plan) and answered + len(self.plan[step]) <= len(outputs):
            answered += len(self.plan[step])
            step += 1
        if step < len(self.plan):
            calls = [
                ResponseFunctionToolCall(
                    id=f"fc-{turn}-{step + 1}{'abcdefgh'[n] if n else ''}",
                    call_id=f"call-{turn}-{step + 1}{'abcdefgh'[n] if n else ''}",
                    type="function_call",
                    name=name,
                    arguments=json.dumps(arguments),
                )
                for n, (name, arguments) in enumerate(self.plan[step])
            ]
            return ModelResponse(output=calls, usage=usage, response_id=None)
        text = f"{self.reply}: " + "; ".join(outputs) if outputs else self.reply
        message = ResponseOutputMessage(
            id=f"msg-{turn}",
            type="message",
            role="assistant",
            status="completed",
            content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
        )
        return ModelResponse(output=[message], usage=usage, response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError("these tests run Runner.run, not Runner.run_streamed")
