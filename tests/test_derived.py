import pytest
from datasets import Dataset

from unlearn_bench.data.derived import idk_pairs, scope_pairs
from unlearn_bench.losses import NLL

FORGET = Dataset.from_list([{"question": f"Please tell me F{i}?", "answer": f"f{i}."} for i in range(3)])
RETAIN = Dataset.from_list([{"question": f"R{i}?", "answer": f"r{i}."} for i in range(5)])


def test_scope_sample_is_a_forget_question_then_a_retain_question_with_the_retain_answer():
    scope = scope_pairs(FORGET, RETAIN, seed=0)
    assert len(scope) == len(RETAIN)
    forget_questions = set(FORGET["question"])
    for row, retain in zip(scope, RETAIN):
        head, tail = row["question"].rsplit(" ", 1)
        assert head in forget_questions and tail == retain["question"]
        assert row["answer"] == retain["answer"]
    assert scope.to_list() == scope_pairs(FORGET, RETAIN, seed=0).to_list()


def test_negative_eta_is_refused():
    with pytest.raises(ValueError, match="must be >= 0"):
        NLL("scope", weight=-1.0)


def test_idk_pairs_keep_the_forget_questions_and_answer_with_refusals():
    idk = idk_pairs(FORGET, RETAIN, seed=0, answers=["I don't know.", "No idea."])
    assert idk["question"] == FORGET["question"]
    assert set(idk["answer"]) <= {"I don't know.", "No idea."}
    with pytest.raises(ValueError, match="idk answers are empty"):
        idk_pairs(FORGET, RETAIN, seed=0, answers=[])
