"""Adapters that let other agent frameworks keep their state in a safepoint store.

- `safepoint.integrations.langgraph.SafepointSaver`: a LangGraph checkpointer (`pip install safepoint[langgraph]`).
- `safepoint.integrations.pydantic_ai`: pydantic-ai-harness's `StepStore` and `MemoryStore`, and `DurableTools`
  (`pip install safepoint[pydantic-ai]`).
- `safepoint.integrations.adk.SafepointSessionService`: a Google ADK session service (`pip install safepoint[adk]`).

Each adapter lives in its own module and imports its framework only there, so `import safepoint` never needs it.
"""
