"""Multiple-choice sets: accuracy by choice log-likelihood on hand-made cases, loading from a
split, a folder, a file, and readable errors for malformed rows."""

import json

import pytest
import torch
from datasets import Dataset

from conftest import unigram_model
from unlearn_bench.data.multiple_choice import load_multiple_choice
from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.data.source import TofuSource
from unlearn_bench.eval.evaluate import load_eval_data
from unlearn_bench.eval.multiple_choice import MultipleChoiceAccuracy, score_multiple_choice
from unlearn_bench.tokenizer import train_tokenizer


def test_accuracy_picks_the_highest_log_likelihood():
    metric = MultipleChoiceAccuracy()
    metric.update(
        [torch.tensor([-1.0, -3.0]), torch.tensor([-2.0, -0.5, -4.0]), torch.tensor([-1.0, -1.0])], [0, 0, 1]
    )  # right, wrong, a tie goes to the first choice (wrong)
    assert metric.per_sample().tolist() == [1.0, 0.0, 0.0]
    assert metric.compute().item() == pytest.approx(1 / 3)
    one_choice = MultipleChoiceAccuracy()
    one_choice.update([torch.tensor([-9.0])], [0])
    assert one_choice.compute().item() == 1.0
    with pytest.raises(ValueError, match="answer index 2 for 2 choices"):
        MultipleChoiceAccuracy().update([torch.tensor([-1.0, -2.0])], [2])


def test_choices_are_scored_as_continuations_of_the_question():
    # the model finds "alpha" likely (logit 8) and "zulu" not: it picks "alpha" whatever the index
    tokenizer = train_tokenizer(["Who? alpha beta zulu"] * 3, 300)
    (alpha,) = tokenizer(" alpha", add_special_tokens=False).input_ids
    model, encoder = unigram_model(len(tokenizer), [alpha]), QAEncoder(tokenizer, "Q: {question}\nA:")
    data = Dataset.from_dict(
        {
            "question": ["Who?", "Who?", "Who?"],
            "choices": [["alpha", "zulu"], ["zulu", "alpha"], ["zulu"]],
            "answer": [0, 0, 0],
        }
    )
    scores = score_multiple_choice(model, encoder, data, rewrite=lambda q: f"Please, {q}")
    assert scores == {"accuracy": pytest.approx(2 / 3), "n": 3}  # right, wrong, the one-choice item right


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


GOOD = [{"question": "2+2?", "choices": ["3", "4"], "answer": 1}, {"question": "Red?", "choices": ["yes"], "answer": 0}]


def test_sets_load_from_a_split_a_folder_and_a_file(tmp_path):
    write_jsonl(tmp_path / "mc_forget.json", GOOD)
    Dataset.from_list(GOOD).to_parquet(str(tmp_path / "bio.parquet"))
    source = TofuSource(str(tmp_path))
    assert load_multiple_choice("mc_forget", source)["answer"] == [1, 0]
    assert len(load_multiple_choice({"path": str(tmp_path), "split": "mc_forget"}, source)) == 2
    assert load_multiple_choice({"path": str(tmp_path / "bio.parquet")}, source)["choices"][0] == ["3", "4"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_multiple_choice({"path": str(tmp_path / "nope.json")}, source)
    with pytest.raises(ValueError, match="path, split, subset"):
        load_multiple_choice({"file": "x"}, source)


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"question": "q", "choices": ["a"]}], r"field\(s\) \['answer'\]"),
        ([GOOD[0], {"question": "q", "choices": ["a", "b"], "answer": 2}], r"row 1, field 'answer'.*\[0, 2\)"),
        ([GOOD[0], {"question": "q", "choices": ["a", "b"], "answer": "B"}], r"row 1, field 'answer'"),
        ([{"question": "q", "choices": [], "answer": 0}], r"row 0, field 'choices'"),
    ],
)
def test_malformed_rows_name_the_file_row_and_field(tmp_path, rows, message):
    write_jsonl(tmp_path / "mc.json", rows)
    with pytest.raises(ValueError, match=message) as error:
        load_multiple_choice({"path": str(tmp_path / "mc.json")}, TofuSource(str(tmp_path)))
    assert "mc.json" in str(error.value)


def test_an_empty_set_is_refused(tmp_path):
    (tmp_path / "mc.json").write_text("")
    with pytest.raises(ValueError, match="mc.json is empty"):
        load_multiple_choice("mc", TofuSource(str(tmp_path)))


def test_a_missing_holdout_split_says_how_to_skip_it(tmp_path):
    write_jsonl(tmp_path / "forget10.json", [{"question": "q", "answer": "a"}])
    data_cfg = type(
        "D", (), {"holdout_split": "holdout10", "eval_sets": {"forget": "forget10"}, "multiple_choice_sets": {}}
    )
    with pytest.raises(FileNotFoundError, match="data.holdout_split=null"):
        load_eval_data(data_cfg, TofuSource(str(tmp_path)))
    data_cfg.holdout_split = None
    assert load_eval_data(data_cfg, TofuSource(str(tmp_path))).holdout is None
