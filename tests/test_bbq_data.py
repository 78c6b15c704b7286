"""Tests for gate.bbq_data: loading, validation errors, target derivation and template grouping."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from gate.bbq_data import CATEGORIES, INTERSECTIONAL, BBQItem, derive_target_index, load_bbq_dir
from gate.errors import InputError

SHARED = Path(__file__).resolve().parents[2] / "shared"
BBQ_DIR = SHARED / "bbq" / "data"
LOCAL_SIZES = {  # official sizes (notes §1)
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

# (category, infos, stereotyped_groups, expected target index) in the label formats of notes §1.
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
    (tmp_path / "additional_metadata.csv").write_text("category,example_id\n", encoding="utf-8")
    (tmp_path / "README.md").write_text("hi", encoding="utf-8")
    assert [i.uid for i in load_bbq_dir(tmp_path)] == ["Age/0"]


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
