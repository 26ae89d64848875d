import pytest

from unlearn_bench.data.qa import IGNORE_INDEX, QAEncoder
from unlearn_bench.tokenizer import train_tokenizer

CORPUS = ["Where was Ada Quill born?", "Ada Quill was born in Oslo, Norway.", "Please tell me the capital."]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(CORPUS * 5, vocab_size=300)


@pytest.mark.parametrize(
    "text", ["Ada Quill was born in Oslo, Norway.", "unseen wörds & symbols\n  spaced", "Question: x?\nAnswer:"]
)
def test_tokenizer_round_trips_any_text(tokenizer, text):
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert tokenizer.decode(ids) == text


def test_tokenizer_learns_whole_words(tokenizer):
    assert len(tokenizer(" Quill", add_special_tokens=False).input_ids) == 1
    assert {tokenizer.pad_token, tokenizer.eos_token, tokenizer.bos_token} == {"<pad>", "</s>", "<s>"}


def test_loss_is_on_answer_tokens_only_and_answer_ends_with_eos(tokenizer):
    enc = QAEncoder(tokenizer, "Question: {question}\nAnswer:")
    row = enc.encode("Where was Ada Quill born?", "Ada Quill was born in Oslo, Norway.")
    prompt = enc.prompt_ids("Where was Ada Quill born?")
    assert row["input_ids"][: len(prompt)] == prompt  # answer never merges into the prompt
    assert row["labels"][: len(prompt)] == [IGNORE_INDEX] * len(prompt)
    answer = row["labels"][len(prompt) :]
    assert answer[-1] == tokenizer.eos_token_id
    assert enc.decode_answer(answer) == "Ada Quill was born in Oslo, Norway."
    assert prompt[0] == tokenizer.bos_token_id


def test_collate_pads_right_for_training_and_left_for_generation(tokenizer):
    enc = QAEncoder(tokenizer, "Q: {question}\nA:")
    rows = [enc.encode("Where was Ada Quill born?", "Oslo."), enc.encode("x?", "y.")]
    right, left = enc.collate(rows), enc.collate(rows, side="left")
    n_short = len(rows[1]["input_ids"])
    assert right["input_ids"][1, :n_short].tolist() == rows[1]["input_ids"]
    assert left["input_ids"][1, -n_short:].tolist() == rows[1]["input_ids"]
    assert left["attention_mask"][1].tolist() == [0] * (left["input_ids"].shape[1] - n_short) + [1] * n_short
    assert (right["labels"][1, n_short:] == IGNORE_INDEX).all()


def test_prompt_format_must_hold_the_question(tokenizer):
    with pytest.raises(ValueError, match="{question}"):
        QAEncoder(tokenizer, "Answer:")
