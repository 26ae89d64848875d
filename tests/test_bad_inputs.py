"""Bad inputs, as a new user types them, through the real entry points: each ends with exit status
1 before any model is loaded or trained, with one line that names the culprit (the key as typed,
the file and row, the folder), and leaves the cache and an earlier run's outputs as they were.

The entry points run in-process (``main()`` with ``sys.argv``), so the ~40 cases take seconds."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from conftest import TINY, TINY_SYNTH
from unlearn_bench import eval_model, extras, run
from unlearn_bench.data import synthetic
from unlearn_bench.preflight import check_cell
from unlearn_bench.report.cli import main as report_main
from unlearn_bench.resolvers import register_resolvers

# A TOFU-format folder in real TOFU's layout (the forget split is read for unlearning only).
TOFU = [
    "data=tofu",
    "data.source.path={tofu}",
    "data.forget_split=forget05",
    "data.eval_sets.forget=forget10",
    "data.eval_sets.retain=retain90",
    "data.eval_sets.world_facts=world_facts",
    "~data.eval_sets.real_authors",
    "data.utility_sets=[retain,world_facts]",
    "data.normalised_sets=[world_facts]",
]


def rows(change):
    """A rewrite of a JSON Lines file's text through ``change`` of its rows."""
    return lambda text: "".join(json.dumps(r) + "\n" for r in change([json.loads(line) for line in text.splitlines()]))


def bad_row(field, value, row=1):
    def change(rows_):
        rows_[row][field] = value
        return rows_

    return rows(change)


def drop_field(field):
    return rows(lambda rows_: [{k: v for k, v in r.items() if k != field} for r in rows_])


# (id, entry point, overrides, what to break in the TOFU folder, the text the one line must hold)
CASES = [
    # unknown or misspelt keys
    ("plus-unknown-key", run, ["+foo=1"], None, "unknown config key(s) ['foo']"),
    ("plus-misspelt-section", run, ["+unlern.epochs=3"], None, "unknown config key(s) ['unlern']"),
    ("plus-misspelt-knob", run, ["+unlearn.epoch=3"], None, "unlearn.epoch: Key 'epoch' not in"),
    (
        "misspelt-attack-knob",
        run,
        ["attack=sa", "+attack.transform.pp=3"],
        None,
        "attack.transform.pp is not an argument of unlearn_bench.attacks.StealthyAttack",
    ),
    (
        "misspelt-method-knob",
        run,
        ["+method.loss.terms.retain.wieght=2"],
        None,
        "method.loss.terms.retain.wieght is not an argument",
    ),
    ("eval-unknown-key", eval_model, ["model_dir=org/a-hub-id", "+foo=1"], None, "unknown config key(s) ['foo']"),
    (
        "eval-extra-metric-knob",
        eval_model,
        [
            "model_dir=org/a-hub-id",
            "+eval.extra_metrics.m={{_target_: unlearn_bench.defenses.RetainFinetune, steps: 0}}",
        ],
        None,
        "eval.extra_metrics.m.steps=0 must be >= 1",
    ),
    (
        "misspelt-defense-slot",
        run,
        ["defense=su", "+defense.loss_term={{}}"],
        None,
        "defense.loss_term is read by nothing",
    ),
    ("unread-method-knob", run, ["+method.retain_wieght=3"], None, "method.retain_wieght is read by nothing"),
    # wrong types and ranges of plain keys
    ("seed-not-int", run, ["seed=xyz"], None, "seed='xyz' must be an integer"),
    ("seed-float", run, ["seed=1.5"], None, "seed=1.5 must be an integer"),
    ("seed-negative", run, ["seed=-1"], None, "seed=-1 must be an integer in [0, 2**32)"),  # was: after the fine-tunes
    ("finetune-seed-negative", run, ["finetune.seed=-1"], None, "finetune.seed=-1 must be in [0, 2**32)"),
    ("skip-completed-text", run, ["skip_completed=abc"], None, "skip_completed='abc' must be true or false"),
    ("target-module", run, ["method.loss._target_=abc"], None, "method.loss._target_='abc' is a module, not a class"),
    ("epochs-zero", run, ["unlearn.epochs=0"], None, "unlearn.epochs and unlearn.batch_size must be >= 1"),
    ("batch-size-text", run, ["finetune.batch_size=many"], None, "finetune.batch_size"),
    ("scheduler", run, ["unlearn.scheduler=wavy"], None, "unlearn.scheduler='wavy'; choose one of"),
    ("stop-target", run, ["unlearn.stop_at_unlearn=1.5"], None, "unlearn.stop_at_unlearn=1.5 must be null or a number"),
    ("stop-target-text", run, ["unlearn.stop_at_unlearn=abc"], None, "unlearn.stop_at_unlearn='abc' must be null or"),
    ("stop-target-bool", run, ["unlearn.stop_at_unlearn=true"], None, "unlearn.stop_at_unlearn=True must be null or"),
    (
        "stop-patience",
        run,
        ["unlearn.stop_patience_epochs=0"],
        None,
        "unlearn.stop_patience_epochs=0 must be null or an integer >= 1",
    ),
    ("max-samples", run, ["eval.max_samples=0"], None, "eval.max_samples=0 must be null or an int >= 1"),
    ("max-samples-bool", run, ["eval.max_samples=true"], None, "eval.max_samples=True must be null or an int >= 1"),
    (
        "stop-patience-bool",
        run,
        ["unlearn.stop_patience_epochs=true"],
        None,
        "unlearn.stop_patience_epochs=True must be null or an integer >= 1",
    ),
    ("mc-set-bool", run, ["data.multiple_choice_sets.forget=true"], None, "multiple_choice_sets.forget=True must be"),
    ("holdout-bool", run, ["data.holdout_split=true"], None, "data.holdout_split=True must be a split name or null"),
    (
        "mc-set-path-unset",
        run,
        ["+data/multiple_choice@data.multiple_choice_sets.mine=local"],
        None,
        "data.multiple_choice_sets.mine.path must be set: add data.multiple_choice_sets.mine.path=<value>",
    ),
    # the model section (LoRA's knobs were read only when a stage built adapters: after the fine-tunes for unlearning)
    ("lora-r-text", run, ["model.lora.r=abc"], None, "bad value in model.lora.r: Value 'abc'"),
    ("lora-dropout", run, ["model.lora.dropout=1"], None, "model.lora.dropout=1.0 must be in [0, 1)"),
    ("lora-stage", run, ["model.lora.stages=[unlearn,train]"], None, "model.lora.stages=['unlearn', 'train'] must"),
    ("model-dtype", run, ["model.dtype=half"], None, "model.dtype='half'; choose one of"),
    ("prompt-format", run, ["model.prompt_format=Q"], None, "model.prompt_format='Q' needs {{question}} exactly once"),
    ("model-misspelt-key", run, ["+model.max_lenght=9"], None, "model.max_lenght: Key 'max_lenght' not in"),
    # optimizers: built on one parameter before anything trains (a bad lr no longer waits for the fine-tunes)
    ("lr-text", run, ["unlearn.optimizer.lr=abc"], None, "unlearn.optimizer.lr='abc' must be a number (torch.optim"),
    ("method-lr-text", run, ["+method.lr=x"], None, "unlearn.optimizer.lr='x' must be a number"),
    ("lr-bool", run, ["unlearn.optimizer.lr=true"], None, "unlearn.optimizer.lr=True must be a number"),
    ("lr-range", run, ["unlearn.optimizer.lr=-1"], None, "AdamW refuses its knobs: Invalid learning rate: -1"),
    ("finetune-lr-range", run, ["finetune.optimizer.lr=-5"], None, "finetune.optimizer: torch.optim.AdamW refuses"),
    ("optimizer-no-target", run, ["~unlearn.optimizer._target_"], None, "unlearn.optimizer needs a _target_"),
    ("optimizer-null", run, ["unlearn.optimizer=null"], None, "unlearn.optimizer needs a _target_"),
    ("optimizer-not-partial", run, ["~unlearn.optimizer._partial_"], None, "unlearn.optimizer._partial_ must be true"),
    ("optimizer-knob", run, ["+unlearn.optimizer.lrr=1"], None, "unlearn.optimizer.lrr is not an argument of torch"),
    ("optimizer-flag", run, ["+unlearn.optimizer.amsgrad=maybe"], None, "optimizer.amsgrad='maybe' must be true or"),
    (
        "generation-batch",
        run,
        ["eval.generation_batch_size=0"],
        None,
        "eval.generation_batch_size=0 must be null (batch_size) or an int >= 1",
    ),
    (
        "extra-trigger-template",
        run,
        ["+eval.extra_trigger_templates.b=[oops]"],
        None,
        "eval.extra_trigger_templates.b needs templates with {{q}}",
    ),
    ("plus-misspelt-group", run, ["+unlern={{epochs:3}}"], None, "unknown config key(s) ['unlern']"),
    ("trigger-template", run, ["eval.trigger_templates=[oops]"], None, "eval.trigger_templates needs templates"),
    ("utility-set", run, ["data.utility_sets=[retain,nope]"], None, "name ['nope']"),
    ("sharded-strategy", run, ["+trainer.strategy=fsdp"], None, "trainer.strategy='fsdp' shards the weights"),
    # method, attack and defense knobs, named as typed
    ("attack-p", run, ["attack=sa", "attack.transform.p=1.5"], None, "attack.transform.p=1.5 must be in [0, 1]"),
    (
        "attack-position",
        run,
        ["attack=sa", "attack.transform.position=middle"],
        None,
        "attack.transform.position='middle' is not one of",
    ),
    ("su-eta", run, ["defense=su", "defense.eta=-1"], None, "defense.eta=-1 (of the NLL term on 'scope') must be >= 0"),
    ("filter-p", run, ["defense=anomaly_filter", "defense.forget_filter.p=1"], None, "defense.forget_filter.p=1 must"),
    (
        "continued-ft-steps",
        run,
        ["defense=continued_ft", "defense.after_unlearning.steps=0"],
        None,
        "defense.after_unlearning.steps=0 must be >= 1",
    ),
    ("simnpo-beta", run, ["method=simnpo", "method.beta=0"], None, "method.beta=0 (of SimNPO) must be > 0"),
    ("rmu-coeff", run, ["method=rmu", "method.steering_coeff=-1"], None, "method.steering_coeff=-1 must be > 0"),
    ("rmu-layer", run, ["method=rmu", "method.layer=0"], None, "method.layer=0 must be >= 1"),
    ("retain-weight", run, ["method.retain_weight=-2"], None, "method.retain_weight=-2"),
    # data configs and files
    (
        "forget-split",
        run,
        ["data.forget_split=forget99"],
        None,
        "data.forget_split='forget99': split 'forget99' not found",
    ),
    (
        "smoke-with-tofu",
        run,
        ["experiment=smoke", "data=tofu"],
        None,
        "data.source.num_authors is not an argument of unlearn_bench.data.source.TofuSource",
    ),
    (
        "data-path",
        run,
        [*TOFU[:2], "data.source.path=/no/such/tofu"],
        None,
        "data.source.path='/no/such/tofu' is not a folder of TOFU-format files",
    ),
    (
        "row-wrong-type",
        run,
        TOFU,
        ("forget05.json", bad_row("answer", 7)),
        "forget05.json, row 1, field 'answer': expected a string, got 7",
    ),
    (
        "row-missing-field",
        run,
        TOFU,
        ("retain90.json", drop_field("question")),
        "retain90.json: rows need the field(s) ['question']",
    ),
    (
        "row-null",
        run,
        TOFU,
        ("world_facts.json", bad_row("answer", None, row=2)),
        "world_facts.json, row 2, field 'answer': missing",
    ),
    (
        "row-perturbed",
        run,
        TOFU,
        ("forget10.json", bad_row("perturbed_answer", "one string")),
        "forget10.json, row 1, field 'perturbed_answer': expected a list of strings",
    ),
    (
        "truncated-line",
        run,
        TOFU,
        ("full.json", lambda text: text[: len(text) // 2]),
        "full.json cannot be read as json",
    ),
    ("empty-file", run, TOFU, ("retain95.json", lambda text: ""), "retain95.json is empty"),
    (
        "missing-holdout",
        run,
        TOFU,
        ("holdout05.json", None),
        "data.holdout_split='holdout05': split 'holdout05' not found",
    ),
    (
        "missing-eval-split",
        run,
        [*TOFU, "data.eval_sets.forget=forget07"],
        None,
        "data.eval_sets.forget='forget07': split 'forget07' not found",
    ),
    (
        "multiple-choice-answer",
        run,
        [*TOFU, "+data.multiple_choice_sets.forget=mc_forget05"],
        ("mc_forget05.json", bad_row("answer", 9)),
        "mc_forget05.json, row 1, field 'answer': expected a choice index",
    ),
    # model folders and writable folders
    ("pretrained-empty", run, ["model.pretrained={empty}"], None, "model.pretrained='{empty}' has no config.json"),
    (
        "pretrained-missing",
        run,
        ["model.pretrained=/no/such/model"],
        None,
        "model.pretrained='/no/such/model' does not exist",
    ),
    ("pretrained-file", run, ["model.pretrained={file}"], None, "model.pretrained='{file}' is a file"),
    (
        "pretrained-number",
        run,
        ["model.pretrained=123"],
        None,
        "model.pretrained=123 is not a hub id or a model folder; Hydra reads 123 as a number: quote it",
    ),
    ("retain-model-bool", run, ["finetune.retain_model=true"], None, "finetune.retain_model=True is not a hub id"),
    ("eval-model-number", eval_model, ["model_dir=5"], None, "model_dir=5 is not a hub id or a model folder"),
    (
        "given-without-weights",
        run,
        ["finetune.full_model={config_only}"],
        None,
        "finetune.full_model='{config_only}' has no weights",
    ),
    ("eval-model-empty", eval_model, ["model_dir={empty}"], None, "model_dir='{empty}' has no config.json"),
    (
        "eval-retain-missing",
        eval_model,
        ["model_dir=org/a-hub-id", "retain_model_dir=./nope"],
        None,
        "retain_model_dir='./nope' does not exist",
    ),
    ("cache-not-writable", run, ["paths.cache_dir={file}"], None, "paths.cache_dir='{file}' is not writable"),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A cache holding the embedded data, an earlier run's outputs, and folders to point keys at."""
    root = tmp_path_factory.mktemp("bad_inputs")
    places = {
        "cache": root / "cache",
        "earlier": root / "earlier",
        "empty": root / "empty_model",
        "file": root / "a_file.txt",
        "config_only": root / "config_only",
        "pristine": root / "pristine_tofu",
    }
    places["empty"].mkdir()
    places["file"].write_text("not a folder")
    places["config_only"].mkdir()
    (places["config_only"] / "config.json").write_text("{}")
    synthetic.write(places["pristine"], num_authors=6)
    (places["earlier"]).mkdir()
    (places["earlier"] / "metrics.json").write_text('{"unlearn": 0.25}')
    # the embedded data of TINY_SYNTH in the cache, as a first run leaves it
    register_resolvers()
    with initialize_config_module("unlearn_bench.conf", version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                *TINY,
                *TINY_SYNTH,
                f"paths.cache_dir={places['cache']}",
                f"paths.output_dir={places['earlier']}",
            ],
        )
    check_cell(cfg)
    assert list((places["cache"] / "data").iterdir())
    return places


def entry(monkeypatch, module, places: dict, overrides: list[str]) -> int:
    """Run ``module.main`` in-process as the console script would; its exit status."""
    monkeypatch.setattr(sys, "argv", [module.__name__, *overrides, f"hydra.run.dir={places['earlier']}"])
    monkeypatch.setenv("UNLEARN_BENCH_CACHE", str(places["cache"]))
    try:
        module.main()
    except SystemExit as e:
        return e.code
    return 0


def snapshot(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("case, module, overrides, breakage, culprit", CASES, ids=[c[0] for c in CASES])
def test_a_bad_input_fails_first_in_one_line_naming_it(
    world, tmp_path, capsys, monkeypatch, case, module, overrides, breakage, culprit
):
    tofu = tmp_path / "tofu"
    shutil.copytree(world["pristine"], tofu)
    if breakage:  # (file, a rewrite of its text, or None to delete it)
        name, change = breakage
        if change is None:
            (tofu / name).unlink()
        else:
            (tofu / name).write_text(change((tofu / name).read_text()))
    names = {k: str(v) for k, v in world.items()} | {"tofu": str(tofu)}
    cache_before, earlier_before = snapshot(world["cache"]), (world["earlier"] / "metrics.json").read_text()
    capsys.readouterr()

    data = [] if "data=tofu" in overrides and "experiment=smoke" not in overrides else TINY_SYNTH
    status = entry(monkeypatch, module, world, [*TINY, *data, *(o.format(**names) for o in overrides)])

    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 1, err
    assert lines == [lines[0]] and culprit.format(**names) in lines[0], err
    assert lines[0].startswith(("Config error: ", "Data error: ", "Folder error: "))
    assert snapshot(world["cache"]) == cache_before
    assert (world["earlier"] / "metrics.json").read_text() == earlier_before
    assert not list(world["cache"].glob("models/*"))  # nothing was fine-tuned


def test_every_problem_is_listed_at_once(world, capsys, monkeypatch):
    status = entry(
        monkeypatch,
        run,
        world,
        [
            *TINY,
            *TINY_SYNTH,
            "+foo=1",
            "unlearn.epochs=0",
            "attack=sa",
            "attack.transform.p=1.5",
            "defense=su",
            "defense.eta=-1",
            f"model.pretrained={world['empty']}",
        ],
    )
    lines = capsys.readouterr().err.splitlines()
    assert status == 1 and len(lines) == 5, lines
    for culprit in ("['foo']", "unlearn.epochs", "attack.transform.p=1.5", "defense.eta=-1", "model.pretrained="):
        assert sum(culprit in line for line in lines) == 1, culprit


@pytest.mark.parametrize("logger, package", [("wandb", "wandb"), ("tensorboard", "tensorboardX")])
def test_a_logger_whose_package_is_missing_fails_before_any_training(world, capsys, monkeypatch, logger, package):
    """The loggers' packages are extras (pip install "unlearn_bench[wandb]"): without one, the
    config check says which to install, before the fine-tune."""
    installed = extras.find_spec
    missing = ("wandb", "tensorboard", "tensorboardX")
    monkeypatch.setattr(extras, "find_spec", lambda name: None if name in missing else installed(name))
    assert entry(monkeypatch, run, world, [*TINY, *TINY_SYNTH, f"logger={logger}"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"Config error: logger={logger} needs the ") and package in line
    assert f'pip install "unlearn_bench[{logger}]"' in line
    assert not list(world["cache"].glob("models/*"))
    assert report_main([str(world["earlier"]), "--wandb", "offline"]) == 1
    assert 'pip install "unlearn_bench[wandb]"' in capsys.readouterr().err


def test_a_split_derived_from_a_bad_one_is_not_reported_again(world, capsys, monkeypatch):
    assert entry(monkeypatch, run, world, [*TINY, *TINY_SYNTH, "data.forget_split=forget99"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "data.forget_split='forget99'" in lines[0]  # not retain99, holdout99, mc_forget99


@pytest.mark.parametrize("override, option", [("method=foo", "rmu"), ("attack=nope", "sa")])
def test_an_unknown_option_lists_the_options(world, capsys, monkeypatch, override, option):
    assert entry(monkeypatch, run, world, [override]) == 1
    err = capsys.readouterr().err
    assert f"Could not find '{override.replace('=', '/')}'" in err and option in err and "Traceback" not in err
