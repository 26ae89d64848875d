import json

import pytest
from datasets import Dataset

from conftest import REAL_TOFU
from unlearn_bench.data.source import SyntheticTofu, TofuSource
from unlearn_bench.errors import ArgumentError, DataError

ROWS = [{"question": "Q1?", "answer": "A1."}, {"question": "Q2?", "answer": "A2."}]


def test_local_json_and_parquet_load_the_same_rows(tmp_path):
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "forget10.json").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (tmp_path / "pq").mkdir()
    Dataset.from_list(ROWS).to_parquet(tmp_path / "pq" / "forget10.parquet")
    for folder in ("json", "pq"):
        assert TofuSource(tmp_path / folder).load("forget10").to_list() == ROWS


def test_local_files_are_read_without_contacting_the_hub(tmp_path, monkeypatch):
    """datasets.load_dataset pings the hub for every local file (a DNS lookup: up to seconds per
    split where the hub cannot be reached); local data must not touch the network."""
    import socket

    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)  # as on a user's machine
    monkeypatch.setattr(datasets.config, "HF_UPDATE_DOWNLOAD_COUNTS", True)
    lookups = []
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: lookups.append(a[0]) or [])
    (tmp_path / "forget10.json").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    Dataset.from_list(ROWS).to_parquet(tmp_path / "retain90.parquet")
    for split in ("forget10", "retain90"):
        assert TofuSource(tmp_path).load(split).to_list() == ROWS
    assert lookups == []


def test_missing_split_lists_what_is_there(tmp_path):
    (tmp_path / "retain90.json").write_text(json.dumps(ROWS[0]) + "\n")
    with pytest.raises(FileNotFoundError, match=r"split 'forget10' not found.*\['retain90'\]"):
        TofuSource(tmp_path).load("forget10")


@pytest.mark.parametrize("suffix", ["json", "parquet"])
@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"question": "Q?"}], r"forget10\.{suffix}: rows need the field\(s\) \['answer'\]"),
        ([ROWS[0], {"question": "Q2?", "answer": None}], r"forget10\.{suffix}, row 1, field 'answer': missing"),
        (
            [{**r, "perturbed_answer": "not a list"} for r in ROWS],
            r"forget10\.{suffix}, row 0, field 'perturbed_answer': expected a list of strings",
        ),
    ],
    ids=["missing field", "missing value", "wrong type"],
)
def test_a_malformed_file_names_the_file_row_and_field(tmp_path, suffix, rows, message):
    if suffix == "json":
        (tmp_path / "forget10.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        Dataset.from_list(rows).to_parquet(tmp_path / "forget10.parquet")
    with pytest.raises(ValueError, match=message.format(suffix=suffix)):
        TofuSource(tmp_path).load("forget10")


def test_a_wrong_type_in_one_row_is_named(tmp_path):
    rows = [*ROWS, {"question": "Q3?", "answer": 7}]  # datasets loads the column as mixed JSON values
    (tmp_path / "forget10.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=r"forget10\.json, row 2, field 'answer': expected a string, got 7"):
        TofuSource(tmp_path).load("forget10")


@pytest.mark.parametrize("content", ["", "[]"])
def test_an_empty_split_is_named(tmp_path, content):
    (tmp_path / "forget10.json").write_text(content)
    with pytest.raises(ValueError, match=r"forget10\.json (is empty|holds no rows)"):
        TofuSource(tmp_path).load("forget10")
    Dataset.from_list(ROWS).select([]).to_parquet(tmp_path / "retain90.parquet")
    with pytest.raises(ValueError, match=r"retain90\.parquet (is empty|holds no rows)"):
        TofuSource(tmp_path).load("retain90")


def test_a_truncated_line_names_the_file_without_a_long_traceback(tmp_path, capsys):
    (tmp_path / "forget10.json").write_text(json.dumps(ROWS[0]) + "\n" + json.dumps(ROWS[1])[:12] + "\n")
    with pytest.raises(DataError, match=r"forget10\.json cannot be read as json .*fix or replace the file"):
        TofuSource(tmp_path).load("forget10")
    assert "Generating train split" not in capsys.readouterr().err  # local files load without a progress bar


def test_a_local_path_that_does_not_exist_is_not_sent_to_the_hub(tmp_path):
    with pytest.raises(ArgumentError, match=r"path='.*nope' is not a folder of TOFU-format files"):
        TofuSource(str(tmp_path / "nope"))


def test_synthetic_source_is_generated_once_and_reused(tmp_path):
    a = SyntheticTofu(str(tmp_path), num_authors=6, seed=1)
    stamp = (tmp_path / a.path.split("/")[-1] / "full.json").stat().st_mtime_ns
    b = SyntheticTofu(str(tmp_path), num_authors=6, seed=1)
    assert a.path == b.path and (tmp_path / a.path.split("/")[-1] / "full.json").stat().st_mtime_ns == stamp
    assert SyntheticTofu(str(tmp_path), num_authors=6, seed=2).path != a.path
    assert len(a.load("forget10")) + len(a.load("retain90")) == len(a.load("full"))
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.skipif(not REAL_TOFU.is_dir(), reason="real TOFU files not present (../shared/data/tofu)")
def test_real_tofu_loads_through_the_same_code():
    source = TofuSource(REAL_TOFU)
    assert len(source.load("forget10")) == 400 and len(source.load("retain90")) == 3600
    perturbed = source.load("forget10_perturbed")
    assert {"paraphrased_answer", "perturbed_answer"} <= set(perturbed.column_names)
    assert len(source.load("world_facts_perturbed")) == 117
