"""Small shared pieces: wandb mode resolution, the run record, plots, the paper registry, Hydra setup."""

import json

import pytest
from omegaconf import OmegaConf

from common.errors import ConfigError
from common.hydra_setup import CONFIG_DIR, experiment_names, register_configs
from common.logging import wandb_mode
from common.plots import HISTORY_FILE, curve_names, plot_training_curves, save_training_curves
from common.results import build_record, write_record
from papers import PAPERS, paper_package_dir, paper_task


def test_wandb_mode_is_offline_unless_the_user_configured_online(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    assert wandb_mode("auto") == "offline"
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password secret\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert wandb_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode("auto") == "disabled"
    assert wandb_mode("offline") == "offline"
    with pytest.raises(ConfigError, match="logger.mode='loud'"):
        wandb_mode("loud")


def test_run_record_has_the_design_fields(tmp_path):
    cfg = OmegaConf.create({"paper": "twin", "experiment": "main", "seed": 2, "model": {"name": "twin"}})
    record = build_record(cfg, "twin", "synthetic_lifelong", {"auc": 0.7, "gauc": 1}, 12.34, "cpu", data_seed=5)
    path = write_record(record, tmp_path)
    saved = json.loads(path.read_text())
    assert list(saved) == [
        "paper", "experiment", "model", "dataset", "seed", "data_seed", "metrics", "config", "git_commit", "duration_s",
        "device", "versions",
    ]  # fmt: skip
    assert saved["metrics"] == {"auc": 0.7, "gauc": 1.0} and saved["seed"] == 2 and saved["duration_s"] == 12.3
    assert saved["data_seed"] == 5
    assert saved["config"]["model"]["name"] == "twin"


def test_training_curves_png(tmp_path):
    history = [{"step": 10, "train/loss": 0.7}, {"step": 20, "train/loss": 0.6, "valid/auc": 0.61}]
    path = plot_training_curves(history, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_training_curves([], tmp_path / "none.png") is None


def test_saved_training_curves_keep_the_numbers_beside_the_picture(tmp_path):
    history = [{"step": 10, "train/loss": 0.7}, {"step": 20, "train/loss": 0.6, "valid/auc": 0.61}]
    assert save_training_curves(history, tmp_path).name == "training_curves.png"
    assert json.loads((tmp_path / HISTORY_FILE).read_text()) == history
    assert save_training_curves([], tmp_path / "empty") is None


def test_training_curves_draw_train_quantities_and_aggregate_metrics_first():
    cells = [f"valid/gauc_tab{d}_task{t}" for d in range(3) for t in range(6)]
    names = ["valid/gauc_mean", "train/loss", *cells, "valid/gauc_tab0", "valid/auc_mean"]
    drawn = curve_names(names, max_panels=5)
    assert drawn == ["train/loss", "valid/auc_mean", "valid/gauc_mean", "valid/gauc_tab0", "valid/gauc_tab0_task0"]
    assert curve_names(["valid/b", "train/loss"]) == ["train/loss", "valid/b"]


def test_paper_registry_is_explicit_and_lazy():
    assert "twin" in PAPERS
    assert paper_task("twin").__name__ == "TwinTask"
    assert (paper_package_dir("twin") / "reported.yaml").is_file()
    with pytest.raises(ConfigError, match="'twni'.*twin"):
        paper_task("twni")


def test_every_experiment_name_is_registered_for_hydra():
    names = experiment_names()
    assert {"main", "table4_din", "fig6_separate_gsu"} <= set(names)


EXPERIMENTS = sorted((path.parent.name, path.stem) for path in CONFIG_DIR.glob("experiment/*/*.yaml"))


@pytest.mark.parametrize(("paper", "experiment"), EXPERIMENTS, ids=[f"{p}/{e}" for p, e in EXPERIMENTS])
def test_every_experiment_composes_and_its_task_accepts_the_config(paper, experiment, tmp_path):
    import torch
    from hydra import compose, initialize_config_dir

    from common.distributed import DistributedContext

    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("run", overrides=[f"paper={paper}", f"experiment={experiment}"])
    context = DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    paper_task(paper)(cfg, context, tmp_path)  # parses every typed section of the config
