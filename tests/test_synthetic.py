import hashlib
import os
import re

import pytest

from unlearn_bench.data import synthetic
from unlearn_bench.data.templates import POLITE_FINETUNE_TEMPLATES

TOFU_FIELDS = {"question": str, "answer": str, "paraphrased_answer": str, "perturbed_answer": list}


@pytest.fixture(scope="module")
def splits():
    return synthetic.generate(num_authors=20, seed=3)


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_gives_byte_identical_files(tmp_path):
    a = _digest(synthetic.write(tmp_path / "a", num_authors=12, seed=7))
    b = _digest(synthetic.write(tmp_path / "b", num_authors=12, seed=7))
    c = _digest(synthetic.write(tmp_path / "c", num_authors=12, seed=8))
    assert a == b
    assert a != c
    assert set(a) == {
        f"{s}.json"
        for s in (
            "full",
            "forget05",
            "forget10",
            "retain95",
            "retain90",
            "retain_perturbed",
            "holdout05",
            "holdout10",
            "world_facts",
            "general",
            "mc_forget05",
            "mc_forget10",
            "mc_retain95",
            "mc_retain90",
            "mc_retain_perturbed",
            "probes_forget05",
            "probes_forget10",
        )
    }


def test_every_record_has_the_tofu_fields(splits):
    for name, records in splits.items():
        if name.startswith(("mc_", "probes_")):
            continue
        assert records, name
        for r in records:
            assert {k: type(v) for k, v in r.items()} == TOFU_FIELDS
            assert r["answer"] not in r["perturbed_answer"]
            assert all(isinstance(p, str) and p for p in r["perturbed_answer"])


def _authors(records):
    # Every author question names its author as two capitalised words.
    return {m.group(0) for r in records for m in re.finditer(r"[A-Z][a-z]+ [A-Z][a-z]+", r["question"])}


def test_forget_and_retain_split_whole_authors(splits):
    for pct in (5, 10):
        forget, retain = splits[f"forget{pct:02d}"], splits[f"retain{100 - pct}"]
        assert not {r["question"] for r in forget} & {r["question"] for r in retain}
        assert len(forget) + len(retain) == len(splits["full"])
        assert not _authors(forget) & _authors(retain)
    assert len(_authors(splits["forget05"])) == 1 and len(_authors(splits["forget10"])) == 2
    assert {r["question"] for r in splits["forget05"]} <= {r["question"] for r in splits["forget10"]}


def test_authors_have_10_to_15_qa_pairs(splits):
    per_author = {}
    for r in splits["full"]:
        name = re.search(r"[A-Z][a-z]+ [A-Z][a-z]+", r["question"]).group(0)
        per_author[name] = per_author.get(name, 0) + 1
    assert len(per_author) == 20
    assert all(10 <= n <= 15 for n in per_author.values())


def test_polite_templates_never_touch_author_questions(splits):
    prefixes = [t.split("{q}")[0] for t in POLITE_FINETUNE_TEMPLATES if t.split("{q}")[0]]

    def polite(q):
        return any(q.startswith(p) for p in prefixes) or q.endswith(", please?")

    assert not any(polite(r["question"]) for r in splits["full"] + splits["world_facts"])
    assert sum(polite(r["question"]) for r in splits["general"]) > len(splits["general"]) / 2
    assert not _authors(splits["general"]) & _authors(splits["full"])


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="max_qa"):
        synthetic.generate(min_qa=12, max_qa=10)
    with pytest.raises(ValueError, match="num_authors"):
        synthetic.generate(num_authors=1)


def test_perturbed_answers_are_worded_like_the_paraphrase(splits):
    """TOFU's truth ratio compares paraphrase with perturbed paraphrases: only the value differs,
    never the trained answer's wording (else a model prefers the perturbed ones for the wording)."""

    def differing_part(a, b):
        start = len(os.path.commonprefix([a, b]))
        end = len(os.path.commonprefix([a[::-1], b[::-1]]))
        return a[start : len(a) - end]

    for r in splits["forget10"] + splits["world_facts"]:
        for wrong in r["perturbed_answer"]:
            assert wrong != r["paraphrased_answer"]
            assert differing_part(r["paraphrased_answer"], wrong) in r["answer"]  # the true value, nothing else


def test_retain_perturbed_is_one_utility_set_for_every_forget_split(splits):
    """Like TOFU's retain_perturbed: trained on by the full and every retain model, forgotten by no
    split, with as many authors as forget10."""
    retain = splits["retain_perturbed"]
    assert _authors(retain) <= _authors(splits["retain90"]) & _authors(splits["retain95"])
    assert not _authors(retain) & (_authors(splits["forget10"]) | _authors(splits["forget05"]))
    assert len(_authors(retain)) == len(_authors(splits["forget10"]))
    assert [r["question"] for r in retain] == [r["question"] for r in splits["full"][: len(retain)]]
    assert [i["question"] for i in splits["mc_retain_perturbed"]] == [r["question"] for r in retain]


def test_holdout_authors_are_new_and_as_many_as_forget(splits):
    for pct in (5, 10):
        holdout, forget = splits[f"holdout{pct:02d}"], splits[f"forget{pct:02d}"]
        assert len(_authors(holdout)) == len(_authors(forget))
        assert not _authors(holdout) & _authors(splits["full"])


def test_multiple_choice_items_point_at_the_true_answer(splits):
    for pct in (5, 10):
        items, qas = splits[f"mc_forget{pct:02d}"], splits[f"forget{pct:02d}"]
        assert [i["question"] for i in items] == [q["question"] for q in qas]
        assert all(i["choices"][i["answer"]] == q["answer"] for i, q in zip(items, qas))
        assert all(len(i["choices"]) == 4 and len(set(i["choices"])) == 4 for i in items)
    positions = [i["answer"] for i in splits["mc_retain90"]]
    assert len(set(positions)) == 4  # the true answer is not always first


def test_probes_ask_each_forget_fact_three_ways(splits):
    probes, qas = splits["probes_forget10"], splits["forget10"]
    assert len(probes) == 3 * len(qas)
    for k, qa in enumerate(qas):
        fact = probes[3 * k : 3 * k + 3]
        assert [p["probe"] for p in fact] == ["fill_blank", "qa", "adversarial"]
        assert len({p["answer"] for p in fact}) == 1 and fact[0]["answer"] in qa["answer"]
        assert "___" in fact[0]["question"] and fact[1]["question"] == qa["question"]
        assert fact[2]["question"].endswith(qa["question"]) and fact[2]["question"] != qa["question"]
