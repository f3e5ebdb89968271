#!/usr/bin/env python3
"""Wasted tokens: 20-step workflows that fail 15% and 30% of the time, resumed by safepoint vs restarted.

    python benchmarks/waste.py                     # 2,000 workflows per failure rate (about a minute)
    python benchmarks/waste.py --workflows 200     # a quick run
    python benchmarks/waste.py --out section.md    # also write the results as a Markdown section

The seed guide says long-running agent tasks fail 15-30% of the time and that checkpoints cut the tokens
wasted on restarts by at least 60%; the target here is at least 90%. The model:

- A workflow has 20 steps; each costs a random 1,000-3,000 tokens (an LLM call). Its failure-free cost is
  the sum.
- A run fails with probability `rate` (15% or 30%): each step execution fails independently with the
  probability p where 1 - (1 - p) ** 20 = rate, so a failure strikes at a random step. The failing step's
  tokens are spent and lost (the process died after the call).
- Both strategies face the same failures: each workflow has one seeded random stream and every step
  execution, in either strategy, takes the next number from it.
- **Restart from scratch**: after a failure the workflow runs again from step 1.
- **safepoint**: a real session on a memory store. Each step is `s.step(...)`; a failure raises inside it,
  `sp.run` returns `failed` with the step recorded, and the workflow is run again with `sp.run`, which
  replays the recorded steps from the checkpoint and re-runs only the failed one.

Waste is the tokens spent beyond the failure-free cost. The reduction is 1 - waste(safepoint) / waste(restart).
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import describe_machine, md_table, parser, verdict, write_out  # noqa: E402

import safepoint as sp  # noqa: E402

STEPS = 20
TARGET = 0.90
SEED_CLAIM = 0.60


class WorkerCrashed(Exception):
    """The failure injected into a step (not transient: nothing retries it in place)."""


@dataclass
class Totals:
    failure_free: int = 0
    restart_spent: int = 0
    restart_failures: int = 0
    safepoint_spent: int = 0
    safepoint_failures: int = 0
    failed_workflows: int = 0  # workflows whose first run failed

    @property
    def restart_waste(self) -> int:
        return self.restart_spent - self.failure_free

    @property
    def safepoint_waste(self) -> int:
        return self.safepoint_spent - self.failure_free

    @property
    def reduction(self) -> float:
        return 1 - self.safepoint_waste / self.restart_waste if self.restart_waste else 0.0


def per_step_probability(rate: float, steps: int = STEPS) -> float:
    return 1 - (1 - rate) ** (1 / steps)


def expected_reduction(rate: float, steps: int = STEPS) -> float:
    """What the model predicts: safepoint loses one step per failure, a restart all steps up to the failure."""
    p = per_step_probability(rate, steps)
    safepoint_failures = steps * p / (1 - p)  # each step: geometric number of failed tries
    mean_failed_at = sum(j * (1 - p) ** (j - 1) * p for j in range(1, steps + 1)) / rate
    restart_steps_lost = rate / (1 - rate) * mean_failed_at
    return 1 - safepoint_failures / restart_steps_lost


def restart_from_scratch(costs: list[int], p: float, stream: random.Random) -> tuple[int, int]:
    """Tokens spent and failures when every failure restarts the workflow from its first step."""
    spent = failures = 0
    while True:
        for cost in costs:
            spent += cost
            if stream.random() < p:
                failures += 1
                break
        else:
            return spent, failures


def with_safepoint(repo: sp.Repository, session_id: str, costs: list[int], p: float, stream: random.Random):
    """Tokens spent and failures when the workflow is a safepoint agent resumed after each failure."""
    spent = 0

    def call_model(index: int) -> str:
        nonlocal spent
        spent += costs[index]
        sp.report_usage(tokens=costs[index])
        if stream.random() < p:
            raise WorkerCrashed(f"worker died in step {index + 1}")
        return f"output of step {index + 1}"

    @sp.agent("waste-benchmark")
    def workflow(s: sp.Session) -> int:
        for index in range(len(costs)):
            s.step(f"step-{index + 1}", call_model, index)
        return len(costs)

    failures = 0
    result = sp.run(workflow, session_id, store=repo)
    while result.status == sp.Status.FAILED:
        failures += 1
        result = sp.run(workflow, session_id, store=repo)
    assert result.status == sp.Status.COMPLETED, result
    recorded = repo.load(session_id).runtime["usage"]["tokens"]
    assert recorded == spent, (recorded, spent)  # safepoint's own count agrees with the bill
    return spent, failures


def measure(rate: float, workflows: int, seed: int) -> Totals:
    p = per_step_probability(rate)
    totals = Totals()
    repo = sp.open(f"memory://waste-{rate}")
    master = random.Random(f"{seed}:{rate}")
    for n in range(workflows):
        costs = [master.randint(1000, 3000) for _ in range(STEPS)]
        stream_seed = master.getrandbits(64)
        totals.failure_free += sum(costs)
        spent, failures = restart_from_scratch(costs, p, random.Random(stream_seed))
        totals.restart_spent += spent
        totals.restart_failures += failures
        spent, failures = with_safepoint(repo, f"w{n}", costs, p, random.Random(stream_seed))
        totals.safepoint_spent += spent
        totals.safepoint_failures += failures
        totals.failed_workflows += failures > 0
    repo.close()
    return totals


def report(results: dict[float, Totals], workflows: int, seed: int, seconds: float, command: str) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## Wasted tokens",
        "",
        "`benchmarks/waste.py`: the seed guide's headline claim, measured. Many 20-step workflows (each step an",
        "LLM call of 1,000-3,000 tokens) fail at a per-run rate of 15% and 30%; a failure strikes at a random step",
        "(each step execution fails with the p that gives that per-run rate) and loses the tokens of that step.",
        "Restarting from scratch re-runs every step; with safepoint each workflow is a real session (memory store)",
        "whose steps are `s.step(...)`, re-run with `sp.run` after a failure, replaying the recorded steps. Both",
        "strategies draw their failures from the same seeded stream per workflow. Waste = tokens spent beyond the",
        "failure-free cost. Target: at least 90% less waste than restarting (the seed claims 60%).",
        "",
        f"- Date: {when}; {workflows:,} workflows per rate, seed {seed}, {seconds:.0f} s",
        *(f"- {line}" for line in describe_machine(None)),  # the sessions live in memory
        f"- Command: `{command}`",
        "",
    ]
    rows = []
    for rate, t in results.items():
        free = t.failure_free
        rows.append(
            [f"{rate:.0%}", f"{per_step_probability(rate):.4f}", f"{t.failed_workflows / workflows:.1%}"]
            + [f"{t.restart_failures:,} / {t.safepoint_failures:,}", f"{free:,}"]
            + [
                f"{t.restart_waste:,} ({t.restart_waste / free:.1%})",
                f"{t.safepoint_waste:,} ({t.safepoint_waste / free:.1%})",
            ]
            + [f"**{t.reduction:.1%}**", f"{expected_reduction(rate):.1%}", verdict(t.reduction >= TARGET)]
        )
    lines += md_table(
        ["per-run failure rate", "per-step p", "workflows that failed", "failures (restart / safepoint)"]
        + ["failure-free tokens", "waste, restart from scratch", "waste, safepoint", "waste reduction"]
        + ["expected by the model", "target 90%"],
        rows,
    )
    lines += [
        "",
        "Reading it: a restart throws away every step done before the failure, on average about half the",
        'workflow; safepoint throws away only the step the failure hit. "Expected by the model" is the exact',
        "expectation of this setup (expected failed tries per step p/(1-p) for safepoint, against expected failed",
        "runs rate/(1-rate) times the mean step a run fails at): about 91% at both rates. So the 90% target is met,",
        "but with little room: with ~300-900 failures per row, a single seeded run lands within about one or two",
        "points of the expectation, on either side. Both strategies count the failed step as fully spent; with",
        "retries of transient errors inside a step (`RetryPolicy`), a 429 or 503 retried in place loses no step",
        "(not modelled here: every failure above is a crash).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    options = parser(
        __doc__,
        out="also write the results as a Markdown section to this file",
        strict="exit 1 when the reduction misses the 90%% target",
    )
    options.add_argument("--workflows", type=int, default=2000, help="workflows per failure rate (default 2000)")
    options.add_argument("--rates", type=float, nargs="+", default=[0.15, 0.30], help="per-run failure rates")
    options.add_argument("--seed", type=int, default=42)
    args = options.parse_args()
    started = time.monotonic()
    results = {}
    for rate in args.rates:
        results[rate] = t = measure(rate, args.workflows, args.seed)
        print(
            f"rate {rate:.0%} (expected reduction {expected_reduction(rate):.1%}): failure-free {t.failure_free:,} tokens; waste restart {t.restart_waste:,}, "
            f"safepoint {t.safepoint_waste:,}: {t.reduction:.1%} less waste "
            f"({'PASS' if t.reduction >= TARGET else 'FAIL'} against the 90% target; seed claim {SEED_CLAIM:.0%})",
            flush=True,
        )
    command = "python benchmarks/waste.py " + " ".join(sys.argv[1:])
    section = report(results, args.workflows, args.seed, time.monotonic() - started, command.strip())
    print()
    print(section)
    write_out(section, args.out)
    return 1 if args.strict and any(t.reduction < TARGET for t in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
