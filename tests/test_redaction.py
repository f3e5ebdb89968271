"""Redaction: planted credentials never reach the store's bytes, on any backend; ordinary data is left alone."""

from __future__ import annotations

import base64
import hashlib
import random
import uuid

import pytest
import zstandard
from backends import KINDS, Backend, make_backend  # noqa: F401 - fixture

import safepoint as sp
from safepoint.core import credentials
from safepoint.core.redact import InvalidRedactPath

pytestmark = pytest.mark.filterwarnings("ignore::safepoint.errors.SafepointWarning")  # Redis without disk

_rng = random.Random(16)
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _token(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


def _jwt() -> str:
    def part(doc: bytes) -> str:
        return base64.urlsafe_b64encode(doc).rstrip(b"=").decode()

    header, payload = part(b'{"alg":"HS256","typ":"JWT"}'), part(b'{"sub":"u-77","exp":1900000000}')
    return f"{header}.{payload}.{_token(43)}"


_PEM_BODY = "\n".join(_token(64, _ALNUM + "+/") for _ in range(6))

# 20 secrets, each (format the table must name, the secret as an agent would hold it).
SECRETS: list[tuple[str, str]] = [
    ("openai", "sk-proj-" + _token(48)),
    ("openai", "sk-" + _token(48)),
    ("openai", "sk-svcacct-" + _token(40)),
    ("anthropic", "sk-ant-api03-" + _token(80)),
    ("google", "AIza" + _token(35)),
    ("aws_access_key_id", "AKIA" + _token(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")),
    ("aws_access_key_id", "ASIA" + _token(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")),
    ("github", "ghp_" + _token(36)),
    ("github", "gho_" + _token(36)),
    ("github", "github_pat_" + _token(22) + "_" + _token(59)),
    ("slack", "xoxb-" + _token(12, "0123456789") + "-" + _token(13, "0123456789") + "-" + _token(24)),
    ("slack", "xoxp-" + _token(11, "0123456789") + "-" + _token(30)),
    ("slack", "xapp-1-A" + _token(10) + "-" + _token(20)),
    ("jwt", _jwt()),
    ("private_key", f"-----BEGIN PRIVATE KEY-----\n{_PEM_BODY}\n-----END PRIVATE KEY-----"),
    ("private_key", f"-----BEGIN RSA PRIVATE KEY-----\n{_PEM_BODY[::-1]}\n-----END RSA PRIVATE KEY-----"),
    ("private_key", f"-----BEGIN OPENSSH PRIVATE KEY-----\n{_PEM_BODY.lower()}\n-----END OPENSSH PRIVATE KEY-----"),
    ("stripe", "sk_live_" + _token(32)),
]
# Labelled ones: the label stays readable, the secret goes.
BEARER = _token(40, _ALNUM + "-._")
AWS_SECRET = _token(40, _ALNUM + "/+")
SECRETS += [
    ("bearer", f"Authorization: Bearer {BEARER}"),
    ("aws_secret_access_key", f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}"),
]
# What a raw scan looks for: the secret part of each (the labelled ones without their label).
# (JSON escapes a newline, so a PEM key is looked for by its longest line.)
NEEDLES = [max(s.split("\n"), key=len) for _, s in SECRETS[:-2]] + [BEARER, AWS_SECRET]
assert len(NEEDLES) == 20 and len(set(NEEDLES)) == 20

# Ordinary data that must come back unchanged: prose, ids, hashes, base64, and near-misses of every format.
ORDINARY = [
    "hello world",
    "The bearer of the letter asked for a task-force; ask the desk about sk-learn and skim the risk-free notes.",
    "report-42",
    str(uuid.UUID(int=1234567)),
    hashlib.sha256(b"x").hexdigest(),
    hashlib.sha1(b"y").hexdigest(),
    hashlib.md5(b"z").hexdigest(),  # noqa: S324 - an ordinary checksum in data
    base64.b64encode(bytes(range(200))).decode(),
    base64.urlsafe_b64encode(hashlib.sha512(b"w").digest()).decode(),
    "sk-short",
    "AKIA-not-a-key",
    "ghp_tooshort",
    "eyJhbGciOiJIUzI1NiJ9",  # a JWT header alone
    "xoxb-",
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----",
    "bearer token expired",
    "https://example.com/search?q=agents&page=2",
    "user@example.com",
    "AIza is how Google keys start",
    "the sha256 is 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
]


def scannable(raw: bytes) -> bytes:
    """The raw bytes plus every zstd frame in them decompressed: a secret inside a compressed record counts."""
    out = [raw]
    start = raw.find(b"\x28\xb5\x2f\xfd")
    while start != -1:
        try:
            stream = zstandard.ZstdDecompressor().decompressobj()
            out.append(stream.decompress(raw[start : start + 16 * 1024 * 1024]))
        except zstandard.ZstdError:
            pass
        start = raw.find(b"\x28\xb5\x2f\xfd", start + 1)
    return b"\n".join(out)


def found(backend: Backend, extra: bytes = b"") -> list[str]:
    data = scannable(backend.raw_bytes()) + scannable(extra)
    # Each needle, and its middle 16 characters (a partial leak is a leak too).
    return [n for n in NEEDLES if n.encode() in data or n[len(n) // 2 - 8 : len(n) // 2 + 8].encode() in data]


def plant(repo: sp.Repository, tmp_path) -> bytes:  # noqa: ANN001
    """Put the 20 secrets into state, step outputs, effect results, artifact metadata and checkpoint metadata;
    return the bytes of an exported bundle of the session."""
    quarters = [SECRETS[i::4] for i in range(4)]
    with repo.session("planted", agent="researcher") as s:
        s.state.data["config"] = {f"key{i}": secret for i, (_, secret) in enumerate(quarters[0])}
        s.state.model.prompts["system"] = "Use " + quarters[0][0][1] + " for the API."
        s.save(step="configure")
        s.step("fetch", lambda: {"headers": [secret for _, secret in quarters[1]]})
        s.effect("deploy", lambda: {"output": "\n".join(secret for _, secret in quarters[2])})
        s.put_artifact("notes.txt", b"an ordinary artifact")
        s.state.artifacts[-1].source = {f"k{i}": secret for i, (_, secret) in enumerate(quarters[3][:-1])}
        s.state.data["aws"] = {"aws_secret_access_key": AWS_SECRET}
        s.save(step="artifact", note=quarters[3][0][1])
        s.state.mission.done.append(quarters[1][0][1])  # a secret again, in a delta after a keyframe
        s.save(step="again")
    bundle = tmp_path / "planted.tar"
    repo.export_session("planted", bundle)
    return bundle.read_bytes()


@pytest.mark.parametrize("kind", KINDS)
def test_planted_secrets_are_found_zero_times_by_a_raw_scan_of_the_store(make_backend, kind, tmp_path) -> None:  # noqa: F811
    backend = make_backend(kind)
    with sp.open(backend.url) as repo:
        bundle = plant(repo, tmp_path)
        state = repo.load("planted").state
        runtime = repo.load("planted").runtime
    leaks = found(backend, bundle)
    print(f"{kind}: planted {len(NEEDLES)} secrets, found {len(leaks)} by the raw scan")
    assert leaks == []
    # Each came back as a marker naming its format, the labelled ones with their label kept.
    text = str(state) + str(runtime)
    for name, _ in SECRETS:
        assert f"[redacted:{name}:" in text
    assert "Authorization: Bearer [redacted:bearer:" in text


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_the_scan_finds_every_secret_when_redaction_is_turned_off(make_backend, kind, tmp_path) -> None:  # noqa: F811
    backend = make_backend(kind)
    with sp.open(backend.url, redact_secrets=False) as repo:
        plant(repo, tmp_path)
    assert len(found(backend)) == 20  # the scan is able to see them: the zero above is real


def test_every_planted_secret_is_recognised_by_its_format() -> None:
    for name, secret in SECRETS:
        spans = list(credentials.find(f"before {secret} after"))
        assert [s[2] for s in spans] == [name], secret


def test_ordinary_text_ids_hashes_and_base64_are_not_redacted() -> None:
    repo = sp.open("memory://")
    with repo.session("plain", schema=dict) as s:
        s.state["items"] = list(ORDINARY)
        s.state["by_key"] = {text[:40]: text for text in ORDINARY}
        s.save()
        s.step("echo", lambda: ORDINARY)
    checkpoint = repo.load("plain")
    assert checkpoint.state["items"] == ORDINARY
    assert checkpoint.state["by_key"] == {text[:40]: text for text in ORDINARY}
    assert checkpoint.runtime["steps"]["echo"]["output"] == ORDINARY
    for text in ORDINARY:
        assert list(credentials.find(text)) == [], text


def test_the_same_secret_gets_the_same_fingerprint_and_another_a_different_one() -> None:
    repo = sp.open("memory://")
    key_a, key_b = SECRETS[0][1], SECRETS[1][1]
    with repo.session("s", schema=dict) as s:
        s.state.update(a=key_a, again=key_a, b=key_b)
        s.save()
    state = repo.load("s").state
    assert state["a"] == state["again"] != state["b"]
    assert state["a"].startswith("[redacted:openai:")


def test_path_rules_redact_any_value_and_leave_the_live_state_alone() -> None:
    repo = sp.open("memory://", redact=["model.api_key", "data.env.*", "tools.results[0]"])
    with repo.session("s") as s:
        s.state.model.api_key = "plain-password-123"
        s.state.data["env"] = {"DB_PASSWORD": "hunter2", "PORT": 5432, "nested": {"x": [1, 2]}}
        s.state.data["kept"] = "hunter2 is fine outside the rules"
        s.state.tools.results = {"0": "not an index: kept"}
        s.save()
        assert s.state.data["env"]["DB_PASSWORD"] == "hunter2"  # the agent keeps its values in memory
        s.state.data["env"]["DB_PASSWORD"] = "hunter3"
        s.save()
    state = repo.load("s").state
    assert state["model"]["api_key"].startswith("[redacted:path:")
    assert all(str(v).startswith("[redacted:path:") for v in state["data"]["env"].values())
    assert state["data"]["kept"] == "hunter2 is fine outside the rules"
    assert state["tools"]["results"] == {"0": "not an index: kept"}
    first = repo.load("s", 1).state["data"]["env"]["DB_PASSWORD"]
    assert first != state["data"]["env"]["DB_PASSWORD"]  # a changed secret shows as a changed fingerprint


def test_a_bad_path_rule_is_refused_when_the_store_is_opened() -> None:
    with pytest.raises(InvalidRedactPath, match="not a path step"):
        sp.open("memory://", redact=["data..x"])
