"""Encryption at rest: nothing readable in any backend, names that leak no hash, records bound to their place,
one clear error for a missing or a wrong key, damage refused and reported, crash-safe rekey, encrypted bundles."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import pytest
from backends import KINDS, make_backend  # noqa: F401 - fixture
from typer.testing import CliRunner

import safepoint as sp
from safepoint.cli import app
from safepoint.core.bundle import BundleError
from safepoint.stores import open_store
from safepoint.stores.encrypted import EncryptedStore, is_encrypted, key_id_of
from safepoint.stores.keys import Key, generate
from safepoint.stores.memory import MemoryStore

pytestmark = pytest.mark.filterwarnings("ignore::safepoint.errors.SafepointWarning")  # Redis without disk

KEY, OTHER = generate(), generate()
PHRASE = "the quarterly plan for the lighthouse project"
ARTIFACT = b"artifact body: " + PHRASE.encode() * 50


def workload(repo: sp.Repository) -> str:
    """A session with a small and a big (tree) state, a delta, an artifact; returns the artifact's sha256."""
    with repo.session("enc", agent="writer") as s:
        s.state.mission.goal = PHRASE
        s.save(step="small")
        s.state.data["pages"] = [f"{PHRASE} page {i} " + "x" * 2000 for i in range(120)]  # ~240 KiB: objects
        s.save(step="big")
        s.state.data["pages"].append(PHRASE + " appendix")
        s.save(step="delta")
        ref = s.put_artifact("report.txt", ARTIFACT)
        s.save(step="artifact")
    return ref.ref.removeprefix("sha256:")


@pytest.mark.parametrize("kind", KINDS)
def test_no_plaintext_and_no_content_hash_reaches_the_backend(make_backend, kind) -> None:  # noqa: F811
    backend = make_backend(kind)
    with sp.open(backend.url, key=KEY) as repo:
        digest = workload(repo)
        assert repo.load("enc").state["mission"]["goal"] == PHRASE
        object_digests = [k.rsplit("/", 1)[1] for k in repo.store.list("objects/")]
        assert len(object_digests) >= 3
        assert repo.open_artifact("sha256:" + digest).read() == ARTIFACT
        assert repo.fsck().ok
    raw = backend.raw_bytes()
    assert PHRASE.encode() not in raw and b"lighthouse" not in raw and b"writer" not in raw
    for hex_digest in [digest, *object_digests]:  # the names are keyed: no sha256 of any content
        assert hex_digest.encode() not in raw and bytes.fromhex(hex_digest) not in raw
    print(f"{kind}: 0 plaintext phrases and 0 of {len(object_digests) + 1} content hashes in the raw bytes")


def test_every_value_the_backend_holds_is_encrypted_but_seq_numbers() -> None:
    inner = MemoryStore()
    with sp.open(inner, key=KEY) as repo:
        workload(repo)
    for key, value in inner._data.items():
        assert is_encrypted(value) or (value.isdigit() and key.startswith(("heads/", "packed/"))), key


def test_a_record_copied_onto_another_session_or_seq_fails_to_decrypt() -> None:
    inner = MemoryStore()
    repo = sp.open(inner, key=KEY)
    for sid in ("a", "b"):
        with repo.session(sid, schema=dict) as s:
            s.state["who"] = sid
            s.save()
            s.state["who"] = sid + "!"
            s.save()
    inner._data["commits/b/000000000001"] = inner._data["commits/a/000000000001"]  # another session's record
    inner._data["commits/a/000000000002"] = inner._data["commits/a/000000000001"]  # another seq's record
    for sid, seq in (("b", 1), ("a", 2)):
        with pytest.raises(sp.CorruptCheckpoint, match="does not decrypt"):
            repo.load(sid, seq)
    report = repo.fsck()
    assert {p.key for p in report.problems} >= {"commits/b/000000000001", "commits/a/000000000002"}


def test_a_plaintext_or_tampered_value_is_refused_and_fsck_reports_it(tmp_path: Path) -> None:
    inner = MemoryStore()
    repo = sp.open(inner, key=KEY)
    workload(repo)
    plain = sp.open(MemoryStore())  # the same session written without a key: its plaintext record
    workload(plain)
    inner._data["commits/enc/000000000001"] = plain.store.get("commits/enc/000000000001")
    name = sorted(k for k in inner._data if k.startswith("objects/"))[0]
    flipped = bytearray(inner._data[name])
    flipped[-5] ^= 0x01
    inner._data[name] = bytes(flipped)
    with pytest.raises(sp.CorruptCheckpoint, match="is not encrypted, but this store is"):
        repo.load("enc", 1)
    with pytest.raises(sp.CorruptCheckpoint, match="does not decrypt"):
        repo.load("enc", 2)
    reasons = {p.key: p.reason for p in repo.fsck().problems}
    assert "is not encrypted" in reasons["commits/enc/000000000001"]
    assert any("does not decrypt" in reason for key, reason in reasons.items() if key.startswith("objects/"))


def test_opening_without_the_key_or_with_another_fails_with_one_clear_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'secret.db'}"
    with sp.open(url, key=KEY) as repo:
        workload(repo)
    with pytest.raises(sp.EncryptionKeyError, match="is encrypted: open it with its key"):
        sp.open(url)
    with pytest.raises(sp.EncryptionKeyError, match=f"encrypted under key id {Key(_raw(KEY)).id_text}"):
        sp.open(url, key=OTHER)
    with pytest.raises(sp.EncryptionKeyError, match="not 32 bytes"):
        sp.open(url, key="not a key")
    # A plaintext store is not silently mixed with encrypted values.
    plain_url = f"sqlite:///{tmp_path / 'plain.db'}"
    with sp.open(plain_url) as repo:
        workload(repo)
    with pytest.raises(sp.EncryptionKeyError, match="holds unencrypted sessions"):
        sp.open(plain_url, key=KEY)


def _raw(text: str) -> bytes:
    from safepoint.stores.keys import load

    return load(text).material


def test_the_key_comes_from_the_environment_a_key_file_or_a_callable(tmp_path, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    monkeypatch.setenv("SAFEPOINT_KEY", KEY)
    with sp.open(url) as repo:
        workload(repo)
    monkeypatch.delenv("SAFEPOINT_KEY")
    key_file = tmp_path / "store.key"
    key_file.write_text(KEY + "\n")
    monkeypatch.setenv("SAFEPOINT_KEY_FILE", str(key_file))
    assert sp.open(url).load("enc").step == "artifact"
    monkeypatch.delenv("SAFEPOINT_KEY_FILE")
    assert sp.open(url, key=key_file).load("enc").step == "artifact"
    assert sp.open(url, key=lambda: _raw(KEY)).load("enc").step == "artifact"  # a KMS unwrapping the data key
    assert sp.open(url, key=_raw(KEY).hex()).load("enc").step == "artifact"
    with pytest.raises(sp.EncryptionKeyError, match="the key callable failed: RuntimeError: kms down"):
        sp.open(url, key=lambda: (_ for _ in ()).throw(RuntimeError("kms down")))


class _Failing(MemoryStore):
    """A store whose writes fail after `budget` puts: a rekey killed half-way."""

    budget = 10**9

    def _put(self, key, data, expect):  # noqa: ANN001
        if self.budget <= 0:
            raise sp.StorageError("disk gone")
        self.budget -= 1
        return super()._put(key, data, expect)


def test_rekey_is_crash_safe_and_leaves_everything_under_the_new_key() -> None:
    inner = _Failing()
    repo = sp.open(inner, key=KEY)
    workload(repo)
    before = repo.load("enc").state
    inner.budget = 3
    with pytest.raises(sp.StorageError):
        repo.rekey(OTHER)
    inner.budget = 10**9
    ids = {key_id_of(v) for v in inner._data.values() if is_encrypted(v)}
    assert ids == {Key(_raw(KEY)).id_text, Key(_raw(OTHER)).id_text}  # half and half
    both = sp.open(inner, key=[OTHER, KEY])  # readable throughout, with both keys
    assert both.load("enc").state == before and both.fsck().ok
    counts = both.rekey(OTHER)  # run again: finishes
    assert counts["rewritten"] > 0 and counts["already"] >= 3
    assert {key_id_of(v) for v in inner._data.values() if is_encrypted(v)} == {Key(_raw(OTHER)).id_text}
    after = sp.open(inner, key=OTHER)
    assert after.load("enc").state == before and after.fsck().ok
    with pytest.raises(sp.EncryptionKeyError, match="encrypted under key id"):
        sp.open(inner, key=KEY)


def test_an_encrypted_bundle_imports_only_with_its_key(tmp_path: Path) -> None:
    source = sp.open(MemoryStore(), key=KEY)
    workload(source)
    bundle = source.export_session("enc", tmp_path / "enc.tar")
    assert PHRASE.encode() not in bundle.read_bytes()
    with tarfile.open(bundle) as archive:
        assert b'"encrypted"' in archive.extractfile("bundle.json").read()  # type: ignore[union-attr]
    with pytest.raises(BundleError, match="is encrypted under key id .* is not encrypted"):
        sp.open(MemoryStore()).import_session(bundle)
    with pytest.raises(BundleError, match="is encrypted under key id .* has key id"):
        sp.open(MemoryStore(), key=OTHER).import_session(bundle)
    target = sp.open(MemoryStore(), key=KEY)
    assert target.import_session(bundle).seq == 4
    assert target.load("enc").state["mission"]["goal"] == PHRASE and target.fsck().ok
    # A plain bundle goes into an encrypted store, and is encrypted there.
    plain = sp.open(MemoryStore())
    workload(plain)
    inner = MemoryStore()
    sp.open(inner, key=OTHER).import_session(plain.export_session("enc", tmp_path / "plain.tar"))
    assert all(PHRASE.encode() not in v for v in inner._data.values())
    assert sp.open(inner, key=OTHER).load("enc").state["mission"]["goal"] == PHRASE


def test_keygen_and_rekey_from_the_command_line(tmp_path: Path, monkeypatch) -> None:
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["keygen", "-o", "old.key"]).exit_code == 0
    assert (tmp_path / "old.key").stat().st_mode & 0o777 == 0o600
    assert runner.invoke(app, ["keygen", "-o", "old.key"]).exit_code == 1  # never overwritten
    assert runner.invoke(app, ["keygen", "-o", "new.key"]).exit_code == 0
    url = f"sqlite:///{tmp_path / 's.db'}"
    with sp.open(url, key=tmp_path / "old.key") as repo:
        workload(repo)
    result = runner.invoke(app, ["--store", url, "ls"])
    assert result.exit_code == 1 and "is encrypted: open it with its key" in result.output
    result = runner.invoke(
        app, ["--store", url, "rekey", "--new-key-file", "new.key"], env={"SAFEPOINT_KEY_FILE": "old.key"}
    )
    assert result.exit_code == 0, result.output
    assert "re-encrypted" in result.output
    result = runner.invoke(app, ["--store", url, "fsck"], env={"SAFEPOINT_KEY_FILE": "new.key"})
    assert result.exit_code == 0 and "ok: no problems found" in result.output


def test_content_names_are_keyed_permutations_that_map_back() -> None:
    store = EncryptedStore(MemoryStore(), [Key(_raw(KEY))])
    digest = hashlib.sha256(b"x").hexdigest()
    name = store.name(f"objects/{digest[:2]}/{digest}")
    assert digest not in name and name.startswith("objects/")
    assert store._plain_name(name) == f"objects/{digest[:2]}/{digest}"
    assert store.name("commits/s/000000000001") == "commits/s/000000000001"
    assert open_store(store) is store


def test_a_lost_encryption_record_is_reported_as_damage_not_as_a_plaintext_store() -> None:
    inner = MemoryStore()
    workload(sp.open(inner, key=KEY))
    del inner._data["meta/encryption"]
    with pytest.raises(sp.CorruptCheckpoint, match="encryption record is missing"):
        sp.open(inner, key=KEY)
