"""`python run.py` as a user runs it: smoke runs, tables, benchmarks, bad input, DDP, resume, wandb."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from common.tables import render_paper_tables
from papers import render_results, reported_path
from tests.conftest import FIXTURES, ROOT

pytestmark = pytest.mark.slow
SMOKE = ("paper=twin", "debug=smoke", "logger=none", "trainer.device=cpu")


def read_record(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def test_smoke_run_writes_the_run_record_and_prints_the_paper_numbers(run_cli, tmp_path):
    completed = run_cli(*SMOKE, f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    record = read_record(tmp_path)
    assert record["paper"] == "twin" and record["experiment"] == "main" and record["model"] == "twin"
    assert record["dataset"] == "synthetic_lifelong" and record["seed"] == 0 and record["device"] == "cpu"
    assert set(record["metrics"]) == {"auc", "gauc", "logloss", "gsu_esu_overlap"}
    assert all(isinstance(value, float) for value in record["metrics"].values())
    assert {"torch", "python"} <= set(record["versions"]) and record["config"]["model"]["name"] == "twin"
    assert "Table 4" in completed.stdout and "0.7336" in completed.stdout  # TWIN's GAUC in Table 4
    assert (tmp_path / "training_curves.png").stat().st_size > 0
    assert "train twin" in completed.stderr  # the progress bar


def test_twin_v2_smoke_run_clusters_and_trains_on_virtual_items(run_cli, tmp_path):
    arguments = [argument for argument in SMOKE if argument != "paper=twin"]
    daily = "life_cycle.rebuild_every_days=1"  # one clustering per sample day (the default is weekly)
    completed = run_cli("paper=twin_v2", *arguments, daily, f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    record = read_record(tmp_path)
    assert record["paper"] == "twin_v2" and record["model"] == "twin_v2"
    assert 0 < record["metrics"]["compression"] < 0.3 and record["metrics"]["cluster_distance"] > 0
    cutoffs = sorted(path.name for path in (tmp_path / "clustering").glob("cutoff_*"))  # one per sample day
    assert cutoffs == [f"cutoff_{day:03d}" for day in range(6)]
    assert (tmp_path / "clustering" / cutoffs[-1] / "shard_000000.npz").is_file()
    assert (tmp_path / "embeddings" / "checkpoints" / "last.pt").is_file()
    assert (tmp_path / "twin_v2" / "checkpoints" / "last.pt").is_file()
    assert "cluster users" in completed.stderr and "train twin_v2" in completed.stderr
    metrics = record["metrics"]  # stage 1's TWIN is the paper's baseline, scored on the same test split
    assert metrics["gauc_gain"] == pytest.approx(metrics["gauc"] - metrics["twin_gauc"])
    assert metrics["auc_gain"] == pytest.approx(metrics["auc"] - metrics["twin_auc"])
    assert "TWIN-V2 minus TWIN" in completed.stdout  # the paper's row, printed beside ours


def test_pepnet_smoke_run_scores_every_domain_and_task(run_cli, tmp_path):
    completed = run_cli("paper=pepnet", *SMOKE[1:], f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    record = read_record(tmp_path)
    assert record["paper"] == "pepnet" and record["model"] == "pepnet" and record["dataset"] == "synthetic_multidomain"
    metrics = record["metrics"]
    cells = [f"gauc_tab{d}_{t}" for d in range(3) for t in ("is_click", "long_view", "is_like")]
    assert all(0 < metrics[cell] < 1 for cell in cells)  # the frequent tasks are defined in every domain
    assert {"gauc_mean", "auc_mean", "gauc_tab2", "gauc_is_hate"} <= set(metrics)
    assert "Table 2, row 'PEPNet, domain A'" in completed.stdout and "gauc_tab0_is_click" in completed.stdout
    assert "train pepnet" in completed.stderr


def test_two_shot_vos_smoke_runs_phase1_bank_and_phase2(run_cli, tmp_path):
    completed = run_cli("paper=two_shot_vos", *SMOKE[1:], f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    record = read_record(tmp_path)
    assert record["paper"] == "two_shot_vos" and record["model"] == "stcn_two_shot"
    assert [stage["name"] for stage in record["stages"]] == ["static", "phase1", "bank", "phase2"]
    metrics = record["metrics"]
    assert {"j_and_f", "jaccard", "boundary_f", "phase1_j_and_f", "bank_jaccard", "bank_copy_nearest_jaccard"} <= set(
        metrics
    )
    assert 0 <= metrics["stage0_j_and_f"] <= 1  # stage 0's model on the validation videos
    assert 0 <= metrics["j_and_f"] <= 1 and metrics["objects"] > 0
    assert 0 < metrics["bank_copy_nearest_jaccard"] <= 1  # copying a labeled frame's mask overlaps the next frames
    banked = sorted((tmp_path / "bank").rglob("*.png"))
    assert banked and (tmp_path / "phase1" / "checkpoints" / "last.pt").is_file()
    assert sorted(path.suffix for path in (tmp_path / "overlays").iterdir()) == [".png", ".png"]
    assert "85.1" in completed.stdout  # the paper's J&F printed beside ours
    assert "pseudo-label bank" in completed.stderr


VOS_FIXTURE = ("data.size=[32,32]", "sampling.crop=[32,32]", "trainer.max_steps=2", "trainer.batch_size=2")


@pytest.mark.parametrize(("dataset", "folder"), [("davis", "davis2017"), ("youtube_vos", "youtube_vos2019")])
def test_two_shot_vos_reads_the_real_layouts(run_cli, tmp_path, dataset, folder):
    root = FIXTURES / folder
    completed = run_cli(
        "paper=two_shot_vos", *SMOKE[1:], f"data={dataset}", f"data.root={root}",
        f"data.two_shot_split={root / 'two_shot_frames.json'}", *VOS_FIXTURE, f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    metrics = read_record(tmp_path)["metrics"]
    if dataset == "davis":
        assert metrics["objects"] == 2 and "j_and_f" in metrics
    else:  # YouTube-VOS valid has no ground truth beyond first frames: nothing scored, the submission written
        assert metrics["objects"] == 0 and "j_and_f" not in metrics
        assert (tmp_path / "submission.zip").stat().st_size > 0
        assert len(list((tmp_path / "submission" / "Annotations" / "1c0b9c2e1a").glob("*.png"))) == 4


def test_ml_fsic_smoke_run_scores_one_five_and_zero_shot_episodes(run_cli, tmp_path):
    completed = run_cli("paper=ml_fsic", *SMOKE[1:], f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    metrics = read_record(tmp_path)["metrics"]
    for shots in (0, 1, 5):
        assert 0 < metrics[f"macro_map_{shots}shot"] <= 1 and 0 < metrics[f"micro_map_{shots}shot"] <= 1
    assert "train word_guided" in completed.stderr


def test_gastric_wsi_smoke_run_screens_slides_and_goes_on_past_a_truncated_one(run_cli, tmp_path, cache_dir):
    completed = run_cli("paper=gastric_wsi", *SMOKE[1:], f"hydra.run.dir={tmp_path / 'run'}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    metrics = read_record(tmp_path / "run")["metrics"]
    assert 0 <= metrics["sensitivity"] <= 1 and 0 <= metrics["specificity"] <= 1 and 0 <= metrics["auc"] <= 1
    assert {"lesion_dice", "max_pool_auc", "heldout_auc", "tissue_dice_network", "tissue_dice_otsu"} <= set(metrics)
    assert metrics["slides_screened"] == 10 and metrics["slides_skipped"] == 0
    screening = tmp_path / "run" / "screening"
    assert (screening / "center1_slide00_overlay.png").stat().st_size > 0
    assert len((screening / "screening.csv").read_text().splitlines()) == 1 + 6  # header + the test slides
    assert "0.9705" in completed.stdout  # the paper's sensitivity
    assert len(list((tmp_path / "run" / "tiles").glob("*.tiles.npy"))) == 10  # tiles held on disk, not in memory

    (generated,) = cache_dir.glob("synthetic_gastric_*")
    copy = shutil.copytree(generated, tmp_path / "slides")
    broken = copy / "slides" / "center1_slide00.tiff"
    broken.write_bytes(broken.read_bytes()[:2000])
    completed = run_cli(
        "paper=gastric_wsi", *SMOKE[1:], "data=slides", f"data.root={copy}", f"hydra.run.dir={tmp_path / 'real'}"
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert f"skipped slide {broken}" in completed.stderr and "truncated" in completed.stderr
    metrics = read_record(tmp_path / "real")["metrics"]
    assert metrics["slides_skipped"] == 1 and metrics["slides_screened"] == 9


def test_ovrdl_aal_smoke_run_runs_both_stages_and_scores_unseen_combinations(run_cli, tmp_path):
    completed = run_cli("paper=ovrdl_aal", *SMOKE[1:], f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    metrics = read_record(tmp_path)["metrics"]
    for prefix in ("", "ovrdl_"):  # stage 2, and stage 1 of the same run
        assert {f"{prefix}{name}" for name in ("auc", "far", "frr", "accuracy", "tar_at_far1")} <= set(metrics)
        assert 0 <= metrics[f"{prefix}auc"] <= 1 and 0 <= metrics[f"{prefix}far"] <= 1
    assert (tmp_path / "ovrdl" / "checkpoints" / "last.pt").is_file() and (tmp_path / "aal" / "stage.json").is_file()
    assert "train ovrdl_aal" in completed.stderr and "train ovrdl" in completed.stderr


def test_experiment_selects_the_papers_experiment_config(run_cli, tmp_path):
    completed = run_cli(*SMOKE, "experiment=table4_sim_hard", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    record = read_record(tmp_path)
    assert record["experiment"] == "table4_sim_hard" and record["model"] == "sim_hard"


def test_mode_table_renders_the_committed_results():
    markdown = render_paper_tables("twin", reported_path("twin"), ROOT / "papers" / "twin" / "results")
    assert "Table 4" in markdown and "0.7962" in markdown


@pytest.mark.parametrize("paper", ["twin", "pepnet", "two_shot_vos", "ml_fsic", "gastric_wsi", "ovrdl_aal"])
def test_results_md_is_in_sync_with_the_committed_records(paper):
    expected = render_results(paper)
    assert (ROOT / "papers" / paper / "RESULTS.md").read_text() == expected, (
        f"papers/{paper}/RESULTS.md is stale: run `python run.py paper={paper} mode=table mode.write=true`"
    )


def test_mode_table_through_the_cli(run_cli, tmp_path):
    completed = run_cli("paper=twin", "mode=table", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "## Claims" in completed.stdout and "Table 4" in completed.stdout


def test_mode_bench_prints_figures_with_baselines_and_ratios(run_cli, tmp_path):
    completed = run_cli(*SMOKE, "mode=bench", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    figures = json.loads((tmp_path / "bench.json").read_text())
    names = [figure["baseline_name"] for figure in figures]
    assert "naive full projection" in names and "floor: read cache + top-k" in names
    assert any(figure["baseline_name"].startswith("DIN") for figure in figures)
    assert all(figure["ratio"] > 0 and figure["value"] > 0 for figure in figures)
    assert "speedup" in completed.stdout


def test_unknown_paper_key_is_named_with_the_choices(run_cli):
    completed = run_cli("paper=twni")
    assert completed.returncode == 2
    assert "paper=twni" in completed.stderr and "Did you mean paper=twin" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_missing_dataset_names_the_data_card(run_cli, tmp_path):
    completed = run_cli(*SMOKE, "data=kuairand", f"data.root={tmp_path / 'absent'}", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 2
    assert "data_cards/kuairand.md" in completed.stderr and "absent" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_wrong_typed_config_value_is_named(run_cli, tmp_path):
    completed = run_cli(*SMOKE, "trainer.batch_size=many", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 2
    assert "trainer.batch_size" in completed.stderr and "many" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_value_outside_the_allowed_choices_is_named(run_cli, tmp_path):
    completed = run_cli(*SMOKE, "model.name=twinn", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 2
    assert "model.name='twinn'" in completed.stderr and "sim_soft" in completed.stderr


def test_corrupt_data_file_is_named(run_cli, tmp_path):
    shutil.copytree(FIXTURES / "kuairand_1k", tmp_path / "kuairand")
    broken = tmp_path / "kuairand" / "log_standard_4_08_to_4_21_1k.csv"
    broken.write_text("user_id,video_id\n1,2,3,4\n")
    root = tmp_path / "kuairand"
    completed = run_cli(*SMOKE, "data=kuairand", f"data.root={root}", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 2
    assert str(broken) in completed.stderr and "Traceback" not in completed.stderr


TWIN_ON_FIXTURE = ("model.gsu_length=64", "model.esu_length=8", "model.short_length=4")
KUAIRAND_FIXTURE_SIZES = {
    "twin": TWIN_ON_FIXTURE,
    "twin_v2": (*TWIN_ON_FIXTURE, "life_cycle.embedding_length=64"),  # the life-cycle path's stage 1
    "pepnet": (),  # tabs as domains, feedback columns as tasks
}


@pytest.mark.parametrize("paper", sorted(KUAIRAND_FIXTURE_SIZES))
def test_real_kuairand_layout_trains_end_to_end(run_cli, tmp_path, paper):
    completed = run_cli(
        f"paper={paper}",
        *SMOKE[1:],
        "data=kuairand",
        f"data.root={FIXTURES / 'kuairand_1k'}",
        "data.valid_days=2",
        "data.test_days=5",
        "trainer.batch_size=4",
        "trainer.eval_batch_size=8",
        *KUAIRAND_FIXTURE_SIZES[paper],
        f"hydra.run.dir={tmp_path}",
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    record = read_record(tmp_path)
    assert record["dataset"] == "kuairand" and record["paper"] == paper
    assert paper != "twin_v2" or 0 < record["metrics"]["compression"] < 1
    assert paper != "pepnet" or "gauc_tab0_is_click" in record["metrics"]


# Plain SGD with large steps in the DDP comparisons: AdaGrad's and Adam's first update is lr x sign(gradient) per
# element, so an element whose gradient is float noise (a sum that nearly cancels) moves by +-lr in whichever direction
# the summation order gives it, and one process and two sum in different orders. SGD moves such an element by lr x
# noise, while one step still moves the parameters by far more than the tolerance.
PLAIN_SGD = (
    "trainer.optimizers.dense.name=sgd",
    "trainer.optimizers.dense.lr=1.0",
    "trainer.optimizers.embedding.name=sgd",
    "trainer.optimizers.embedding.lr=10.0",
)


def final_parameters(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["model"]


@pytest.mark.parametrize("paper", ["twin", "pepnet"])
def test_two_process_ddp_matches_one_process_on_the_same_global_batch(run_cli, tmp_path, paper):
    steps = (
        f"paper={paper}",
        *SMOKE[1:],
        *PLAIN_SGD,
        "trainer.max_steps=4",
        "trainer.eval_every=0",
        "trainer.checkpoint_every=4",
    )
    single = run_cli(*steps, f"hydra.run.dir={tmp_path / 'single'}")
    assert single.returncode == 0, single.stderr[-3000:]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "run.py"]
    double = run_cli(*steps, f"hydra.run.dir={tmp_path / 'ddp'}", command=torchrun)
    assert double.returncode == 0, double.stderr[-3000:]
    one, two = final_parameters(tmp_path / "single"), final_parameters(tmp_path / "ddp")
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-3, atol=1e-4, msg=name)  # float sums differ
    metrics_one, metrics_two = read_record(tmp_path / "single")["metrics"], read_record(tmp_path / "ddp")["metrics"]
    for name, value in metrics_one.items():  # evaluation gathered from both ranks covers every test sample
        assert metrics_two[name] == pytest.approx(value, abs=2e-3), name


def test_twin_v2_under_ddp_matches_one_process_given_the_same_item_embeddings(run_cli, tmp_path):
    """All three stages under torchrun: stage 1 and the clustering job run from the single-process run's TWIN
    checkpoint, so both runs cluster the very same embeddings; TWIN-V2 then trains on the same global batches."""
    steps = (
        "paper=twin_v2",
        *SMOKE[1:],
        *PLAIN_SGD,
        "trainer.max_steps=4",
        "trainer.eval_every=0",
        "trainer.checkpoint_every=4",
    )
    single = run_cli(*steps, f"hydra.run.dir={tmp_path / 'single'}")
    assert single.returncode == 0, single.stderr[-3000:]
    embeddings = f"life_cycle.embeddings={tmp_path / 'single' / 'embeddings' / 'checkpoints' / 'last.pt'}"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "run.py"]
    double = run_cli(*steps, embeddings, f"hydra.run.dir={tmp_path / 'ddp'}", command=torchrun)
    assert double.returncode == 0, double.stderr[-3000:]
    shards = sorted((tmp_path / "ddp" / "clustering").glob("shard_*.npz"))
    single_shards = (tmp_path / "single" / "clustering").glob("shard_*.npz")
    assert [path.name for path in shards] == sorted(path.name for path in single_shards)
    for shard in shards:  # the very same virtual items
        with np.load(shard) as ddp, np.load(tmp_path / "single" / "clustering" / shard.name) as single_process:
            assert all(np.array_equal(ddp[name], single_process[name]) for name in single_process.files)
    one, two = final_parameters(tmp_path / "single" / "twin_v2"), final_parameters(tmp_path / "ddp" / "twin_v2")
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-3, atol=1e-4, msg=name)
    metrics_one, metrics_two = read_record(tmp_path / "single")["metrics"], read_record(tmp_path / "ddp")["metrics"]
    for name in ("auc", "gauc", "compression", "cluster_distance"):
        assert metrics_two[name] == pytest.approx(metrics_one[name], abs=2e-3), name


# One BLAS/OpenMP thread: with more, a loaded machine may run a product on fewer threads (MKL adapts them), and
# the float sums, hence the compared metrics, differ in their last digits from run to run.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_killed_run_resumes_to_the_same_final_metrics(run_cli, tmp_path, cache_dir):
    steps = ("trainer.max_steps=40", "trainer.eval_every=10", "trainer.checkpoint_every=4")
    reference = run_cli(*SMOKE, *steps, f"hydra.run.dir={tmp_path / 'reference'}", env=ONE_THREAD)
    assert reference.returncode == 0, reference.stderr[-3000:]

    run_dir = tmp_path / "killed"
    environment = {**os.environ, "REPROZOO_CACHE_DIR": str(cache_dir), "WANDB_MODE": "disabled", **ONE_THREAD}
    process = subprocess.Popen(
        [sys.executable, "run.py", *SMOKE, *steps, f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoint = run_dir / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (run_dir / "results.json").exists(), "the run finished before it could be killed"
    killed_at = torch.load(checkpoint, weights_only=False)["state"]["step"]
    assert 0 < killed_at < 40

    resumed = run_cli(*SMOKE, *steps, f"hydra.run.dir={run_dir}", "resume=true", env=ONE_THREAD)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from {checkpoint} at step {killed_at}" in resumed.stderr + resumed.stdout
    assert read_record(run_dir)["metrics"] == read_record(tmp_path / "reference")["metrics"]
    assert final_parameters(run_dir).keys() == final_parameters(tmp_path / "reference").keys()
    for name, value in final_parameters(tmp_path / "reference").items():
        torch.testing.assert_close(final_parameters(run_dir)[name], value, msg=name)


def test_wandb_offline_run_directory(run_cli, tmp_path):
    completed = run_cli(
        "paper=twin", "debug=smoke", "logger=wandb", f"hydra.run.dir={tmp_path}", env={"WANDB_MODE": "offline"}
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("*.wandb")), "the offline run holds no .wandb log to sync"


def test_pepnet_bench_compares_pepnet_with_mmoe(run_cli, tmp_path):
    completed = run_cli("paper=pepnet", "debug=smoke", "logger=none", "mode=bench", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    figures = json.loads((tmp_path / "bench.json").read_text())
    assert [(f["name"], f["baseline_name"]) for f in figures] == [
        ("PEPNet training", "MMoE training"),
        ("PEPNet inference", "MMoE inference"),
        ("DCNv2 training", "MMoE training"),
        ("DCNv2 inference", "MMoE inference"),
    ]
    assert all(f["value"] > 0 and f["baseline_value"] > 0 for f in figures)


def test_two_shot_vos_bench_compares_with_the_plain_forward(run_cli, tmp_path):
    completed = run_cli("paper=two_shot_vos", "debug=smoke", "logger=none", "mode=bench", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    figures = json.loads((tmp_path / "bench.json").read_text())
    assert [f["name"] for f in figures] == [
        "inference, reduced STCN",
        "inference, full STCN",
        "bank building, reduced STCN",
        "training step, channels-last + bfloat16",
    ]
    assert all(f["baseline_name"] == "plain key-encoder forward" and f["unit"] == "frames/s" for f in figures[:3])
    assert (figures[3]["baseline_name"], figures[3]["unit"]) == ("float32", "steps/s")


def test_ml_fsic_bench_compares_with_mean_prototypes(run_cli, tmp_path):
    completed = run_cli("paper=ml_fsic", "debug=smoke", "logger=none", "mode=bench", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    figures = json.loads((tmp_path / "bench.json").read_text())
    assert [f["name"].split(",")[0] for f in figures] == ["training episodes", "test episodes"]
    assert all(f["baseline_name"] == "mean prototypes" and f["unit"] == "episodes/s" for f in figures)


def test_gastric_wsi_bench_compares_with_raw_reads(run_cli, tmp_path):
    completed = run_cli("paper=gastric_wsi", "debug=smoke", "logger=none", "mode=bench", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    figures = json.loads((tmp_path / "bench.json").read_text())
    assert [f["name"] for f in figures] == [
        "end to end, 1 reading thread(s)",
        "end to end, 2 reading thread(s)",
        "seconds per slide, 2 reading thread(s)",
        "patch network training",
    ]
    assert all(f["value"] > 0 and f["baseline_value"] > 0 for f in figures)
    assert figures[-1]["baseline_name"] == "float32" and figures[-1]["unit"] == "tiles/s"


def test_ovrdl_aal_bench_compares_both_stages_with_a_plain_step(run_cli, tmp_path):
    completed = run_cli("paper=ovrdl_aal", "debug=smoke", "logger=none", "mode=bench", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    figures = json.loads((tmp_path / "bench.json").read_text())
    assert [f["name"] for f in figures] == ["stage 1 (OVRDL) training steps", "stage 2 (AAL) training steps"]
    assert all(f["baseline_name"] == "plain classifier step" and f["unit"] == "steps/s" for f in figures)


def test_twin_v2_bench_measures_clustering_and_serving(run_cli, tmp_path):
    completed = run_cli("paper=twin_v2", "debug=smoke", "logger=none", "mode=bench", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    figures = {figure["baseline_name"]: figure for figure in json.loads((tmp_path / "bench.json").read_text())}
    assert figures["flat k-means, same cluster count"]["unit"] == "behaviors/s"
    assert figures["one core"]["unit"] == "users/s" and figures["one core"]["ratio"] > 0
    assert any(name.startswith("TWIN GSU+ESU") for name in figures)
