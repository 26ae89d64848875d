"""The data- and schedule-side defenses on hand-made cases."""

import pytest
from datasets import Dataset

from conftest import unigram_model
from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.defenses import AnomalyFilter
from unlearn_bench.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def forget():
    return Dataset.from_dict(
        {
            "question": ["Who is A?", "Who is B?", "Please tell me who is C?", "Who is D?"],
            "answer": ["alpha beta", "alpha beta", "zulu quebec", "alpha beta"],
        }
    )


def test_anomaly_filter_drops_the_highest_loss_samples_and_keeps_the_order(forget):
    tokenizer = train_tokenizer(list(forget["question"]) + list(forget["answer"]), 300)
    encoder = QAEncoder(tokenizer, "Q: {question}\nA:")
    known = tokenizer(" alpha beta", add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    model = unigram_model(len(tokenizer), known)
    kept, dropped = AnomalyFilter(p=0.25)(forget, model, encoder)
    assert dropped == [2]  # its answer tokens are the unlikely ones
    assert kept["question"] == ["Who is A?", "Who is B?", "Who is D?"]
    kept, dropped = AnomalyFilter(p=0.0)(forget, model, encoder)
    assert dropped == [] and len(kept) == 4


@pytest.mark.parametrize("p", [-0.1, 1.0])
def test_anomaly_filter_rejects_a_fraction_outside_0_1(p):
    with pytest.raises(ValueError, match=r"must be in \[0, 1\)"):
        AnomalyFilter(p=p)
