"""Artifacts: large files stored apart by content hash, streamed in chunks, verified as they are read."""

from __future__ import annotations

import hashlib
import io
import random
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

import safepoint as sp
from safepoint.core import artifacts
from safepoint.errors import ArtifactNotFound, CorruptCheckpoint
from safepoint.stores import FileStore

MiB = 1024 * 1024


@pytest.fixture
def repo() -> sp.Repository:
    return sp.open("memory://")


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(artifacts, "CHUNK_SIZE", 1000)
    return 1000


def read_all(repo: sp.Repository, ref: str, size: int = 65536) -> bytes:
    out = bytearray()
    with repo.open_artifact(ref) as stream:
        while block := stream.read(size):
            out += block
    return bytes(out)


def keys(repo: sp.Repository) -> list[str]:
    return repo.store.list("")


CONTENT = random.Random(1).randbytes(10_000)


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "path", "str path", "file object"])
def test_put_and_read_back_from_every_kind_of_source(
    repo: sp.Repository, tmp_path: Path, small_chunks: int, kind: str
) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(CONTENT)
    source = {
        "bytes": CONTENT,
        "bytearray": bytearray(CONTENT),
        "memoryview": memoryview(CONTENT),
        "path": path,
        "str path": str(path),
        "file object": io.BytesIO(CONTENT),
    }[kind]
    ref = repo.put_artifact("data.bin", source)
    assert ref.ref == "sha256:" + hashlib.sha256(CONTENT).hexdigest()
    assert ref.size == len(CONTENT) and ref.name == "data.bin"
    assert read_all(repo, ref.ref) == CONTENT
    assert read_all(repo, ref.ref, size=333) == CONTENT
    with repo.open_artifact(ref.ref) as stream:
        assert stream.read() == CONTENT


@pytest.mark.parametrize("size", [0, 1, 999, 1000, 1001, 5000])
def test_sizes_around_the_chunk_boundary(repo: sp.Repository, small_chunks: int, size: int) -> None:
    data = CONTENT[:size]
    ref = repo.put_artifact("x", data)
    assert ref.size == size and read_all(repo, ref.ref) == data
    manifest = artifacts.read_manifest(repo.store, ref.ref)
    assert [n for _, n in manifest["chunks"]] == [small_chunks] * (size // small_chunks) + (
        [size % small_chunks] if size % small_chunks else []
    )


def test_identical_content_is_stored_once(repo: sp.Repository, small_chunks: int) -> None:
    first = repo.put_artifact("a.bin", CONTENT)
    stored = keys(repo)
    second = repo.put_artifact("b.bin", io.BytesIO(CONTENT), media_type="application/x-other")
    assert second.ref == first.ref and keys(repo) == stored
    repeated = CONTENT[:small_chunks] * 20
    before = len(repo.store.list("objects/"))
    repo.put_artifact("repeated.bin", repeated)
    assert len(repo.store.list("objects/")) == before  # its one distinct chunk is already stored


def test_two_versions_share_their_unchanged_chunks(repo: sp.Repository, small_chunks: int) -> None:
    repo.put_artifact("draft.txt", CONTENT)
    before = len(repo.store.list("objects/"))
    edited = CONTENT[:-10] + b"0123456789"
    ref = repo.put_artifact("draft.txt", edited)
    assert len(repo.store.list("objects/")) == before + 1
    assert read_all(repo, ref.ref) == edited


def test_media_type_is_guessed_or_given(repo: sp.Repository) -> None:
    assert repo.put_artifact("table.csv", b"a,b\n1,2\n").media_type == "text/csv"
    assert repo.put_artifact("image.png", b"\x89PNG").media_type == "image/png"
    assert repo.put_artifact("blob", b"?").media_type == "application/octet-stream"
    assert repo.put_artifact("table.csv", b"a", media_type="text/plain").media_type == "text/plain"


def test_session_lists_artifacts_in_its_state(repo: sp.Repository) -> None:
    s = repo.session("with-files")
    csv = b"region,revenue\nnorth,10\n" * 100
    ref = s.put_artifact("sales.csv", csv)
    s.put_artifact("chart.png", b"\x89PNG....")
    s.save(step="attach")
    listed = repo.load("with-files").state["artifacts"]
    assert listed[0] == {
        "name": "sales.csv",
        "ref": "sha256:" + hashlib.sha256(csv).hexdigest(),
        "size": len(csv),
        "media_type": "text/csv",
    }
    assert [item["name"] for item in listed] == ["sales.csv", "chart.png"]
    assert s.open_artifact("sales.csv").read() == csv
    assert s.open_artifact(ref.ref).read() == csv

    replaced = s.put_artifact("sales.csv", b"region,revenue\n")
    s.save(step="replace")
    listed = repo.load("with-files").state["artifacts"]
    assert [item["name"] for item in listed] == ["sales.csv", "chart.png"]
    assert listed[0]["ref"] == replaced.ref and listed[0]["size"] == len(b"region,revenue\n")
    s.close()
    resumed = repo.session("with-files")
    assert resumed.open_artifact("sales.csv").read() == b"region,revenue\n"
    with pytest.raises(KeyError, match="no artifact named"):
        resumed.open_artifact("missing.csv")


def test_dict_state_lists_artifacts_too(repo: sp.Repository) -> None:
    s = repo.session("plain-files", schema=dict)
    ref = s.put_artifact("notes.txt", b"hello")
    s.save()
    assert repo.load("plain-files").state == {"artifacts": [ref.model_dump()]}
    assert repo.load("plain-files").state["artifacts"][0]["media_type"] == "text/plain"


def test_unknown_or_malformed_references(repo: sp.Repository) -> None:
    with pytest.raises(ArtifactNotFound, match="not in store"):
        repo.open_artifact("sha256:" + "0" * 64)
    for bad in ("sha256:xyz", "0" * 64 + "0", "sha256:" + "G" * 64, "../../etc/passwd"):
        with pytest.raises(ArtifactNotFound, match="not an artifact reference"):
            repo.open_artifact(bad)


# --- damage ------------------------------------------------------------------------------------------------


def chunk_keys(repo: sp.Repository, ref: str) -> list[str]:
    return [f"objects/{d[:2]}/{d}" for d, _ in artifacts.read_manifest(repo.store, ref)["chunks"]]


@pytest.mark.parametrize("which", [0, 4, -1])
def test_corrupted_chunk_raises_on_read(repo: sp.Repository, small_chunks: int, which: int) -> None:
    ref = repo.put_artifact("data.bin", CONTENT).ref
    victim = chunk_keys(repo, ref)[which]
    blob = bytearray(repo.store.get(victim) or b"")
    blob[len(blob) // 2] ^= 0x08
    repo.store.put(victim, bytes(blob))
    with pytest.raises(CorruptCheckpoint) as caught:
        read_all(repo, ref)
    assert caught.value.key == victim and victim in str(caught.value)


def test_missing_chunk_raises_on_read(repo: sp.Repository, small_chunks: int) -> None:
    ref = repo.put_artifact("data.bin", CONTENT).ref
    victim = chunk_keys(repo, ref)[2]
    repo.store.delete(victim)
    with pytest.raises(CorruptCheckpoint, match="missing") as caught:
        read_all(repo, ref)
    assert caught.value.key == victim


def test_chunk_swapped_for_another_valid_chunk_is_caught(repo: sp.Repository, small_chunks: int) -> None:
    ref = repo.put_artifact("data.bin", CONTENT).ref
    first, second = chunk_keys(repo, ref)[:2]
    repo.store.put(first, repo.store.get(second) or b"")
    with pytest.raises(CorruptCheckpoint) as caught:
        read_all(repo, ref)
    assert caught.value.key == first


def test_corrupted_manifest_is_named(repo: sp.Repository) -> None:
    ref = repo.put_artifact("data.bin", CONTENT).ref
    key = "artifacts/" + ref.removeprefix("sha256:")
    blob = bytearray(repo.store.get(key) or b"")
    blob[-2] ^= 0x10
    repo.store.put(key, bytes(blob))
    with pytest.raises(CorruptCheckpoint) as caught:
        repo.open_artifact(ref)
    assert caught.value.key == key


# --- streaming -----------------------------------------------------------------------------------------------


def random_blocks(count: int, seed: int = 7) -> Iterator[bytes]:
    rng = random.Random(seed)
    for _ in range(count):
        yield rng.randbytes(MiB)


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("artifacts") / "big.bin"
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for block in random_blocks(64):
            digest.update(block)
            out.write(block)
    return path, digest.hexdigest()


def peak_during(action: object) -> tuple[object, int]:
    tracemalloc.start()
    try:
        result = action()  # type: ignore[operator]
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_64_mib_file_streams_in_bounded_memory(tmp_path: Path, big_file: tuple[Path, str]) -> None:
    path, digest = big_file
    repo = sp.open(FileStore(tmp_path / "store"))

    ref, peak = peak_during(lambda: repo.put_artifact("big.bin", path))
    assert ref.ref == "sha256:" + digest and ref.size == 64 * MiB  # type: ignore[attr-defined]
    assert peak < 24 * MiB, f"put_artifact peaked at {peak / MiB:.1f} MiB"
    assert peak >= artifacts.CHUNK_SIZE  # the measurement does see the chunk buffers

    def read_back() -> tuple[str, int]:
        whole, total = hashlib.sha256(), 0
        with repo.open_artifact(ref.ref) as stream:  # type: ignore[attr-defined]
            while block := stream.read(MiB):
                assert len(block) <= MiB
                whole.update(block)
                total += len(block)
        return whole.hexdigest(), total

    (read_digest, total), peak = peak_during(read_back)  # type: ignore[misc]
    assert read_digest == digest and total == 64 * MiB
    assert peak < 24 * MiB, f"reading back peaked at {peak / MiB:.1f} MiB"


def test_a_64_mib_file_object_streams_in_bounded_memory(tmp_path: Path, big_file: tuple[Path, str]) -> None:
    path, digest = big_file
    repo = sp.open(FileStore(tmp_path / "store"))
    with path.open("rb") as handle:
        ref, peak = peak_during(lambda: repo.put_artifact("big.bin", handle))
    assert ref.ref == "sha256:" + digest  # type: ignore[attr-defined]
    assert peak < 24 * MiB, f"put_artifact peaked at {peak / MiB:.1f} MiB"
