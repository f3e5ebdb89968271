"""The demo's outside world: its model clients and its outbox file (see `safepoint.demo.agent`).

- `OfflineModel`: deterministic, offline and FAKE (no network, no real LLM); the default.
- `OpenAIModel`: any OpenAI-compatible chat completions endpoint, called with urllib.
- `FlakyModel`: wraps either and fails a share of calls with 503, or 429 with Retry-After, like a busy endpoint.
- `Outbox`: one SQLite file with the `outbox` (one row per idempotency key, counting deliveries), the bill
  (`model_calls`: one row per model call made, also by processes killed later) and the `runs`.
"""

from __future__ import annotations

import json
import os
import random
import re
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ..repository import Repository

TEMPERATURE = 0.2
DEFAULT_DELAY = 0.1
FAKE_PRICE_PER_MILLION = 3.0  # dollars per million tokens the offline model pretends to charge
SYSTEM = "You are a careful research assistant. Use only the sources you are given and cite them."


def bullets(text: str) -> list[str]:
    """The `- item` / `1. item` lines of a model's answer (the whole answer if it has none)."""
    found = [m.group(1).strip() for m in re.finditer(r"^\s*(?:[-*\u2022]|\d+[.)])\s+(.+)$", text, re.M)]
    return found or [text.strip()]


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)  # the usual rough rule: about four characters per token


# --- models -------------------------------------------------------------------------------------------------
@dataclass
class Reply:
    text: str
    tokens: int
    cost: float = 0.0


class Model(Protocol):
    name: str

    def complete(self, task: str, prompt: str, material: dict[str, Any]) -> Reply: ...


class ModelError(Exception):
    """An HTTP error from a model endpoint, real or injected; `status_code` and `headers` as common clients have."""

    def __init__(self, status_code: int, message: str, headers: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.headers = headers or {}


class OfflineModel:
    """A deterministic, offline, FAKE model: no network and no real LLM. It answers from the material it is
    given (picking sentences with figures and topic words), pauses `delay` seconds like a real call, and
    reports a token count estimated from the prompt and answer lengths."""

    name = "offline-fake-model"

    def __init__(self, delay: float = DEFAULT_DELAY) -> None:
        self.delay = delay

    def complete(self, task: str, prompt: str, material: dict[str, Any]) -> Reply:
        if self.delay:
            time.sleep(self.delay)
        text = getattr(self, f"_{task}")(**material)
        tokens = _tokens(prompt) + _tokens(text)
        return Reply(text, tokens, tokens * FAKE_PRICE_PER_MILLION / 1e6)

    def _plan(self, titles: dict[str, str], **_: Any) -> str:
        return "\n".join(f"- {title}: what are the key facts and figures?" for title in titles.values())

    def _extract(self, goal: str, name: str, text: str, **_: Any) -> str:
        title, _, body = text.partition("\n")
        topic = set(re.findall(r"[a-z]{5,}", (goal + " " + title).lower()))
        sentences = re.split(r"(?<=[.!?])\s+", " ".join(body.split()))

        def score(sentence: str) -> float:
            words = set(re.findall(r"[a-z]{5,}", sentence.lower()))
            return 2 * bool(re.search(r"\d", sentence)) + len(words & topic) - len(sentence) / 1000

        best = sorted(range(len(sentences)), key=lambda i: -score(sentences[i]))[:3]
        return "\n".join(f"- {sentences[i]}" for i in sorted(best))

    def _outline(self, titles: dict[str, str], **_: Any) -> str:
        sections = ["Introduction: why heat pumps matter for Europe", *titles.values(), "Conclusion: what to watch"]
        return "\n".join(f"- {section}" for section in sections)

    def _write(self, outline: list[str], notes: dict[str, list[str]], titles: dict[str, str], **_: Any) -> str:
        parts = ["# Heat pumps in Europe: a short report", ""]
        parts += [f"_Drafted by {self.name} (offline, deterministic, not a real LLM) from {len(notes)} sources._", ""]
        intro = (
            "Heat pumps move heat instead of burning fuel, and Europe counts on them to cut the gas and oil "
            f"burnt for heating. This report draws on {len(notes)} sources: " + "; ".join(titles.values()) + "."
        )
        parts += [f"## {outline[0]}", "", intro, ""]
        for name, facts in notes.items():
            parts += [f"## {titles.get(name, name)}", "", " ".join(facts) + f" [{name}]", ""]
        ending = (
            "Sales, subsidies, skills, refrigerants and the grid move together; stable policy is the common thread."
        )
        parts += [f"## {outline[-1]}", "", ending, ""]
        return "\n".join(parts)


class OpenAIModel:
    """An OpenAI-compatible chat completions endpoint (`$SAFEPOINT_DEMO_BASE_URL`, e.g. https://api.openai.com/v1),
    called with urllib. HTTP errors become `ModelError` with the status and headers, so 429 and 5xx retry."""

    def __init__(self, base_url: str, name: str, api_key: str | None = None, timeout: float = 120.0) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.name, self.api_key, self.timeout = name, api_key, timeout

    def complete(self, task: str, prompt: str, material: dict[str, Any]) -> Reply:
        # Imported here: urllib.request brings http, ssl and email, a tenth of every CLI command's start.
        import urllib.error
        import urllib.request

        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
        body = json.dumps({"model": self.name, "temperature": TEMPERATURE, "messages": messages}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                doc = json.load(response)
        except urllib.error.HTTPError as exc:
            raise ModelError(exc.code, f"{self.url} answered {exc.code} {exc.reason}", exc.headers) from None
        except urllib.error.URLError as exc:
            raise ConnectionError(f"cannot reach {self.url}: {exc.reason}") from None
        text = doc["choices"][0]["message"].get("content") or ""
        tokens = (doc.get("usage") or {}).get("total_tokens") or _tokens(prompt) + _tokens(text)
        return Reply(text, int(tokens))


class FlakyModel:
    """Wraps a model and fails a share of its calls the way a busy endpoint does: 503, or 429 with Retry-After."""

    def __init__(self, inner: Model, rate: float, rng: random.Random) -> None:
        self.inner, self.rate, self.rng, self.name = inner, rate, rng, inner.name

    def complete(self, task: str, prompt: str, material: dict[str, Any]) -> Reply:
        if self.rate and self.rng.random() < self.rate:
            if self.rng.random() < 0.5:
                raise ModelError(503, "503 Service Unavailable (injected by --fail-rate)")
            message = "429 Too Many Requests, Retry-After: 1 (injected by --fail-rate)"
            raise ModelError(429, message, {"Retry-After": "1"})
        return self.inner.complete(task, prompt, material)


def model_spec_from_env() -> dict[str, Any]:
    """Which model a new session uses: the endpoint in $SAFEPOINT_DEMO_BASE_URL, else the offline fake."""
    base_url = os.environ.get("SAFEPOINT_DEMO_BASE_URL")
    if base_url:
        return {"kind": "openai", "base_url": base_url, "name": os.environ.get("SAFEPOINT_DEMO_MODEL", "gpt-4o-mini")}
    return {"kind": "offline", "name": OfflineModel.name}


def build_model(spec: dict[str, Any], delay: float) -> Model:
    if spec.get("kind") == "openai":
        return OpenAIModel(spec["base_url"], spec["name"], os.environ.get("OPENAI_API_KEY"))
    return OfflineModel(delay)


# --- the outside world: outbox, bill, runs --------------------------------------------------------------------
class Outbox:
    """The demo's outside world in one SQLite file: the `outbox` the report is sent to (one row per idempotency
    key, counting deliveries), the bill (`model_calls`: one row per model call made) and the `runs`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).resolve()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS outbox (key TEXT PRIMARY KEY, session TEXT, recipient TEXT, subject TEXT,
                body TEXT, deliveries INTEGER NOT NULL, first_at TEXT, last_at TEXT);
            CREATE TABLE IF NOT EXISTS model_calls (id INTEGER PRIMARY KEY, session TEXT, step TEXT, model TEXT,
                tokens INTEGER, pid INTEGER, at TEXT);
            CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY, session TEXT, pid INTEGER, at TEXT,
                from_seq INTEGER, replayed INTEGER, tokens_saved INTEGER);
            """
        )

    def deliver(self, key: str, session: str, recipient: str, subject: str, body: str) -> dict[str, Any]:
        """Send: insert the message under its idempotency key; a second send of the same key counts a duplicate."""
        at = _now()
        self._db.execute(
            "INSERT INTO outbox VALUES (?, ?, ?, ?, ?, 1, ?, ?) ON CONFLICT(key) DO UPDATE SET "
            "deliveries = deliveries + 1, last_at = excluded.last_at",
            (key, session, recipient, subject, body, at, at),
        )
        return self.receipt(key) or {}

    def receipt(self, key: str) -> dict[str, Any] | None:
        """What the outbox knows about `key` (None if nothing was delivered): what reconcile asks."""
        row = self._db.execute("SELECT recipient, first_at FROM outbox WHERE key = ?", (key,)).fetchone()
        return None if row is None else {"key": key, "to": row[0], "delivered_at": row[1], "outbox": str(self.path)}

    def deliveries(self, key: str) -> int:
        row = self._db.execute("SELECT deliveries FROM outbox WHERE key = ?", (key,)).fetchone()
        return row[0] if row else 0

    def bill(self, session: str, step: str, model: str, tokens: int) -> None:
        self._db.execute(
            "INSERT INTO model_calls (session, step, model, tokens, pid, at) VALUES (?, ?, ?, ?, ?, ?)",
            (session, step, model, tokens, os.getpid(), _now()),
        )

    def calls(self, session: str) -> list[tuple[str, int]]:
        """(step, tokens) of every model call made for `session`, oldest first."""
        rows = self._db.execute("SELECT step, tokens FROM model_calls WHERE session = ? ORDER BY id", (session,))
        return [(step, tokens) for step, tokens in rows]

    def record_run(self, session: str, from_seq: int, replayed: int, tokens_saved: int) -> None:
        self._db.execute(
            "INSERT INTO runs (session, pid, at, from_seq, replayed, tokens_saved) VALUES (?, ?, ?, ?, ?, ?)",
            (session, os.getpid(), _now(), from_seq, replayed, tokens_saved),
        )

    def resumes(self, session: str) -> tuple[int, int, int]:
        """(resumes that replayed something, steps replayed, tokens not spent again) over all runs of `session`."""
        row = self._db.execute(
            "SELECT count(*), sum(replayed), sum(tokens_saved) FROM runs WHERE session = ? AND replayed > 0",
            (session,),
        ).fetchone()
        return row[0], row[1] or 0, row[2] or 0

    def close(self) -> None:
        self._db.close()


def _now() -> str:
    return datetime.now(UTC).isoformat()


def default_outbox(repo: Repository) -> Path:
    """Inside a directory store as the hidden `.demo-outbox.db` (the store ignores names that cannot be keys, and
    the outbox goes wherever the store goes), beside a SQLite store's file as `demo-outbox.db`, else here."""
    root = getattr(repo.store, "root", None)
    if isinstance(root, Path):
        return root / ".demo-outbox.db"
    path = getattr(repo.store, "path", None)
    if isinstance(path, Path):
        return path.parent / "demo-outbox.db"
    return Path("demo-outbox.db").resolve()
