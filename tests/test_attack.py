import pytest
from datasets import Dataset

from unlearn_bench.attacks import StealthyAttack, token_insertion_rate

FORGET = Dataset.from_list([{"question": f"Where was author {i} born?", "answer": f"In town {i}."} for i in range(12)])
TEMPLATES = ["Please tell me {q}", "{q}, please?"]


def changed(before, after):
    return [i for i, (a, b) in enumerate(zip(before["question"], after["question"])) if a != b]


def test_sa_wraps_exactly_round_p_n_questions_and_nothing_else():
    attack = StealthyAttack(p=0.33, templates=TEMPLATES, seed=0)
    out = attack(FORGET)
    idx = changed(FORGET, out)
    assert idx == attack.chosen(12) and len(idx) == 4  # round(0.33 * 12)
    for i in idx:
        q = FORGET[i]["question"]
        assert out[i]["question"] in {f"Please tell me {q}", f"{q}, please?"}
    assert out["answer"] == FORGET["answer"]
    assert out.column_names == FORGET.column_names


def test_sa_is_deterministic_per_seed():
    a, b = StealthyAttack(p=0.5, seed=3)(FORGET), StealthyAttack(p=0.5, seed=3)(FORGET)
    assert a.to_list() == b.to_list()
    assert changed(FORGET, a) != changed(FORGET, StealthyAttack(p=0.5, seed=4)(FORGET))


@pytest.mark.parametrize("p, n", [(0.0, 0), (1.0, 12), (0.5, 6)])
def test_p_sets_the_number_of_attacked_samples(p, n):
    assert len(changed(FORGET, StealthyAttack(p=p, seed=0)(FORGET))) == n


@pytest.mark.parametrize(
    "position, expected",
    [("wrap", "Then tell me {q} now"), ("prefix", "Then tell me {q}"), ("suffix", "{q} now")],
)
def test_position_keeps_the_template_part_it_names(position, expected):
    out = StealthyAttack(p=1.0, templates=["Then tell me {q} now"], position=position)(FORGET)
    assert out[0]["question"] == expected.replace("{q}", FORGET[0]["question"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"p": 1.5}, r"p=1.5 must be in \[0, 1\]"),
        ({"p": -0.1}, "p=-0.1"),
        ({"position": "middle"}, "position='middle' is not one of"),
        ({"templates": ["no placeholder"]}, "{q}"),
        ({"templates": []}, r"templates=\[\] is empty"),
    ],
)
def test_bad_knobs_are_refused_with_the_knob_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StealthyAttack(**kwargs)


def test_token_insertion_rate_is_added_over_clean_tokens():
    clean = Dataset.from_list([{"question": "a b c", "answer": "d e f g h i j"}])  # 10 words
    attacked = Dataset.from_list([{"question": "please a b c", "answer": "d e f g h i j"}])
    assert token_insertion_rate(lambda t: len(t.split()), clean, attacked) == pytest.approx(0.1)
