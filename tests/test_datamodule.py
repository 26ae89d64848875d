from datasets import Dataset

from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.datamodule import QADataModule
from unlearn_bench.tokenizer import train_tokenizer


def _rows(prefix, n):
    return Dataset.from_list([{"question": f"{prefix} {i}?", "answer": f"{prefix} answer {i}."} for i in range(n)])


def test_an_epoch_is_one_pass_over_forget_with_as_many_fresh_retain_samples():
    forget, retain = _rows("forget", 5), _rows("retain", 20)
    tokenizer = train_tokenizer([r["question"] + r["answer"] for r in forget.to_list() + retain.to_list()], 300)
    encoder = QAEncoder(tokenizer, "Q: {question}\nA:")
    dm = QADataModule({"forget": forget, "retain": retain}, encoder, batch_size=2, epoch_split="forget")

    def epoch():
        seen = {"forget": [], "retain": []}
        for batch, _, _ in dm.train_dataloader():
            assert set(batch) == {"forget", "retain"}
            assert batch["forget"]["input_ids"].shape[0] == batch["retain"]["input_ids"].shape[0]
            for split in seen:
                seen[split] += [tokenizer.decode(ids, skip_special_tokens=True).split("?")[0].strip()
                                for ids in batch[split]["input_ids"]]
        return seen

    first, second = epoch(), epoch()
    assert sorted(first["forget"]) == [f"Q: forget {i}" for i in range(5)]
    assert len(first["retain"]) == 5 and len(set(first["retain"])) == 5  # without replacement
    assert first["retain"] != second["retain"]  # a fresh draw each epoch
