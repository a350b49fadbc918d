"""Three-way verdicts on constructed records whose answer is known."""

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from common.claim_checks import compile_check
from common.records import RunRecord
from common.units import UnitContributions, grouped_auc_units, load_units, save_units
from common.verdicts import decide, run_factor


def _run(experiment: str, seed: int, value: float, data_seed: int | None = 0, units=None) -> RunRecord:
    return RunRecord(Path(f"{experiment}_{seed}.json"), "toy", experiment, "toy", seed, data_seed, {"m": value}, units)


def _decide(check: str, runs: list[RunRecord]):
    grouped: dict = {}
    for run in runs:
        grouped.setdefault(run.experiment, []).append(run)
    return decide(compile_check(check), grouped)


def _seeded(a: list[float], b: list[float]) -> list[RunRecord]:
    return [_run("a", s, v) for s, v in enumerate(a)] + [_run("b", s, v) for s, v in enumerate(b)]


def test_a_clear_gain_holds_and_a_clear_loss_does_not_hold() -> None:
    a, b = [0.71, 0.72, 0.70, 0.73, 0.71], [0.66, 0.68, 0.65, 0.67, 0.66]
    gain = _decide("m(a) > m(b)", _seeded(a, b))
    assert gain.verdict == "holds" and gain.low > 0 and gain.margin == pytest.approx(0.05)
    loss = _decide("m(a) < m(b)", _seeded(a, b))
    assert loss.verdict == "does not hold" and loss.high < 0


def test_a_difference_within_seed_noise_is_inconclusive() -> None:
    # the TWIN-V2 case: +0.049, +0.024, -0.006 by seed
    runs = _seeded([0.629, 0.574, 0.558], [0.580, 0.550, 0.564])
    decision = _decide("m(a) > m(b)", runs)
    assert decision.verdict == "inconclusive" and decision.low < 0 < decision.high
    assert "3 paired runs" in decision.interval and "seeds only" in decision.interval


def test_the_interval_matches_the_paired_t_interval_for_a_difference() -> None:
    differences = np.array([0.03, -0.01, 0.02, 0.05, 0.00])
    runs = _seeded(list(0.6 + differences), [0.6] * 5)
    decision = _decide("m(a) > m(b)", runs)
    half = stats.t.ppf(0.975, 4) * differences.std(ddof=1) / np.sqrt(5)
    assert decision.low == pytest.approx(differences.mean() - half, abs=0.35 * half)
    assert decision.high == pytest.approx(differences.mean() + half, abs=0.35 * half)


def test_pairing_removes_a_seed_effect_shared_by_both_experiments() -> None:
    base = [0.55, 0.70, 0.60, 0.75, 0.65]
    runs = _seeded([x + 0.01 for x in base], base)
    assert _decide("m(a) > m(b)", runs).verdict == "holds"
    unpaired = [_run("a", s, x + 0.01) for s, x in enumerate(base)] + [_run("b", s + 10, x) for s, x in enumerate(base)]
    decision = _decide("m(a) > m(b)", unpaired)
    assert decision.verdict == "inconclusive" and "unpaired" in decision.interval


def _user_units(rng: np.random.Generator, shift: float, users: int = 60) -> UnitContributions:
    values = np.clip(0.6 + shift + rng.normal(0, 0.15, users), 0, 1)
    return UnitContributions("user", np.arange(users)).add_mean("m", values, rng.integers(5, 20, users))


def test_test_set_noise_shared_by_every_seed_widens_the_interval() -> None:
    """Five seeds that agree to the last digit on one test set of 60 noisy users: the seeds alone say "holds", the
    bootstrap over the users (drawn once, shared by every seed) says the test set cannot tell."""
    rng = np.random.default_rng(0)
    users_a, users_b = _user_units(rng, 0.01), _user_units(np.random.default_rng(1), 0.0)
    va, vb = users_a.value("m"), users_b.value("m")
    assert va > vb
    seeds_only = _seeded([va] * 5, [vb] * 5)
    assert _decide("m(a) > m(b)", seeds_only).verdict == "holds"
    with_units = [_run("a", s, va, units=users_a) for s in range(5)] + [
        _run("b", s, vb, units=users_b) for s in range(5)
    ]
    decision = _decide("m(a) > m(b)", with_units)
    assert decision.verdict == "inconclusive" and "bootstrap over seeds and users" in decision.interval


def test_paired_units_cancel_what_the_experiments_share() -> None:
    """Both experiments score the same hard and easy users; a per-user gain of 0.02 holds once users are paired."""
    rng = np.random.default_rng(2)
    difficulty = rng.normal(0, 0.2, 80)
    weights = np.full(80, 10)
    a = UnitContributions("user", np.arange(80)).add_mean("m", 0.62 + difficulty + rng.normal(0, 0.01, 80), weights)
    b = UnitContributions("user", np.arange(80)).add_mean("m", 0.60 + difficulty, weights)
    runs = [_run("a", s, a.value("m"), units=a) for s in range(5)] + [
        _run("b", s, b.value("m"), units=b) for s in range(5)
    ]
    assert _decide("m(a) > m(b)", runs).verdict == "holds"


def test_no_gain_is_rarely_called_a_gain() -> None:
    """Calibration: with no true difference, "holds" or "does not hold" comes out in about 5% of draws."""
    rng = np.random.default_rng(3)
    decided = 0
    trials = 150
    for _ in range(trials):
        noise = rng.normal(0, 0.01, size=(2, 5))
        decided += _decide("m(a) > m(b)", _seeded(list(0.6 + noise[0]), list(0.6 + noise[1]))).verdict != "inconclusive"
    assert decided / trials < 0.12


def test_one_run_without_units_has_no_interval() -> None:
    decision = _decide("m(a) > m(b)", _seeded([0.7], [0.6]))
    assert decision.verdict == "inconclusive" and decision.low is None and "no interval" in decision.interval


def test_a_derived_metric_with_nothing_to_read_is_not_run() -> None:
    # e.g. "best in most cells" counted over the methods with records, when no method has any yet
    decision = decide(compile_check("best(a) > 9"), {}, derive=lambda metric, experiment: ([], lambda values: 0.0))
    assert decision.verdict == "not run" and decision.missing


def test_run_factor_is_t_over_z_with_the_small_sample_correction() -> None:
    assert run_factor(1) == 0.0
    assert run_factor(5) == pytest.approx(stats.t.ppf(0.975, 4) / stats.norm.ppf(0.975) * np.sqrt(5 / 4))


def test_units_round_trip_and_reproduce_the_metrics(tmp_path: Path) -> None:
    from common.metrics import gauc

    rng = np.random.default_rng(4)
    users = rng.integers(0, 30, 600)
    labels = rng.integers(0, 2, 600)
    scores = labels * 0.3 + rng.random(600)
    units = grouped_auc_units(labels, scores, users, unit="user")
    slides = UnitContributions("slide", np.array(["s1", "s2", "s3", "s4"]), strata=np.array([1, 0, 1, 0]))
    slides.add_auc("auc", [1, 0, 1, 0], [0.9, 0.2, 0.4, 0.4]).add_mean("sensitivity", [1, 0, 0, 0], [1, 0, 1, 0])
    saved = load_units(save_units(units, tmp_path / "units.npz"))
    assert saved.unit == "user" and saved.value("gauc") == pytest.approx(gauc(labels, scores, users))
    slides_saved = load_units(save_units(slides, tmp_path / "slides.npz"))
    assert slides_saved.value("auc") == pytest.approx(0.875) and slides_saved.value("sensitivity") == 0.5
    assert slides_saved.strata.tolist() == [1, 0, 1, 0]


SCORES = {  # one score draw per AUC path of common.units: few distinct scores, ties among many, all distinct
    "few": lambda rng: rng.integers(0, 3, 300) / 7,
    "tied": lambda rng: np.concatenate([rng.integers(0, 3, 100) / 7, rng.normal(size=200)]),
    "distinct": lambda rng: rng.normal(size=300),
}


@pytest.mark.parametrize("kind", SCORES)
def test_replicate_aucs_equal_the_auc_of_each_replicates_repeated_units(kind) -> None:
    from sklearn.metrics import roc_auc_score

    from common.units import COUNT_DTYPE, aggregate

    rng = np.random.default_rng(0)
    labels, scores = rng.integers(0, 2, 300), SCORES[kind](rng)
    counts = rng.integers(0, 3, (4, 300))
    units = UnitContributions("sample", np.arange(300)).add_auc("auc", labels, scores)
    expected = [roc_auc_score(np.repeat(labels, row), np.repeat(scores, row)) for row in counts]
    assert aggregate(units.metrics["auc"], counts.astype(float)) == pytest.approx(expected, abs=1e-12)
    # the bootstrap's float32 counts give the float64 result to the last bit
    single = aggregate(units.metrics["auc"], counts.astype(COUNT_DTYPE))
    assert single.dtype == np.float64 and np.array_equal(single, aggregate(units.metrics["auc"], counts.astype(float)))


def test_units_labelled_neither_class_take_no_part_in_an_auc() -> None:
    units = UnitContributions("slide", np.arange(5)).add_auc("auc", [1, 0, np.nan, 1, 0], [0.9, 0.1, 0.0, 0.2, 0.5])
    assert units.value("auc") == pytest.approx(0.75)
