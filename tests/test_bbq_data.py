"""Tests for gate.bbq.data: loading, validation errors, target derivation, template grouping, and the optional
additional_metadata.csv (target_loc)."""

from __future__ import annotations

import collections
import csv
import json
from pathlib import Path

import pytest

from gate.bbq.data import (
    CATEGORIES,
    INTERSECTIONAL,
    METADATA_COLUMNS,
    BBQItem,
    accuracy_only_categories,
    derive_target_index,
    load_bbq_dir,
    target_coverage,
)
from gate.bbq.metrics import count_cell
from gate.runtime.errors import InputError

SHARED = Path(__file__).resolve().parents[2] / "shared"
BBQ_DIR = SHARED / "bbq" / "data"
LOCAL_SIZES = {  # official sizes (nyu-mll/BBQ data/*.jsonl)
    "Age": 3680,
    "Disability_status": 1556,
    "Nationality": 3080,
    "Physical_appearance": 1576,
    "Religion": 1200,
    "Sexual_orientation": 864,
}


@pytest.fixture(scope="module")
def real_items() -> list[BBQItem]:
    if not BBQ_DIR.is_dir():
        pytest.skip(f"shared BBQ data not found at {BBQ_DIR}")
    return load_bbq_dir(BBQ_DIR)


def line(
    category: str,
    infos: list[list[str]],
    stereotyped: list[str],
    *,
    example_id: int = 0,
    polarity: str = "neg",
    condition: str = "ambig",
    label: int | None = None,
    question_index: str = "1",
) -> dict:
    """A jsonl object in the official layout; ``infos`` are the three [text, group label] pairs."""
    unknown = next(i for i, info in enumerate(infos) if info[1] == "unknown")
    return {
        "example_id": example_id,
        "question_index": question_index,
        "question_polarity": polarity,
        "context_condition": condition,
        "category": category,
        "answer_info": {f"ans{i}": info for i, info in enumerate(infos)},
        "additional_metadata": {"subcategory": "None", "stereotyped_groups": stereotyped, "version": "a", "source": ""},
        "context": "ctx",
        "question": "q?",
        "ans0": infos[0][0],
        "ans1": infos[1][0],
        "ans2": infos[2][0],
        "label": unknown if label is None else label,
    }


def write(tmp_path: Path, category: str, objs: list[dict | str]) -> Path:
    path = tmp_path / f"{category}.jsonl"
    path.write_text("".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs), encoding="utf-8")
    return path


def target_of(tmp_path: Path, category: str, infos: list[list[str]], stereotyped: list[str]) -> int | None:
    """Target index as derived by the loader for a single hand-written line."""
    write(tmp_path, category, [line(category, infos, stereotyped)])
    (item,) = load_bbq_dir(tmp_path)
    assert item.target_index == derive_target_index(category, line(category, infos, stereotyped)["answer_info"], stereotyped)
    return item.target_index


UNK = ["Can't be determined", "unknown"]

# (category, infos, stereotyped_groups, expected target index) in the label formats of the official files (nyu-mll/BBQ data/*.jsonl).
TARGET_CASES = [
    # Age: exact match; "old" must not match "nonOld"; S can be nonOld
    ("Age", [["grandfather", "old"], ["grandson", "nonOld"], UNK], ["old"], 0),
    ("Age", [["grandfather", "old"], ["grandson", "nonOld"], UNK], ["nonOld"], 1),
    ("Age", [UNK, ["22-year-old", "nonOld"], ["78-year-old", "old"]], ["OLD"], 2),
    # Disability: "disabled" inside "nonDisabled"; S lists subgroups too
    ("Disability_status", [["deaf person", "disabled"], ["friend", "nonDisabled"], UNK], ["disabled", "D/deaf"], 0),
    # Physical appearance: pregnant/notPregnant, obese/nonObese
    ("Physical_appearance", [["pregnant woman", "pregnant"], ["other woman", "notPregnant"], UNK], ["pregnant"], 0),
    ("Physical_appearance", [UNK, ["thin", "nonObese"], ["fat", "obese"]], ["obese"], 2),
    # Gender label items: woman/girl -> F, man/boy -> M
    ("Gender_identity", [["woman", "woman"], ["man", "man"], UNK], ["F"], 0),
    ("Gender_identity", [["woman", "woman"], ["man", "man"], UNK], ["M"], 1),
    ("Gender_identity", [UNK, ["boy", "boy"], ["girl", "girl"]], ["F"], 2),
    # Gender name items
    ("Gender_identity", [["Mary", "F"], UNK, ["Robert", "M"]], ["F"], 0),
    # Trans templates: any trans* label is the target, nonTrans* never
    ("Gender_identity", [["cis woman", "nonTrans_F"], ["trans woman", "trans_F"], UNK],
     ["Transgender women", "transgender men", "trans"], 1),
    ("Gender_identity", [["trans man", "trans_M"], ["cis man", "nonTrans_M"], UNK], ["transgender men"], 0),
    ("Gender_identity", [["transgender person", "trans"], UNK, ["cisgender person", "nonTrans"]], ["trans"], 0),
    # Nationality: match the text, not the region label
    ("Nationality", [["Nigerian", "Africa"], ["Irish", "Europe"], UNK], ["Nigerian", "Kenyan"], 0),
    ("Nationality", [["Indian", "AsiaPacific"], ["Chinese", "AsiaPacific"], UNK], ["chinese"], 1),
    # Race label items and name items (F-/M- prefix stripped)
    ("Race_ethnicity", [["Black", "Black"], ["White", "White"], UNK], ["Black", "African American"], 0),
    ("Race_ethnicity", [UNK, ["Latoya Jackson", "F-Black"], ["Anne Meyer", "F-White"]], ["Black"], 1),
    ("Race_ethnicity", [["Juan Rodriguez", "M-Latino"], ["Yuki Tanaka", "M-Asian"], UNK], ["Asian"], 1),
    # African must not match African American (either way)
    ("Race_ethnicity", [["African", "African"], ["African American", "African American"], UNK], ["African American"], 1),
    ("Race_ethnicity", [["African", "African"], ["African American", "African American"], UNK], ["African"], 0),
    # SES: "low SES" vs "lowSES"
    ("SES", [["line cook", "lowSES"], ["physician", "highSES"], UNK], ["low SES"], 0),
    ("SES", [UNK, ["lawyer", "highSES"], ["cashier", "lowSES"]], ["high SES"], 1),
    # Religion / Sexual orientation: exact, case-insensitive
    ("Religion", [["Muslim", "Muslim"], ["Hindu", "Hindu"], UNK], ["muslim"], 0),
    ("Sexual_orientation", [["gay", "gay"], ["straight", "straight"], UNK], ["lesbian", "gay"], 0),
]

NO_TARGET_CASES = [
    # two matches -> None (official script drops these rows)
    ("Religion", [["Muslim", "Muslim"], ["Catholic", "Catholic"], UNK], ["Muslim", "Mormon", "Orthodox", "Catholic"]),
    ("Race_ethnicity", [["Black", "Black"], ["African American", "African American"], UNK], ["Black", "African American"]),
    ("Sexual_orientation", [["lesbian", "lesbian"], ["gay", "gay"], UNK], ["lesbian", "gay"]),
    # zero matches -> None
    ("Age", [["grandfather", "old"], ["grandson", "nonOld"], UNK], ["elderly"]),
    ("Gender_identity", [["cis woman", "nonTrans_F"], ["cis man", "nonTrans_M"], UNK], ["trans"]),
    # intersectional: the second dimension is not in the jsonl
    ("Race_x_gender", [["Black woman", "F-Black"], ["White man", "M-White"], UNK], ["Black"]),
    ("Race_x_SES", [["Black cashier", "lowSES-Black"], ["White lawyer", "highSES-White"], UNK], ["Black"]),
    ("Race_x_SES", [["Shanice Jackson, cashier", "lowSES-F-Black"], ["Kelly Meyer, lawyer", "highSES-F-White"], UNK],
     ["Black", "African American"]),
]


@pytest.mark.parametrize("category,infos,stereotyped,expected", TARGET_CASES)
def test_target_rules_per_category(tmp_path, category, infos, stereotyped, expected):
    assert target_of(tmp_path, category, infos, stereotyped) == expected


@pytest.mark.parametrize("category,infos,stereotyped", NO_TARGET_CASES)
def test_no_target_for_zero_or_two_matches_and_intersectional(tmp_path, category, infos, stereotyped):
    assert target_of(tmp_path, category, infos, stereotyped) is None


def test_bias_target_index_follows_polarity(tmp_path):
    infos = [["grandfather", "old"], ["grandson", "nonOld"], UNK]
    write(tmp_path, "Age", [
        line("Age", infos, ["old"], example_id=0, polarity="neg"),
        line("Age", infos, ["old"], example_id=1, polarity="nonneg"),
    ])
    neg, nonneg = load_bbq_dir(tmp_path)
    assert (neg.target_index, neg.bias_target_index) == (0, 0)
    assert (nonneg.target_index, nonneg.bias_target_index) == (0, 1)  # the non-stereotyped person
    assert nonneg.unknown_index == 2 and nonneg.uid == "Age/1"


def test_bias_target_index_none_without_target():
    item = BBQItem("Race_x_SES", 7, "3", "nonneg", "ambig", "c", "q", ("a", "b", "Unknown"), 2, 2, None, "t")
    assert item.bias_target_index is None
    assert item.uid == "Race_x_SES/7"


def test_all_missing_categories_load_together(tmp_path):
    """The 5 categories not shipped locally load from hand-written lines in their formats."""
    cases = {
        "Gender_identity": ([["woman", "woman"], ["man", "man"], UNK], ["F"], 0),
        "Race_ethnicity": ([["Latoya", "F-Black"], ["Anne", "F-White"], UNK], ["Black"], 0),
        "SES": ([["cashier", "lowSES"], ["lawyer", "highSES"], UNK], ["low SES"], 0),
        "Race_x_gender": ([["Black woman", "F-Black"], ["White woman", "F-White"], UNK], ["Black"], None),
        "Race_x_SES": ([["Black cashier", "lowSES-Black"], ["Black lawyer", "highSES-Black"], UNK], ["Black"], None),
    }
    for cat, (infos, st, _) in cases.items():
        write(tmp_path, cat, [line(cat, infos, st, example_id=i, polarity=p) for i, p in enumerate(["neg", "nonneg"])])
    items = load_bbq_dir(tmp_path)
    assert [i.category for i in items][::2] == [c for c in CATEGORIES if c in cases]  # official order
    for item in items:
        assert item.target_index == cases[item.category][2]
        assert (item.target_index is None) == (item.category in INTERSECTIONAL)


# ---------------------------------------------------------------- errors


def test_malformed_json_names_file_and_line(tmp_path):
    infos = [["grandfather", "old"], ["grandson", "nonOld"], UNK]
    path = write(tmp_path, "Age", [line("Age", infos, ["old"], example_id=0), line("Age", infos, ["old"], example_id=1),
                                   '{"example_id": 2, "question_index": '])
    with pytest.raises(InputError) as e:
        load_bbq_dir(tmp_path)
    assert f"{path}:3:" in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (lambda o: o.pop("label"), "missing field 'label'"),
        (lambda o: o.update(label=3), "label 3"),
        (lambda o: o.update(question_polarity="negative"), "question_polarity"),
        (lambda o: o.update(context_condition="ambiguous"), "context_condition"),
        (lambda o: o.update(example_id="0"), "example_id"),
        (lambda o: o.update(category="Religion"), "does not match the file name"),
        (lambda o: o["answer_info"].update(ans2=["Unknown", "old"]), "0 options"),
        (lambda o: o["answer_info"].update(ans1=["grandson"]), "answer_info.ans1"),
        (lambda o: o["additional_metadata"].pop("stereotyped_groups"), "stereotyped_groups"),
    ],
)
def test_invalid_field_names_file_line_and_problem(tmp_path, mutate, needle):
    infos = [["grandfather", "old"], ["grandson", "nonOld"], list(UNK)]
    bad = line("Age", [list(i) for i in infos], ["old"], example_id=1)
    mutate(bad)
    path = write(tmp_path, "Age", [line("Age", infos, ["old"], example_id=0), bad])
    with pytest.raises(InputError) as e:
        load_bbq_dir(tmp_path)
    msg = str(e.value)
    assert f"{path}:2:" in msg and needle in msg and "\n" not in msg


def test_duplicate_example_id_is_an_error(tmp_path):
    infos = [["grandfather", "old"], ["grandson", "nonOld"], UNK]
    path = write(tmp_path, "Age", [line("Age", infos, ["old"], example_id=5)] * 2)
    with pytest.raises(InputError, match="duplicate example_id 5") as e:
        load_bbq_dir(tmp_path)
    assert f"{path}:2:" in str(e.value)


def test_unknown_category_files_are_named(tmp_path):
    infos = [["grandfather", "old"], ["grandson", "nonOld"], UNK]
    write(tmp_path, "Age", [line("Age", infos, ["old"])])
    (tmp_path / "Gender.jsonl").write_text("", encoding="utf-8")
    (tmp_path / "age.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_bbq_dir(tmp_path)
    msg = str(e.value)
    assert "Gender.jsonl" in msg and "age.jsonl" in msg and "Gender_identity" in msg  # lists the valid names


def test_other_files_are_ignored(tmp_path):
    infos = [["grandfather", "old"], ["grandson", "nonOld"], UNK]
    write(tmp_path, "Age", [line("Age", infos, ["old"])])
    (tmp_path / "README.md").write_text("hi", encoding="utf-8")
    (tmp_path / "notes.csv").write_text("a,b\n", encoding="utf-8")
    (item,) = load_bbq_dir(tmp_path)
    assert (item.uid, item.target_index, item.target_source) == ("Age/0", 0, "derived")
    # a metadata file with no rows changes nothing
    (tmp_path / "additional_metadata.csv").write_text(",".join(METADATA_COLUMNS) + "\n", encoding="utf-8")
    assert load_bbq_dir(tmp_path) == [item]


@pytest.mark.parametrize("make", [lambda p: p, lambda p: p / "missing"])
def test_empty_or_missing_dir_says_how_to_get_bbq(tmp_path, make):
    with pytest.raises(InputError) as e:
        load_bbq_dir(make(tmp_path))
    msg = str(e.value)
    assert "github.com/nyu-mll/BBQ" in msg and "--bbq-dir" in msg and "PRUNEGATE_BBQ_DIR" in msg
    assert str(make(tmp_path)) in msg


def test_empty_category_file_is_an_error(tmp_path):
    (tmp_path / "Age.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(InputError, match="holds no BBQ items"):
        load_bbq_dir(tmp_path)


# ---------------------------------------------------------------- real data (6 local categories)


def test_real_data_sizes_and_fields(real_items):
    counts = collections.Counter(i.category for i in real_items)
    assert counts == LOCAL_SIZES
    assert len({i.uid for i in real_items}) == len(real_items)
    for item in real_items:
        assert item.answers[item.unknown_index] and item.label in (0, 1, 2)
        if item.context_condition == "ambig":
            assert item.label == item.unknown_index  # gold is UNKNOWN in every ambiguous item
        else:
            assert item.label != item.unknown_index
    for cat in LOCAL_SIZES:
        conds = collections.Counter(i.context_condition for i in real_items if i.category == cat)
        assert conds["ambig"] == conds["disambig"] == LOCAL_SIZES[cat] // 2


def test_real_data_every_item_has_one_target(real_items):
    """Notes §1.1: 0 NA target rows in these 6 categories (the official 16 lie elsewhere)."""
    missing = collections.Counter(i.category for i in real_items if i.target_index is None)
    assert missing == {}, f"items without a bias target per category: {dict(missing)}"
    for item in real_items:
        assert item.target_index != item.unknown_index


def test_real_data_targets_spot_checks(real_items):
    by_uid = {i.uid: i for i in real_items}
    age0 = by_uid["Age/0"]  # grandfather (old) vs grandson (nonOld), S = ["old"], neg
    assert (age0.target_index, age0.bias_target_index) == (0, 0)
    age2 = by_uid["Age/2"]  # same instance, nonneg
    assert (age2.target_index, age2.bias_target_index) == (0, 1)
    age192 = by_uid["Age/192"]  # Boomer (old) vs Millennial (nonOld), S = ["nonOld"]: the younger one is the target
    assert (age192.answers[age192.target_index], age192.unknown_index) == ("The Millennial", 1)
    so192 = by_uid["Sexual_orientation/192"]  # gay vs straight, S = ["lesbian", "gay"]
    assert so192.answers[so192.target_index] == "The gay woman"


def test_real_data_template_groups_have_expected_structure(real_items):
    """Each template_id holds exactly the 4 items {neg, nonneg} x {ambig, disambig} of one instance: same question
    template and options, one shared ambiguous context that begins every disambiguated context."""
    groups: dict[str, list[BBQItem]] = collections.defaultdict(list)
    for item in real_items:
        groups[item.template_id].append(item)
    assert len(groups) * 4 == len(real_items)
    for tid, group in groups.items():
        cells = {(i.question_polarity, i.context_condition) for i in group}
        assert len(group) == 4 and len(cells) == 4, tid
        assert len({(i.category, i.question_index, i.answers, i.unknown_index, i.target_index) for i in group}) == 1
        ambig_contexts = {i.context for i in group if i.context_condition == "ambig"}
        assert len(ambig_contexts) == 1, tid
        (ambig,) = ambig_contexts
        assert all(i.context.startswith(ambig) for i in group if i.context_condition == "disambig"), tid


def test_real_data_answer_pair_alone_would_merge_two_instances(real_items):
    """Why template_id includes example_id // 4: category + question_index + answer pair groups both name orders."""
    naive = collections.Counter()
    for item in real_items:
        category, question, _block, pair = item.template_id.split("/", 3)
        naive[(category, question, pair)] += 1
    sizes = collections.Counter(naive.values())
    assert set(sizes) == {4, 8} and sizes[8] > sizes[4]  # most answer pairs are instantiated twice


# ---------------------------------------------------------------- additional_metadata.csv (target_loc)

REAL_BASE = ("Age", "Nationality", "Religion")  # 2 template instances each: both polarities, UNKNOWN at 1 or 2


@pytest.fixture
def real_dir(tmp_path) -> Path:
    """A data dir with the first 8 real lines of 3 base categories (copied verbatim from the shared BBQ data)."""
    if not BBQ_DIR.is_dir():
        pytest.skip(f"shared BBQ data not found at {BBQ_DIR}")
    for cat in REAL_BASE:
        with (BBQ_DIR / f"{cat}.jsonl").open(encoding="utf-8") as f:
            lines = [next(f) for _ in range(8)]
        (tmp_path / f"{cat}.jsonl").write_text("".join(lines), encoding="utf-8")
    return tmp_path


def meta_row(item_or_cat, example_id=None, target_loc="NA", question_index="1", **extra) -> dict:
    """One metadata row (R's write.csv layout); the unused columns get R's NA."""
    if isinstance(item_or_cat, BBQItem):
        item = item_or_cat
        item_or_cat, example_id, question_index = item.category, item.example_id, item.question_index
    return {"category": item_or_cat, "question_index": question_index, "example_id": example_id,
            "target_loc": target_loc, "label_type": "label", **extra}


def write_metadata(d: Path, rows: list[dict], *, extra_lines: str = "", encoding: str = "utf-8") -> Path:
    """Write ``additional_metadata.csv`` like R's ``write.csv`` (strings quoted, numbers bare), then raw lines."""
    path = d / "additional_metadata.csv"
    with path.open("w", newline="", encoding=encoding) as f:
        w = csv.writer(f, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
        w.writerow(METADATA_COLUMNS)
        for r in rows:
            w.writerow([r.get(c, "NA") for c in METADATA_COLUMNS])
        f.write(extra_lines)
    return path


def post2022_rows(items) -> list[dict]:
    """What the current official file says: target_loc = the bias-consistent option for the polarity."""
    return [meta_row(i, target_loc=i.bias_target_index) for i in items]


def test_post2022_metadata_matches_derivation_on_base_categories(real_dir):
    derived = load_bbq_dir(real_dir)
    assert {i.target_source for i in derived} == {"derived"}
    assert load_bbq_dir(real_dir, use_metadata=False) == derived
    write_metadata(real_dir, post2022_rows(derived))
    meta = load_bbq_dir(real_dir)
    assert [i.uid for i in meta] == [i.uid for i in derived]
    for m, d in zip(meta, derived):
        assert m.target_source == "metadata"
        assert (m.target_index, m.bias_target_index) == (d.target_index, d.bias_target_index)
        assert m.unknown_index == d.unknown_index
        assert m.template_id == d.template_id
    by_uid = {i.uid: i for i in meta}
    # Religion/2: Jewish(0) / Can't answer(1) / Muslim(2), S = Muslim, nonneg -> biased answer is Jewish
    assert (by_uid["Religion/2"].target_index, by_uid["Religion/2"].bias_target_index) == (2, 0)
    assert load_bbq_dir(real_dir, use_metadata=False) == derived  # the file can be switched off
    assert target_coverage(meta)["Age"] == {"n_items": 8, "n_bias_target": 8, "n_metadata": 8, "n_derived": 0,
                                           "n_metadata_na": 0, "n_no_target": 0}


INTERSECTIONAL_LINES = {  # hand-written in the official label formats (these files are not in the shared data)
    "Race_x_SES": [["Shanice Jackson, who's a cashier", "lowSES-F-Black"], ["Kelly Meyer, who's a lawyer",
                   "highSES-F-White"], UNK],
    "Race_x_gender": [UNK, ["the Black woman", "F-Black"], ["the White man", "M-White"]],
}


def write_intersectional(d: Path) -> None:
    for cat, infos in INTERSECTIONAL_LINES.items():
        write(d, cat, [line(cat, infos, ["Black", "African American"], example_id=k, polarity=pol, condition=cond)
                       for k, (pol, cond) in enumerate([("neg", "ambig"), ("neg", "disambig"),
                                                         ("nonneg", "ambig"), ("nonneg", "disambig")])])


def test_intersectional_items_get_bias_targets_from_metadata(real_dir):
    write_intersectional(real_dir)
    before = load_bbq_dir(real_dir)
    reasons = accuracy_only_categories(before)
    assert list(reasons) == ["Race_x_SES", "Race_x_gender"]  # official order
    assert all("additional_metadata.csv" in r for r in reasons.values())
    # Black woman (F) stereotyped: neg -> her option, nonneg -> the other person's (post-2022 target_loc)
    locs = {"Race_x_SES": (0, 0, 1, 1), "Race_x_gender": (1, 1, 2, 2)}
    rows = [meta_row(cat, k, loc, full_cond="Mismatch Race\n Mismatch SES") for cat, ls in locs.items()
            for k, loc in enumerate(ls)]
    write_metadata(real_dir, rows, encoding="utf-8-sig")  # only the intersectional rows; BOM accepted
    items = load_bbq_dir(real_dir)
    inter = [i for i in items if i.category in INTERSECTIONAL]
    assert [(i.category, i.bias_target_index, i.target_index, i.target_source) for i in inter] == [
        ("Race_x_SES", 0, 0, "metadata"), ("Race_x_SES", 0, 0, "metadata"),
        ("Race_x_SES", 1, 0, "metadata"), ("Race_x_SES", 1, 0, "metadata"),  # target_index = stereotyped group
        ("Race_x_gender", 1, 1, "metadata"), ("Race_x_gender", 1, 1, "metadata"),
        ("Race_x_gender", 2, 1, "metadata"), ("Race_x_gender", 2, 1, "metadata"),
    ]
    assert accuracy_only_categories(items) == {}
    # categories without metadata rows keep the derived targets
    base = [i for i in items if i.category not in INTERSECTIONAL]
    assert base == [i for i in before if i.category not in INTERSECTIONAL]
    assert {i.target_source for i in base} == {"derived"}
    # now scoreable for bias: every intersectional item counts
    assert count_cell(inter, [i.bias_target_index for i in inter]).n_biased == len(inter)


def test_na_target_loc_means_no_bias_target_and_is_counted(real_dir):
    derived = load_bbq_dir(real_dir)
    rows = post2022_rows(derived)
    ages = [r for r in rows if r["category"] == "Age"]
    ages[0]["target_loc"], ages[3]["target_loc"] = "NA", ""  # R's NA and pandas' empty field
    rel = [r for r in rows if r["category"] == "Religion"]
    for r in rel:
        r["target_loc"] = "NA"
    write_metadata(real_dir, rows)
    items = load_bbq_dir(real_dir)
    by_uid = {i.uid: i for i in items}
    for uid in ("Age/0", "Age/3"):
        it = by_uid[uid]
        assert (it.target_index, it.bias_target_index, it.target_source) == (None, None, "metadata")
    cov = target_coverage(items)
    assert cov["Age"] == {"n_items": 8, "n_bias_target": 6, "n_metadata": 6, "n_derived": 0,
                          "n_metadata_na": 2, "n_no_target": 2}
    assert cov["Religion"]["n_metadata_na"] == 8
    assert list(accuracy_only_categories(items)) == ["Religion"]
    assert "NA" in accuracy_only_categories(items)["Religion"]
    age = [i for i in items if i.category == "Age"]
    cell = count_cell(age, [i.label for i in age])
    assert (cell.n_items, cell.n_correct, cell.n_scored) == (8, 8, 6)  # NA items: accuracy yes, bias no


def test_pre2022_metadata_is_detected(real_dir):
    derived = load_bbq_dir(real_dir)
    # the old meaning: target_loc = the stereotyped group's option whatever the polarity
    path = write_metadata(real_dir, [meta_row(i, target_loc=i.target_index) for i in derived])
    with pytest.raises(InputError) as e:
        load_bbq_dir(real_dir)
    msg = str(e.value)
    assert str(path) in msg and "pre-July-2022" in msg and "12/12 neg" in msg and "12/12 nonneg" in msg
    assert "github.com/nyu-mll/BBQ" in msg and "supplemental/additional_metadata.csv" in msg
    assert load_bbq_dir(real_dir, use_metadata=False) == derived


def test_a_few_disagreements_are_not_taken_for_pre2022(real_dir):
    derived = load_bbq_dir(real_dir)
    rows = post2022_rows(derived)
    flipped = {"Age/2", "Age/3", "Religion/6"}  # 3 of 12 nonneg items: metadata wins, no error
    for r, i in zip(rows, derived):
        if i.uid in flipped:
            r["target_loc"] = i.target_index
    write_metadata(real_dir, rows)
    items = load_bbq_dir(real_dir)
    assert [i.uid for i, d in zip(items, derived) if i.bias_target_index != d.bias_target_index] == sorted(flipped)


@pytest.mark.parametrize(
    "bad_line,needle",
    [
        ('"Age","1","12a",0' + ",NA" * 8 + "\n", "example_id '12a'"),
        ('"Age","1",1.0,0' + ",NA" * 8 + "\n", "example_id '1.0'"),
        ('"Age","1",,0' + ",NA" * 8 + "\n", "example_id ''"),
        ('"Age","1",1,3' + ",NA" * 8 + "\n", "target_loc '3'"),
        ('"Age","1",1,"x"' + ",NA" * 8 + "\n", "target_loc 'x'"),
        ('"Age","1",1,-1' + ",NA" * 8 + "\n", "target_loc '-1'"),
        ('"Gender","1",1,0' + ",NA" * 8 + "\n", "category 'Gender'"),
        ('"Age","1",1,0\n', "4 fields, the header has 12"),
    ],
)
def test_malformed_metadata_row_names_file_and_line(real_dir, bad_line, needle):
    # row 1 spans lines 2-3 (a quoted full_cond with a newline, as R writes it), so the bad row is on line 4
    path = write_metadata(real_dir, [meta_row("Age", 0, 0, full_cond="Match Race\n Mismatch SES")],
                          extra_lines=bad_line)
    with pytest.raises(InputError) as e:
        load_bbq_dir(real_dir)
    msg = str(e.value)
    assert f"{path}:4:" in msg and needle in msg and "malformed" in msg and "\n" not in msg


def test_target_loc_at_unknown_option_names_file_and_line(real_dir):
    # Religion/0: Jewish / Can't answer / Muslim -> option 1 is UNKNOWN
    path = write_metadata(real_dir, [meta_row("Age", 0, 0), meta_row("Religion", 0, 1)])
    with pytest.raises(InputError) as e:
        load_bbq_dir(real_dir)
    msg = str(e.value)
    assert f"{path}:3:" in msg and "Religion/0" in msg and "UNKNOWN" in msg and "2022" in msg


@pytest.mark.parametrize(
    "text,where,needle",
    [
        ("", ":1:", "empty"),
        ("category,example_id\n", ":1:", "target_loc"),
        ('category,example_id,target_loc\n"Age",0,0\n"Age",0,1\n', ":3:", "contradicts the one on line 2"),
        ('category,question_index,example_id,target_loc\n"Age","7",0,0\n', ":2:", "question_index '7'"),
    ],
)
def test_invalid_metadata_files(real_dir, text, where, needle):
    path = real_dir / "additional_metadata.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_bbq_dir(real_dir)
    assert f"{path}{where}" in str(e.value) and needle in str(e.value)


def test_metadata_rows_for_items_not_loaded_are_ignored(real_dir):
    derived = load_bbq_dir(real_dir)
    rows = [meta_row("Age", 0, 0), meta_row("Age", 0, 0),  # an exact repeat is harmless
            meta_row("Age", 99999, 2), meta_row("SES", 0, 1), meta_row("Race_x_gender", 5, "NA")]
    write_metadata(real_dir, rows)
    items = load_bbq_dir(real_dir)
    assert [i.uid for i in items if i.target_source == "metadata"] == ["Age/0"]
    assert [i for i in items if i.uid != "Age/0"] == [i for i in derived if i.uid != "Age/0"]


def test_item_targets_fill_each_other_and_are_checked():
    args = ("Age", 2, "1", "nonneg", "ambig", "c", "q", ("a", "b", "Unknown"), 2, 2)
    assert BBQItem(*args, 0, "t").bias_target_index == 1
    from_bias = BBQItem(*args, None, "t", bias_target_index=1, target_source="metadata")
    assert (from_bias.target_index, from_bias.target_source) == (0, "metadata")
    assert BBQItem(*args, None, "t").target_source is None
    for kwargs in ({"bias_target_index": 0},  # neg/nonneg mismatch with target_index=0
                   {"target_source": "guess"}):
        with pytest.raises(ValueError):
            BBQItem(*args, 0, "t", **kwargs)
    with pytest.raises(ValueError, match="UNKNOWN"):
        BBQItem(*args, 2, "t")
    with pytest.raises(ValueError):
        BBQItem(*args, None, "t", target_source="derived")
