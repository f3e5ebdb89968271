"""Adapters that let other agent frameworks keep their state in a safepoint store.

- `safepoint.integrations.langgraph.SafepointSaver`: a LangGraph checkpointer (`pip install safepoint[langgraph]`).

Each adapter lives in its own module and imports its framework only there, so `import safepoint` never needs it.
"""
