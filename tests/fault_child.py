"""Child process for tests/test_faults.py: one save under strace fault injection, reported by exit code.

Prints nothing before the save (strace counts every write), so the injected failure lands inside it.
Exit codes: 3 StorageError (expected), 4 saved, 5 any other exception.
"""

import sys

import safepoint as sp

url, session_id = sys.argv[1], sys.argv[2]
store = sp.open(url)
session = store.session(session_id, schema=dict, lease=False)  # faults aimed at the save alone
session.state["n"] += 1
session.state["log"].append(f"entry {session.state['n']} " + "y" * 3000)
if len(sys.argv) > 3:  # a big new part: a keyframe with dozens of objects (the batched, syncfs path)
    session.state["big"] = ["z" * 1000 + str(i) for i in range(2000)]
try:
    session.save(step="faulty")
except sp.StorageError:
    sys.exit(3)
except BaseException:
    sys.exit(5)
sys.exit(4)
