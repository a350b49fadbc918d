import json
import math
from pathlib import Path

import pytest
import yaml

from common.claim_checks import CheckError, compile_check
from common.records import RecordError, load_records
from common.reported import TableError, load_reported
from common.tables import render_markdown, render_paper_tables, summarize
from common.verdicts import decide

REPORTED = {
    "paper": "Toy (Doe et al., 2024), arXiv 0000.00000",
    "rows": [
        {
            "table": "Table 1",
            "row": "Ours-A",
            "dataset": "Big logs",
            "metrics": {"auc": 0.81, "gauc": 0.7},
            "source": "arXiv 0000.00000v1, Table 1",
            "experiment": "exp_a",
        },
        {
            "table": "Table 1",
            "row": "Base-B",
            "dataset": "Big logs",
            "metrics": {},
            "source": "arXiv 0000.00000v1, Table 1",
            "experiment": "exp_b",
        },
        {
            "table": "Table 2",
            "row": "Ablation",
            "dataset": "Small logs",
            "metrics": {"auc": 0.75},
            "source": "arXiv 0000.00000v1, Table 2",
            "experiment": "exp_missing",
        },
    ],
    "claims": [
        {"id": "c1", "text": "A beats B on GAUC", "check": "gauc(exp_a) > gauc(exp_b)"},
        {"id": "c2", "text": "B matches A on AUC", "check": "auc(exp_b) >= auc(exp_a)"},
        {"id": "c3", "text": "A beats the ablation", "check": "gauc(exp_a) > gauc(exp_missing)"},
    ],
}
# exp_a: gauc 0.70/0.72/0.74 (mean 0.72, std 0.02), auc 0.80/0.81/0.82 (mean 0.81, std 0.01)
# exp_b: gauc 0.68/0.70 (mean 0.69, std sqrt(2) * 0.01), auc 0.79/0.79 (mean 0.79, std 0)
RUNS = {
    "exp_a": [(0, 0.80, 0.70), (1, 0.81, 0.72), (2, 0.82, 0.74)],
    "exp_b": [(0, 0.79, 0.68), (1, 0.79, 0.70)],
}


def _write_record(path: Path, **record: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record), encoding="utf-8")


@pytest.fixture
def package(tmp_path: Path) -> Path:
    (tmp_path / "reported.yaml").write_text(yaml.safe_dump(REPORTED, sort_keys=False), encoding="utf-8")
    for experiment, runs in RUNS.items():
        for seed, auc, gauc in runs:
            _write_record(
                tmp_path / "results" / experiment / f"seed{seed}.json",
                paper="toy",
                experiment=experiment,
                model="toy",
                dataset="synthetic",
                seed=seed,
                metrics={"auc": auc, "gauc": gauc},
            )
    return tmp_path


@pytest.fixture
def records(package: Path) -> list:
    return load_records(package / "results")


@pytest.fixture
def summaries(records: list) -> dict:
    return summarize(records)


def _by_experiment(records: list) -> dict:
    grouped: dict = {}
    for record in records:
        grouped.setdefault(record.experiment, []).append(record)
    return grouped


def evaluate_claim(check: str, records: list):
    return decide(compile_check(check), _by_experiment(records))


def test_summarize_mean_and_sample_std(summaries: dict) -> None:
    a, b = summaries["exp_a"], summaries["exp_b"]
    assert (a.n, a.seeds, a.datasets, a.data_seeds) == (3, [0, 1, 2], ["synthetic"], [None])
    assert a.metrics["gauc"].mean == pytest.approx(0.72)
    assert a.metrics["gauc"].std == pytest.approx(0.02)
    assert a.metrics["auc"].std == pytest.approx(0.01)
    assert b.metrics["gauc"].mean == pytest.approx(0.69)
    assert b.metrics["gauc"].std == pytest.approx(math.sqrt(2) * 0.01)
    assert b.metrics["auc"].std == pytest.approx(0.0)


def test_single_run_has_zero_std(package: Path) -> None:
    records = [r for r in load_records(package / "results") if r.seed == 0]
    summary = summarize(records)["exp_a"]
    assert (summary.n, summary.metrics["auc"].mean, summary.metrics["auc"].std) == (1, 0.80, 0.0)


def test_claim_verdicts(records: list) -> None:
    # exp_a - exp_b per shared seed: +0.02, +0.02 (gauc); +0.01, +0.02 (auc): two paired runs
    holds = evaluate_claim("gauc(exp_a) > gauc(exp_b)", records)
    assert holds.values == {"gauc(exp_a)": pytest.approx(0.71), "gauc(exp_b)": pytest.approx(0.69)}
    assert holds.verdict == "holds" and holds.margin == pytest.approx(0.02) and holds.low == pytest.approx(0.02)
    assert "2 paired runs" in holds.interval and "seeds only" in holds.interval
    reverse = evaluate_claim("auc(exp_b) >= auc(exp_a)", records)
    assert reverse.verdict in ("does not hold", "inconclusive") and reverse.margin == pytest.approx(-0.015)
    not_run = evaluate_claim("gauc(exp_a) > gauc(exp_missing)", records)
    assert (not_run.verdict, not_run.missing) == ("not run", ["gauc(exp_missing)"])
    assert not_run.values == {"gauc(exp_a)": pytest.approx(0.72)}
    no_metric = evaluate_claim("logloss(exp_a) < 1", records)
    assert (no_metric.verdict, no_metric.missing) == ("not run", ["logloss(exp_a)"])


@pytest.mark.parametrize(
    ("check", "margin"),
    [
        ("0.5 < gauc(exp_b) < max(gauc(exp_a), auc(exp_b)) - 0.01", 0.09),  # min(0.69 - 0.5, 0.79 - 0.01 - 0.69)
        ("gauc(exp_a) < gauc(exp_b) < 1", -0.02),
        ("abs(gauc(exp_b) - gauc(exp_a)) / 2 < 0.02 and auc(exp_a) > -auc(exp_b) * -1", 0.01),  # min(.01, .015)
        ("not gauc(exp_a) > 0.5 or 1 + 1 < 2", 0.0),  # max(-(0.71 - 0.5), 2 - 2)
    ],
)
def test_claim_margins(records: list, check: str, margin: float) -> None:
    # on the two paired seeds: gauc a 0.71, b 0.69; auc a 0.805, b 0.79
    assert evaluate_claim(check, records).margin == pytest.approx(margin, abs=1e-9)


@pytest.mark.parametrize(
    "check",
    [
        "__import__('os')",
        "__import__('os').system('true') > 0",
        "gauc(exp_a).real > 0",
        "(lambda: 1)() > 0",
        "gauc('exp_a') > 0.5",
        "gauc(exp=exp_a) > 0.5",
        "gauc(exp_a, exp_b) > 0.5",
        "gauc(exp_a) ** 2 > 0.5",
        "[gauc(exp_a)][0] > 0.5",
        "max(gauc(exp_a)) > 0.5",
        "gauc(exp_a)",
        "gauc(exp_a) > 0.5 +",
        "gauc(exp_a) == gauc(exp_b)",
        "True",
    ],
)
def test_forbidden_checks_raise(check: str) -> None:
    with pytest.raises(CheckError) as error:
        compile_check(check)
    assert repr(check) in str(error.value)


def test_division_by_zero_is_a_check_error() -> None:
    compiled = compile_check("gauc(exp_a) / (auc(exp_b) - auc(exp_b)) > 1")
    with pytest.raises(CheckError, match="divides by zero"):
        compiled.evaluate({"gauc(exp_a)": 0.7, "auc(exp_b)": 0.8})


def test_load_reported(package: Path) -> None:
    reported = load_reported(package / "reported.yaml")
    assert reported.paper == REPORTED["paper"]
    assert [row.experiment for row in reported.rows] == ["exp_a", "exp_b", "exp_missing"]
    assert reported.rows[0].metrics == {"auc": 0.81, "gauc": 0.7}
    assert [claim.id for claim in reported.claims] == ["c1", "c2", "c3"]


def _reported_with(tmp_path: Path, row_change: dict, claim_change: dict | None = None) -> Path:
    data = json.loads(json.dumps(REPORTED))
    data["rows"][0].update(row_change)
    data["rows"][0] = {key: value for key, value in data["rows"][0].items() if value is not None}
    data["claims"][0].update(claim_change or {})
    path = tmp_path / "bad" / "reported.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("row_change", "claim_change", "expected"),
    [
        ({"source": None}, None, "lacks keys ['source']"),
        ({"source": ""}, None, "source=''"),
        ({"metrics": {"auc": "0.81"}}, None, "'0.81'"),
        ({"sourse": "typo"}, None, "sourse"),
        ({}, {"check": "open('x').read() > 0"}, "open('x').read() > 0"),
        ({}, {"check": "gauc(exp_a) >"}, "gauc(exp_a) >"),
    ],
)
def test_bad_reported_names_file(tmp_path: Path, row_change: dict, claim_change: dict, expected: str) -> None:
    path = _reported_with(tmp_path, row_change, claim_change)
    with pytest.raises(TableError) as error:
        load_reported(path)
    assert str(path) in str(error.value)
    assert expected in str(error.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"experiment": "exp_a", "seed": 0,', "not a readable JSON"),
        ('{"seed": 0, "dataset": "d", "metrics": {}}', "'experiment' is missing"),
        ('{"experiment": "exp_a", "seed": 0, "dataset": "d"}', "'metrics' is missing"),
        ('{"experiment": "exp_a", "seed": "0", "dataset": "d", "metrics": {}}', "'seed'"),
        ('{"experiment": "exp_a", "seed": 0, "dataset": "d", "metrics": {"auc": "high"}}', "'metrics'"),
    ],
)
def test_bad_record_names_file(package: Path, content: str, expected: str) -> None:
    bad = package / "results" / "exp_a" / "zz_bad.json"
    bad.write_text(content, encoding="utf-8")
    with pytest.raises(RecordError) as error:
        load_records(package / "results")
    assert str(bad) in str(error.value)
    assert expected in str(error.value)


def test_duplicate_seed_is_rejected(package: Path) -> None:
    copy = package / "results" / "exp_a" / "again" / "seed0.json"
    copy.parent.mkdir()
    copy.write_text((package / "results" / "exp_a" / "seed0.json").read_text(), encoding="utf-8")
    with pytest.raises(RecordError, match="repeats experiment 'exp_a'"):
        load_records(package / "results")


def test_records_sorted_and_absent_dir_is_empty(package: Path) -> None:
    records = load_records(package / "results")
    assert [(r.experiment, r.seed) for r in records] == [
        ("exp_a", 0),
        ("exp_a", 1),
        ("exp_a", 2),
        ("exp_b", 0),
        ("exp_b", 1),
    ]
    assert load_records(package / "no_results") == []


def test_render_markdown(package: Path, records: list) -> None:
    reported = load_reported(package / "reported.yaml")
    text = render_markdown("toy", reported, records, package)
    lines = text.splitlines()
    assert lines[0] == (
        "<!-- generated by `python run.py paper=toy mode=table mode.write=true`; do not edit by hand -->"
    )
    assert f"# Reproduced results: {REPORTED['paper']}" in lines
    assert lines.index("## Table 1") < lines.index("## Table 2") < lines.index("## Claims (the paper's)")
    assert (
        "| Ours-A (`exp_a`) | Big logs | auc 0.8100 · gauc 0.7000 | auc 0.8100 ± 0.0100 · gauc 0.7200 ± 0.0200 "
        "| 3 (3 seeds, 1 data draw) | synthetic | records [s0](results/exp_a/seed0.json) "
        "[s1](results/exp_a/seed1.json) [s2](results/exp_a/seed2.json) |"
    ) in lines
    assert "| Base-B (`exp_b`) | Big logs | — | auc 0.7900 ± 0.0000 · gauc 0.6900 ± 0.0141 | 2 (2 seeds" in text
    assert "| Ablation (`exp_missing`) | Small logs | auc 0.7500 | not run | — | — | — |" in lines
    assert (
        "| c1: A beats B on GAUC | `gauc(exp_a) > gauc(exp_b)` | gauc(exp_a) = 0.7100<br>gauc(exp_b) = 0.6900 "
        "| +0.0200 [+0.0200, +0.0200] | **holds** "
        "| 2 paired runs, 1 data draw; seeds only (no per-unit contributions) |"
    ) in lines
    assert "gauc(exp_missing) = not run | — | **not run** |" in text
    assert lines[-4:] == ["## Sources", "", "- arXiv 0000.00000v1, Table 1", "- arXiv 0000.00000v1, Table 2"]
    assert "## Headroom" not in text
    assert text == render_markdown("toy", load_reported(package / "reported.yaml"), records, package)
    assert render_paper_tables("toy", package / "reported.yaml", package / "results") == text


def test_headroom_rows_come_first_and_checks_apart_from_claims(package: Path) -> None:
    for name, gauc in (("oracle", 0.95), ("trivial_popularity", 0.6)):
        for seed in (0, 1, 2):
            _write_record(
                package / "results" / name / f"seed{seed}.json",
                paper="toy", experiment=name, model=name, dataset="synthetic", seed=seed,
                metrics={"auc": gauc, "gauc": gauc},
            )  # fmt: skip
    reported = {
        **REPORTED,
        "checks": [{"id": "room", "text": "oracle above trivial", "check": "gauc(oracle) > gauc(trivial_popularity)"}],
    }
    (package / "reported.yaml").write_text(yaml.safe_dump(reported, sort_keys=False), encoding="utf-8")
    text = render_paper_tables("toy", package / "reported.yaml", package / "results")
    lines = text.splitlines()
    headroom = lines.index("## Headroom on our data (no learning)")
    assert headroom < lines.index("## Table 1") < lines.index("## Claims (the paper's)")
    assert lines.index("## Claims (the paper's)") < lines.index("## Benchmark checks (ours, not the paper's)")
    oracle_row = next(line for line in lines if line.startswith("| `oracle`"))
    assert lines.index(oracle_row) < next(
        i for i, line in enumerate(lines) if line.startswith("| `trivial_popularity`")
    )
    assert "auc 0.9500 ± 0.0000 · gauc 0.9500 ± 0.0000" in oracle_row
    assert "| room: oracle above trivial |" in text and "+0.3500 [+0.3500, +0.3500] | **holds**" in text


def test_records_of_another_paper_in_the_same_folder_are_left_out(package: Path) -> None:
    _write_record(
        package / "results" / "other" / "seed0.json",
        paper="toy_v2", experiment="exp_a", model="toy", dataset="synthetic", seed=0,
        metrics={"auc": 0.1, "gauc": 0.1},
    )  # fmt: skip
    assert len(load_records(package / "results", "toy")) == 5
    assert len(load_records(package / "results", "toy_v2")) == 1
    assert summarize(load_records(package / "results", "toy"))["exp_a"].metrics["gauc"].mean == pytest.approx(0.72)


def test_data_seed_of_old_records_comes_from_the_generator_config(package: Path) -> None:
    _write_record(
        package / "results" / "old" / "seed7.json", paper="toy", experiment="exp_c", model="toy",
        dataset="synthetic", seed=7, metrics={"auc": 0.5}, config={"data": {"generator": {"seed": 3}}},
    )  # fmt: skip
    _write_record(
        package / "results" / "new" / "seed7.json", paper="toy", experiment="exp_c", model="toy",
        dataset="synthetic", seed=7, data_seed=7, metrics={"auc": 0.5},
    )  # fmt: skip
    draws = sorted(r.data_seed for r in load_records(package / "results") if r.experiment == "exp_c")
    assert draws == [3, 7]


GRID = {"id": "cells", "title": "Per cell", "metrics": ["auc", "gauc"], "experiments": ["exp_a", "exp_b"]}


def test_grid_marks_the_best_and_counts_cells_for_claims(package: Path) -> None:
    reported = {
        **REPORTED,
        "rows": [{**REPORTED["rows"][1], "ours": ["gauc"]}],
        "grids": [{**GRID, "reference": "exp_b"}],
        "claims": [
            {
                "id": "wins",
                "text": "A beats B everywhere",
                "check": "cells_above(exp_a) > 1.5 and cells_best(exp_b) < 0.5",
            }
        ],
    }
    (package / "reported.yaml").write_text(yaml.safe_dump(reported, sort_keys=False), encoding="utf-8")
    text = render_paper_tables("toy", package / "reported.yaml", package / "results")
    assert "| auc | **0.8100** | 0.7900 |" in text and "| gauc | **0.7200** | 0.6900 |" in text
    assert "| best in (cells; `cells_best`) | 2 | 0 |" in text and "| above `exp_b` (`cells_above`) | 2 | 0 |" in text
    assert "gauc 0.6900 ± 0.0141 |" in text and "auc 0.79" not in text.split("## Per cell")[0]  # `ours`
    # the counts are recomputed in every bootstrap replicate: two runs cannot settle them
    assert "cells_above(exp_a) = 2.0000" in text and "+0.5000 [-0.5000, +0.5000] | **inconclusive**" in text


def test_grid_reference_must_be_one_of_its_experiments(tmp_path: Path) -> None:
    path = tmp_path / "reported.yaml"
    path.write_text(yaml.safe_dump({**REPORTED, "grids": [{**GRID, "reference": "exp_z"}]}), encoding="utf-8")
    with pytest.raises(TableError, match="reference 'exp_z' must be one of its experiments"):
        load_reported(path)
