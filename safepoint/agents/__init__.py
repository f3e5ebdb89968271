"""Running agents: the `@agent` registry and `run()` (runner), and the `Worker` that resumes sessions (worker).

This layer sits above `Repository`: it opens sessions to run agent functions in them. What happens inside
one run (steps, effects, waits, retries, leases) is `safepoint.runtime`, below the session.
"""
