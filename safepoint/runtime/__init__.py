"""Inside one durable run: steps, side effects, human input, retries, drift checks, leases and wake-ups.

These modules work on the small `RunContext` interface (runtime.context) that `safepoint.Session` provides,
so the session imports them and they never import the session back. Running agents (`run`, `Worker`) is
`safepoint.agents`, above the repository.
"""
