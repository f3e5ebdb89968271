"""Sessions written by the framework adapters show in the dashboard like native ones: listed with their agent,
and their session page rendering their timeline and state."""

from __future__ import annotations

import asyncio
from pathlib import Path

from services import require_module

import safepoint as sp

require_module("starlette", "dashboard")
require_module("agents", "openai-agents")
require_module("google.adk", "adk")
from google.adk.events import Event  # noqa: E402
from google.genai import types  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from safepoint.dashboard import Settings, create_app  # noqa: E402
from safepoint.integrations.adk import SafepointSessionService  # noqa: E402
from safepoint.integrations.openai_agents import SafepointSession  # noqa: E402


def test_adapter_sessions_are_listed_and_shown(tmp_path: Path) -> None:
    url = str(tmp_path / "store")

    async def write() -> str:
        chat = SafepointSession("support-7", url)
        await chat.add_items([{"role": "user", "content": "where is order 42?"}])
        await chat.add_items([{"role": "assistant", "content": "order 42 shipped on Monday"}])
        service = SafepointSessionService(url)
        adk = await service.create_session(app_name="shop", user_id="ann", state={"plan": "pro"})
        reply = types.Content(role="model", parts=[types.Part(text="hello Ann")])
        await service.append_event(adk, Event(author="assistant", invocation_id="i-1", content=reply))
        return adk.id

    adk_id = asyncio.run(write())
    repo = sp.open(url)
    ids = {info.id: info.agent for info in repo.sessions()}
    adk_session = next(sid for sid in ids if sid.endswith(adk_id))
    assert ids["support-7"] == "openai-agents"

    web = TestClient(create_app(Settings(), repo=repo), base_url="http://127.0.0.1")
    listing = web.get("/sessions")
    assert listing.status_code == 200
    assert 'data-session="support-7"' in listing.text and f'data-session="{adk_session}"' in listing.text
    chat_page = web.get("/sessions/support-7")
    assert chat_page.status_code == 200 and "order 42 shipped on Monday" in chat_page.text
    adk_page = web.get(f"/sessions/{adk_session}")
    assert adk_page.status_code == 200 and "hello Ann" in adk_page.text
