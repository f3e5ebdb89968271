"""The README's Python snippets run top to bottom, so the quick tour cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_snippets_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_AGENTS_DISABLE_TRACING", "1")  # the SDK would send traces when a key is set
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec", dont_inherit=True), namespace)  # noqa: S102 - our own documentation
    assert namespace["checkpoint"].seq == 1
    printed = capsys.readouterr().out.splitlines()
    # The quick tour's first prints, as its comments say (`ref.size` of b"# Market report\n..." is 19).
    assert printed[0] == "1 writing running"
    assert re.fullmatch(r"sha256:[0-9a-f]{8} 19", printed[1]), printed[:2]
    assert namespace["fork"].parent == {"session": "report-42", "seq": 1}
    assert len(namespace["charged"]) == 1  # Pydantic AI: the resumed run did not charge again
    assert namespace["reloaded_chat"].state == {"topic": "shoes", "user:plan": "pro"}  # ADK: temp: state not stored
    support = namespace["session"].repository.load("support-42")  # the OpenAI Agents SDK section
    assert support.status == "completed" and [i.get("type") for i in support.state["items"]][-3:] == [
        "function_call",
        "function_call_output",
        "message",
    ]


def test_readme_names_the_two_setup_commands_and_ci_uses_the_test_one():
    text = README.read_text()
    assert "safepoint demo" in text
    assert "bash scripts/test.sh" in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in ci
