"""`DurableTools`: a tool call that already ran returns its recorded result instead of running again.

pydantic-ai-harness's ledger says which calls started and finished, but leaves deduplication to the caller: a run
resumed from an `interrupted` snapshot executes its pending calls again, and one resumed from an earlier
`complete` snapshot asks the model again, which usually asks for the same call. This capability wraps every tool
execution with safepoint's effect rule (runtime/effects.py): the intent is stored before the call, the result
after it, under a key naming *the same call at the same point of the conversation*:

    sha256(conversation id, position of the model response in the history, tool name, arguments, ordinal)

(the ordinal tells apart identical calls in one response). Provider tool-call ids are not part of it: a model
asked again may give the same call a new id. Records live at `pydantic-ai/tools/<conversation>/<call>`.

- done: the recorded result (as JSON) is returned and the tool does not run.
- intent only: the process stopped mid-call, nobody knows whether it happened: `ToolCallInDoubt`, unless the
  tool is named in `retry_in_doubt` (safe to run twice) or someone calls `resolve(key, ...)`.
- failed (the tool raised an Exception): it runs again when asked again; it told us it did not finish. A
  cancellation, KeyboardInterrupt or exit mid-call is not the tool's answer: the call stays in doubt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from pydantic_ai import RunContext
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.messages import ModelResponse, ToolCallPart
from pydantic_ai.tools import ToolDefinition
from pydantic_core import to_jsonable_python

from ..core import codec
from ..errors import ConflictError, SafepointError
from ..runtime.effects import NOT_DONE
from ..stores import Store

_PREFIX = "pydantic-ai/tools/"


class ToolCallInDoubt(SafepointError):
    """A tool call started before a crash and never finished: it may or may not have happened."""

    def __init__(self, key: str, tool: str, args: dict[str, Any], at: str) -> None:
        self.key = key
        super().__init__(
            f"tool call {tool}({codec.dumps(args).decode()}) started at {at} but its result was never recorded "
            f"(the process stopped mid-call; record {key}). It is not run again blindly: check whether it "
            f"happened, then call DurableTools.resolve({key!r}, result=...) if it did or resolve({key!r}) to run "
            f"it again, or name {tool!r} in retry_in_doubt= if running it twice is harmless"
        )


def _hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def call_key(conversation_id: str, messages: list[Any], call: ToolCallPart) -> str:
    """The store key of one tool call: the same call at the same point of the same conversation."""
    args = codec.dumps(call.args_as_dict()).decode()
    position, ordinal = len(messages), 0
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, ModelResponse) and any(
            isinstance(p, ToolCallPart) and p.tool_call_id == call.tool_call_id for p in message.parts
        ):
            position = index
            for part in message.parts:
                if part is call or (isinstance(part, ToolCallPart) and part.tool_call_id == call.tool_call_id):
                    break
                if isinstance(part, ToolCallPart) and part.tool_name == call.tool_name:
                    ordinal += codec.dumps(part.args_as_dict()).decode() == args
            break
    return f"{_PREFIX}{_hash(conversation_id)[:32]}/{_hash(str(position), call.tool_name, args, str(ordinal))[:40]}"


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class DurableTools(AbstractCapability[Any]):
    """Record every tool call's result in a safepoint store so a resumed run never repeats a finished call.

    `DurableTools(steps)` with the `SafepointStepStore` the run persists to (or any safepoint `Store`).
    """

    store: Any
    retry_in_doubt: Collection[str] = field(default=())

    def __post_init__(self) -> None:
        target = getattr(self.store, "store", self.store)
        if not isinstance(target, Store):
            raise SafepointError(
                f"DurableTools needs a SafepointStepStore or a safepoint Store, got {type(self.store).__name__}"
            )
        self._store: Store = target

    async def wrap_tool_execute(
        self,
        ctx: RunContext[Any],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: Any,
        handler: Any,
    ) -> Any:
        conversation = ctx.conversation_id or ctx.run_id or ""
        key = call_key(conversation, list(ctx.messages), call)
        recorded = await anyio.to_thread.run_sync(self._begin, key, call, conversation, ctx.run_id)
        if recorded is not NOT_DONE:
            return recorded
        try:
            result = await handler(args)
        except Exception as exc:  # the tool said it failed; a cancellation or exit leaves the call in doubt
            await anyio.to_thread.run_sync(self._finish, key, {"status": "failed", "error": repr(exc)})
            raise
        plain = codec.loads(codec.dumps(to_jsonable_python(result), root=f"result of tool {call.tool_name}"))
        await anyio.to_thread.run_sync(self._finish, key, {"status": "done", "result": plain})
        return plain

    # --- the records --------------------------------------------------------------------------------------
    def _read(self, key: str) -> tuple[bytes | None, dict[str, Any] | None]:
        blob = self._store.get(key)
        return blob, (codec.load_sealed(blob, key) if blob is not None else None)

    def _begin(self, key: str, call: ToolCallPart, conversation: str, run_id: str | None) -> Any:
        """The recorded result of a finished call, or NOT_DONE once its intent is stored (it may run now)."""
        intent = {
            "status": "intent",
            "tool": call.tool_name,
            "args": call.args_as_dict(),
            "conversation_id": conversation,
            "run_id": run_id,
            "tool_call_id": call.tool_call_id,
            "at": _now(),
            "attempt": 1,
        }
        blob, record = self._read(key)
        if record is None:
            if self._store.put_if_absent(key, codec.seal(codec.dumps(intent))):
                return NOT_DONE
            blob, record = self._read(key)  # another process started the same call first
            assert record is not None
        if record["status"] == "done":
            return record["result"]
        if record["status"] == "intent" and call.tool_name not in self.retry_in_doubt:
            raise ToolCallInDoubt(key, record["tool"], record["args"], record["at"])
        intent["attempt"] = int(record.get("attempt", 1)) + 1
        if not self._store.put(key, codec.seal(codec.dumps(intent)), expect=blob):
            raise ConflictError(
                f"tool call record {key} changed while this run read it: another process is "
                "running the same conversation; stop one of them and resume again"
            )
        return NOT_DONE

    def _finish(self, key: str, outcome: dict[str, Any]) -> None:
        blob, record = self._read(key)
        if record is None:
            raise ConflictError(f"tool call record {key} vanished while its call ran; was it resolved meanwhile?")
        done = {**record, **outcome, "ended_at": _now()}
        if not self._store.put(key, codec.seal(codec.dumps(done)), expect=blob):
            raise ConflictError(
                f"tool call record {key} changed while its call ran: another process is running the same conversation"
            )

    def resolve(self, key: str, *, result: Any = NOT_DONE) -> None:
        """Settle an in-doubt call: with `result`, it happened (later runs get that result); without, run it
        again when the resumed run asks for it."""
        blob, record = self._read(key)
        if record is None:
            raise SafepointError(f"no tool call is recorded under {key}; copy the key from the ToolCallInDoubt error")
        if result is NOT_DONE:
            settled = {**record, "status": "failed", "error": "resolved: run it again", "ended_at": _now()}
        else:
            settled = {**record, "status": "done", "result": to_jsonable_python(result), "resolved": True}
        if not self._store.put(key, codec.seal(codec.dumps(settled)), expect=blob):
            raise ConflictError(f"tool call record {key} changed while it was being resolved; read it and retry")

    def in_doubt(self, conversation_id: str) -> list[dict[str, Any]]:
        """The calls of a conversation that started and never finished, each with its `key`."""
        prefix = f"{_PREFIX}{_hash(conversation_id)[:32]}/"
        found = []
        for key in self._store.list(prefix):
            _, record = self._read(key)
            if record is not None and record["status"] == "intent":
                found.append({"key": key, **record})
        return found
