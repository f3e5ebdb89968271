"""safepoint as OpenAI Agents SDK session memory, with durable runs that wait for tool approvals.

    from agents import Agent, Runner
    from safepoint.integrations.openai_agents import SafepointSession, resume, run

    session = SafepointSession("support-42", "./.safepoint")   # any safepoint store: a path, sqlite://, postgresql://
    result = await Runner.run(agent, "Where is my order?", session=session)   # plain session memory

    result = await run(agent, "Cancel order 42", session=session)   # a durable run: a pause for approvals is saved
    # ... `safepoint send support-42 <call id> true`, then in any process:
    result = await resume(agent, session=session)

`SafepointSession` implements the SDK's `Session` protocol (`get_items`, `add_items`, `pop_item`,
`clear_session`, `session_id`, `session_settings`). Each conversation is a safepoint session (agent
`openai-agents`): `safepoint ls / show / history / diff / send` work on it. See docs/openai-agents.md.
"""

try:
    import agents  # noqa: F401 - the OpenAI Agents SDK
except ImportError as exc:
    raise ImportError(
        f"safepoint.integrations.openai_agents needs the OpenAI Agents SDK ({exc}): "
        'pip install "safepoint[openai-agents]"'
    ) from exc

from ._openai_agents_conversation import AGENT
from ._openai_agents_runs import ANSWER_SCHEMA, approval_name, approve, pending_approvals, resume, run
from ._openai_agents_session import SafepointSession

__all__ = [
    "AGENT",
    "ANSWER_SCHEMA",
    "SafepointSession",
    "approval_name",
    "approve",
    "pending_approvals",
    "resume",
    "run",
]
