"""A manifest stored under another artifact's name (damage, or a hostile bundle) is never read as that artifact.

The attack: `artifacts/<sha256 of C>` holds the manifest of D. Before the fix a victim reading C got D's bytes,
with no error, and fsck said ok. Written here through the raw store API, as an imported bundle would.
"""

from __future__ import annotations

import hashlib
import random
import warnings
from pathlib import Path

import pytest

import safepoint as sp
from safepoint.core import artifacts, codec
from safepoint.errors import ArtifactMismatch, CorruptCheckpoint, SafepointWarning

C = b"the victim's quarterly report\n" * 40
D = b"the attacker's replacement!!\n" * 40 + b"x" * 40  # the same size as C
assert len(C) == len(D)


def key_of(content: bytes) -> str:
    return "artifacts/" + hashlib.sha256(content).hexdigest()


def ref_of(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


@pytest.fixture(params=["memory", "files", "sqlite"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> sp.Repository:
    url = {"memory": "memory://", "files": str(tmp_path / "store"), "sqlite": f"sqlite:///{tmp_path}/s.db"}
    return sp.open(url[request.param])


def plant(repo: sp.Repository, manifest: dict, under: bytes) -> None:
    """Write `manifest` under the name of `under`, bypassing put_artifact (what a crafted bundle does)."""
    repo.store.put(key_of(under), codec.seal(codec.dumps(manifest)))


def copied_manifest(repo: sp.Repository, content: bytes) -> dict:
    repo.put_artifact("d.txt", content)
    return codec.load_sealed(repo.store.get(key_of(content)) or b"", key_of(content))


def read(repo: sp.Repository, ref: str) -> bytes:
    with repo.open_artifact(ref) as stream:
        return stream.read()


def test_reading_a_name_that_holds_another_files_manifest_raises(repo: sp.Repository) -> None:
    plant(repo, copied_manifest(repo, D), under=C)  # D's manifest, as is: it says sha256 of D
    with pytest.raises(ArtifactMismatch) as caught:
        read(repo, ref_of(C))
    assert caught.value.key == key_of(C)
    assert key_of(C) in str(caught.value) and "hostile bundle" in str(caught.value)
    assert isinstance(caught.value, CorruptCheckpoint)  # callers catching damage catch this too


def test_a_manifest_that_lies_about_its_hash_is_caught_too(repo: sp.Repository) -> None:
    manifest = copied_manifest(repo, D)
    manifest["sha256"] = hashlib.sha256(C).hexdigest()  # a careful attacker claims C's hash for D's one chunk
    plant(repo, manifest, under=C)
    with pytest.raises(ArtifactMismatch, match="another file's content"):
        read(repo, ref_of(C))


def test_a_many_chunk_forgery_with_the_right_hash_and_size_fails_before_read_returns(
    repo: sp.Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(artifacts, "CHUNK_SIZE", 100)
    manifest = copied_manifest(repo, D)
    assert len(manifest["chunks"]) > 1
    manifest["sha256"] = hashlib.sha256(C).hexdigest()
    plant(repo, manifest, under=C)
    with pytest.raises(ArtifactMismatch, match="content hashes to"):
        read(repo, ref_of(C))


def test_a_victim_storing_c_reads_c_back_not_the_planted_bytes(repo: sp.Repository) -> None:
    plant(repo, copied_manifest(repo, D), under=C)
    with pytest.warns(SafepointWarning, match=key_of(C)):
        ref = repo.put_artifact("report.txt", C)  # it just hashed C, so it replaces the planted manifest
    assert ref.ref == ref_of(C)
    assert read(repo, ref.ref) == C
    assert read(repo, ref_of(D)) == D  # the attacker's own artifact is untouched


def test_storing_an_artifact_again_rewrites_nothing(repo: sp.Repository) -> None:
    repo.put_artifact("a", C)
    before = {k: repo.store.get(k) for k in repo.store.list("")}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        repo.put_artifact("b", C)
    assert {k: repo.store.get(k) for k in repo.store.list("")} == before


def test_fsck_names_a_planted_manifest_and_the_checkpoints_it_breaks(repo: sp.Repository) -> None:
    s = repo.session("victim")
    s.put_artifact("report.txt", C)
    s.save(step="attach")
    s.close()
    assert repo.fsck().ok
    plant(repo, copied_manifest(repo, D), under=C)
    report = repo.fsck()
    problems = {p.key: p for p in report.problems}
    assert key_of(C) in problems, report.problems
    assert ("victim", 1) in problems[key_of(C)].broken


def test_fsck_catches_a_many_chunk_forgery(repo: sp.Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artifacts, "CHUNK_SIZE", 100)
    s = repo.session("victim")
    s.put_artifact("report.txt", C)
    s.save(step="attach")
    s.close()
    manifest = copied_manifest(repo, D)
    manifest["sha256"] = hashlib.sha256(C).hexdigest()
    plant(repo, manifest, under=C)
    assert key_of(C) in {p.key for p in repo.fsck().problems}


def test_check_content_verifies_chunks_from_elsewhere_against_the_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check a bundle import runs on members before writing them."""
    monkeypatch.setattr(artifacts, "CHUNK_SIZE", 100)
    repo = sp.open("memory://")
    manifest = copied_manifest(repo, C)
    pieces = [C[i : i + 100] for i in range(0, len(C), 100)]
    artifacts.check_content(key_of(C), manifest, pieces)
    with pytest.raises(ArtifactMismatch):
        artifacts.check_content(key_of(D), manifest, pieces)
    with pytest.raises(ArtifactMismatch):
        artifacts.check_content(key_of(C), manifest, [*pieces[:-1], pieces[-1][::-1]])
    with pytest.raises(ArtifactMismatch):
        artifacts.check_content(key_of(C), manifest, pieces[:-1])
    for bad in ({"kind": "artifact"}, [], {"kind": "artifact", "sha256": key_of(C)[10:], "size": 1, "chunks": "x"}):
        with pytest.raises(ArtifactMismatch):
            artifacts.check_manifest(key_of(C), bad)


def test_random_artifacts_still_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artifacts, "CHUNK_SIZE", 64)
    repo = sp.open("memory://")
    rng = random.Random(3)
    for size in (0, 1, 63, 64, 65, 640, 1000):
        data = rng.randbytes(size)
        assert read(repo, repo.put_artifact("x", data).ref) == data
