"""Suite files (gate.bbq.suite.build_suite_manifest / write_suite / load_suite): round trip, tamper detection,
determinism. Works on a copy of two official BBQ category files so that they can be modified."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from gate.bbq.data import load_bbq_dir
from gate.runtime.errors import InputError
from gate.bbq.suite import SUITE_FORMAT, build_suite_manifest, load_suite, sample_suite, write_suite

CATS = ("Age", "Religion")


@pytest.fixture()
def data_copy(bbq_dir, tmp_path) -> Path:
    d = tmp_path / "bbq"
    d.mkdir()
    for c in CATS:
        shutil.copy(bbq_dir / f"{c}.jsonl", d / f"{c}.jsonl")
    return d


def _build(data_dir: Path, size: int = 40, seed: int = 3):
    items = load_bbq_dir(data_dir)
    suite = sample_suite(items, size, seed)
    return items, suite, build_suite_manifest(suite, data_dir, size, seed)


def test_manifest_fields(data_copy):
    _, suite, m = _build(data_copy)
    assert m["format"] == SUITE_FORMAT
    assert (m["seed"], m["size_requested"], m["n_items"]) == (3, 40, len(suite))
    assert m["item_uids"] == [i.uid for i in suite]
    assert set(m["source_files"]) == {f"{c}.jsonl" for c in CATS}
    for name, digest in m["source_files"].items():
        assert digest == hashlib.sha256((data_copy / name).read_bytes()).hexdigest()
    assert "stratified sample of whole template instances" in m["sampling"]
    assert "random.Random(seed)" in m["sampling"]
    body = {k: v for k, v in m.items() if k != "digest"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert m["digest"] == hashlib.sha256(canonical.encode()).hexdigest()


def test_only_present_categories_are_hashed(data_copy):
    items = load_bbq_dir(data_copy)
    only_age = [i for i in items if i.category == "Age"][:8]
    m = build_suite_manifest(only_age, data_copy, 8, 0)
    assert list(m["source_files"]) == ["Age.jsonl"]


def test_round_trip_keeps_items_and_order(data_copy, tmp_path):
    items, suite, m = _build(data_copy)
    path = tmp_path / "out" / "suite.json"
    write_suite(path, m)
    assert [p.name for p in path.parent.iterdir()] == ["suite.json"]  # no temporary file left behind
    loaded, m2 = load_suite(path, items, data_copy)
    assert loaded == suite
    assert m2 == m
    reordered = build_suite_manifest(list(reversed(suite)), data_copy, 40, 3)
    write_suite(path, reordered)
    assert [i.uid for i in load_suite(path, items, data_copy)[0]] == list(reversed(m["item_uids"]))  # manifest order


def test_deterministic(data_copy, tmp_path):
    _, _, a = _build(data_copy)
    _, _, b = _build(data_copy)
    assert a == b
    write_suite(tmp_path / "a.json", a)
    write_suite(tmp_path / "b.json", b)
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    _, _, c = _build(data_copy, seed=4)
    assert c["digest"] != a["digest"] and c["item_uids"] != a["item_uids"]


def test_edited_digest_is_refused(data_copy, tmp_path):
    items, _, m = _build(data_copy)
    path = tmp_path / "suite.json"
    write_suite(path, dict(m, digest="0" * 64))
    with pytest.raises(InputError, match=r"suite\.json.*digest mismatch.*prunegate suite build"):
        load_suite(path, items, data_copy)


def test_edited_uid_list_is_refused(data_copy, tmp_path):
    items, _, m = _build(data_copy)
    path = tmp_path / "suite.json"
    uids = list(m["item_uids"])
    uids[0], uids[1] = uids[1], uids[0]
    write_suite(path, dict(m, item_uids=uids))  # digest not recomputed
    with pytest.raises(InputError, match="digest mismatch"):
        load_suite(path, items, data_copy)


def test_changed_source_file_is_refused(data_copy, tmp_path):
    items, _, m = _build(data_copy)
    path = tmp_path / "suite.json"
    write_suite(path, m)
    source = data_copy / "Religion.jsonl"
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[-1] = lines[-1].replace('"context": "', '"context": "Edited. ', 1)
    source.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(InputError, match=r"Religion\.jsonl changed since suite .*suite\.json.*prunegate suite build"):
        load_suite(path, load_bbq_dir(data_copy), data_copy)


def test_missing_source_file_is_refused(data_copy, tmp_path):
    items, _, m = _build(data_copy)
    path = tmp_path / "suite.json"
    write_suite(path, m)
    (data_copy / "Age.jsonl").unlink()
    with pytest.raises(InputError, match=r"Age\.jsonl.*missing.*prunegate suite build"):
        load_suite(path, items, data_copy)


def test_unknown_uid_is_refused(data_copy, tmp_path):
    items, _, m = _build(data_copy)
    path = tmp_path / "suite.json"
    write_suite(path, m)
    with pytest.raises(InputError, match="not in"):
        load_suite(path, [i for i in items if i.uid != m["item_uids"][0]], data_copy)


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", json.dumps({"format": "other/1"})])
def test_malformed_file_is_refused(data_copy, tmp_path, text):
    items = load_bbq_dir(data_copy)
    path = tmp_path / "suite.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=r"suite\.json.*prunegate suite build"):
        load_suite(path, items, data_copy)


def test_missing_file_is_refused(data_copy, tmp_path):
    with pytest.raises(InputError, match=r"nope\.json does not exist.*prunegate suite build"):
        load_suite(tmp_path / "nope.json", [], data_copy)


def test_failed_write_keeps_previous_file(data_copy, tmp_path):
    _, _, m = _build(data_copy)
    path = tmp_path / "suite.json"
    write_suite(path, m)
    before = path.read_bytes()
    with pytest.raises(ValueError):
        write_suite(path, dict(m, seed=float("nan")))  # not JSON-serialisable (allow_nan=False)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bbq", "suite.json"]  # temporary file removed


def test_metadata_file_is_part_of_the_suite_identity(tmp_path, bbq_dir):
    """additional_metadata.csv decides bias targets: it is hashed, and adding it later invalidates the suite."""
    import shutil

    from gate.bbq.data import load_bbq_dir
    from gate.runtime.errors import InputError
    from gate.bbq.suite import build_suite_manifest, load_suite, sample_suite, write_suite

    d = tmp_path / "bbq"
    d.mkdir()
    shutil.copy(bbq_dir / "Religion.jsonl", d / "Religion.jsonl")
    items = load_bbq_dir(d)
    manifest = build_suite_manifest(sample_suite(items, 8, 0), d, 8, 0)
    assert "additional_metadata.csv" not in manifest["source_files"]
    write_suite(tmp_path / "s.json", manifest)
    (d / "additional_metadata.csv").write_text(
        "category,question_index,example_id,target_loc,label_type,Known_stereotyped_race,Known_stereotyped_var2,"
        "Relevant_social_values,corr_ans_aligns_var2,corr_ans_aligns_race,full_cond,Known_stereotyped_groups\n")
    with pytest.raises(InputError, match="additional_metadata.csv"):
        load_suite(tmp_path / "s.json", items, d)
