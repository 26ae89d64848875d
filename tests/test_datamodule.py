import functools
import warnings

import lightning as L
import lightning.pytorch.trainer.connectors.data_connector as connector
import pytest
import torch
from datasets import Dataset
from torch.utils.data import DataLoader

from conftest import unigram_model
from unlearn_bench.data.qa import QAEncoder
from unlearn_bench.datamodule import QADataModule
from unlearn_bench.losses import NLL, ComposedLoss
from unlearn_bench.module import ComposedLossModule
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
        for batch in dm.train_dataloader():
            assert set(batch) == {"forget", "retain"}
            assert batch["forget"]["input_ids"].shape[0] == batch["retain"]["input_ids"].shape[0]
            for split in seen:
                seen[split] += [
                    tokenizer.decode(ids, skip_special_tokens=True).split("?")[0].strip()
                    for ids in batch[split]["input_ids"]
                ]
        return seen

    first, second = epoch(), epoch()
    assert sorted(first["forget"]) == [f"Q: forget {i}" for i in range(5)]
    assert len(first["retain"]) == 5 and len(set(first["retain"])) == 5  # without replacement
    assert first["retain"] != second["retain"]  # a fresh draw each epoch


def test_a_paired_split_is_batched_row_for_row_with_its_partner():
    forget = _rows("forget", 6)
    idk = Dataset.from_list([{"question": q, "answer": "I don't know."} for q in forget["question"]])
    retain = _rows("retain", 20)
    tokenizer = train_tokenizer([r["question"] + r["answer"] for r in forget.to_list() + retain.to_list()], 300)
    encoder = QAEncoder(tokenizer, "Q: {question}\nA:")
    dm = QADataModule(
        {"forget": forget, "idk": idk, "retain": retain},
        encoder,
        batch_size=4,
        epoch_split="forget",
        paired={"idk": "forget"},
    )
    prompts = lambda b: [tokenizer.decode(ids, skip_special_tokens=True).split("?")[0] for ids in b["input_ids"]]
    for batch in dm.train_dataloader():
        assert prompts(batch["idk"]) == prompts(batch["forget"])
    with pytest.raises(ValueError, match="paired row for row"):
        QADataModule({"forget": forget, "idk": retain}, encoder, 4, "forget", paired={"idk": "forget"})


def test_fitting_from_it_on_a_many_core_machine_gives_no_advice_to_add_workers(tmp_path, monkeypatch):
    monkeypatch.setattr(connector, "suggested_max_num_workers", lambda devices: 15)  # as on a 16-core node
    forget = _rows("forget", 4)
    tokenizer = train_tokenizer([r["question"] + r["answer"] for r in forget.to_list()], 300)
    dm = QADataModule({"forget": forget}, QAEncoder(tokenizer, "Q: {question}\nA:"), batch_size=2)

    def advice(**data) -> list[str]:
        model = unigram_model(len(tokenizer), [0])
        sgd = functools.partial(torch.optim.SGD, lr=0.1)
        module = ComposedLossModule(model, ComposedLoss({"f": NLL("forget")}), sgd)
        trainer = L.Trainer(
            max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, default_root_dir=tmp_path
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.fit(module, **data)
        return [str(w.message) for w in caught if "many workers" in str(w.message)]

    assert advice(train_dataloaders=DataLoader(list(dm.train_dataloader()), batch_size=None))  # what it would say
    assert not advice(datamodule=dm)
