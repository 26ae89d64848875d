"""benchmarks/stealthy_attack.py's arithmetic on hand-made cells: README's Results come from it,
so its effects, per base model and overall, and its checks must be right."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("stealthy_attack", ROOT / "benchmarks" / "stealthy_attack.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def cell(attack, defense, base, seed, clean, trigger, unlearn=0.28, reached=True, templated=0.95):
    return {
        "config": {"method": "gd", "attack": attack, "defense": defense, "seed": seed, "finetune_seed": base},
        "unlearn": unlearn,
        "clean_utility": clean,
        "trigger_utility": trigger,
        "reached_stop_at_unlearn": reached,
        "base_model": {"retain": {"plain": 1.0, "templated": templated}},
    }


def write(folder: Path, cells: list[dict]) -> None:
    for i, m in enumerate(cells):
        (folder / str(i)).mkdir(parents=True)
        (folder / str(i) / "metrics.json").write_text(json.dumps(m))


def test_effects_per_base_model_and_overall(tmp_path):
    # base 0: trigger 0.8 -> 0.4 under SA (drop 50%), SU back to 0.6 (half); base 1: 0.8 -> 0.7, SU 0.65 (worse)
    rows = {0: (0.8, 0.4, 0.6), 1: (0.8, 0.7, 0.65)}
    no_sa_sa, sa_su = [], []
    for base, (none, sa, su) in rows.items():
        for seed in (0, 1):
            no_sa_sa += [cell("none", "none", base, seed, 0.9, none), cell("sa", "none", base, seed, 0.9, sa)]
            sa_su.append(cell("sa", "su", base, seed, 0.9, su, reached=base == 0, templated=0.85 + 0.1 * base))
    write(tmp_path / "a", no_sa_sa)
    write(tmp_path / "b", sa_su)
    lines, checks = bench.report(bench.collect([tmp_path / "a", tmp_path / "b"]), ["gd"])
    text = "\n".join(lines)
    assert (
        "gd base 0: templated ROUGE-L before unlearning ≥ 0.850 on every set; SA drop +50.0%, gap widened +0.400, "
        "SU wins back 50%" in text
    )
    assert (
        "gd base 1: templated ROUGE-L before unlearning ≥ 0.950 on every set; SA drop +12.5%, gap widened +0.100, "
        "SU wins back -50%" in text
    )
    # overall: trigger 0.8 -> 0.55 (drop 31.25%), SU 0.625: (0.625 - 0.55) / 0.25 = 30%
    assert "gd overall: SA drop +31.2%, gap widened +0.250, SU wins back 30%" in text
    assert "2 cells stopped short of the target" in text  # base 1's SU cells never reached the target
    assert "| gd | SA+SU | 4 | 2 | 0.280 ± 0.000 | 0.900 ± 0.000 | 0.625 ± 0.046 | 0.275 |" in text
    verdicts = {c.split(": ", 1)[1].rsplit(" (", 1)[0]: c.endswith(" met") for c in checks}  # else "missed"
    assert verdicts == {
        "base templated ROUGE-L, every base model: 0.850": False,
        "SA's relative drop in trigger utility, overall: 0.312": True,
        "SA's relative drop in trigger utility, every base model: 0.125": False,
        "widening of the clean - trigger gap, overall: 0.250": True,
        "share of the drop SU wins back, overall: 0.300": False,
        "share of the drop SU wins back, every base model (> 0): -0.500": False,
    }
