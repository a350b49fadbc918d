"""Experiment logging: wandb (offline unless the user configured online) or nothing; rank 0 only."""

from __future__ import annotations

import hashlib
import netrc
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from omegaconf import DictConfig, OmegaConf

from common.config import require_choice, typed_config


@dataclass
class LoggerConfig:
    name: str = "wandb"
    project: str = "reprozoo"
    entity: str | None = None
    mode: str = "auto"
    tags: list[str] = field(default_factory=list)


class RunLogger(Protocol):
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...

    def log_images(self, images: dict[str, Path], step: int | None = None) -> None: ...

    def log_summary(self, metrics: dict[str, float]) -> None: ...

    def finish(self) -> None: ...


class NullLogger:
    """Logs nothing: logger=none, and every rank but 0."""

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_images(self, images: dict[str, Path], step: int | None = None) -> None:
        pass

    def log_summary(self, metrics: dict[str, float]) -> None:
        pass

    def finish(self) -> None:
        pass


def wandb_mode(requested: str) -> str:
    """`auto` means: WANDB_MODE if set, online if the user ran `wandb login`, else offline."""
    require_choice(requested, ("auto", "online", "offline", "disabled"), "logger.mode")
    if requested != "auto":
        return requested
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        credentials = netrc.netrc().authenticators("api.wandb.ai")
    except (FileNotFoundError, netrc.NetrcParseError):
        credentials = None
    return "online" if credentials else "offline"


class WandbLogger:
    """One wandb run per job: group paper/experiment, tags, the resolved config, curves and media."""

    def __init__(self, settings: LoggerConfig, cfg: DictConfig, run_dir: Path, group: str, tags: list[str]):
        import wandb

        self._wandb = wandb
        self.run = wandb.init(
            project=settings.project,
            entity=settings.entity,
            mode=wandb_mode(settings.mode),
            dir=str(run_dir),
            group=group,
            name=f"{group}/seed{cfg.seed}",
            tags=sorted(set(tags + list(settings.tags))),
            config=OmegaConf.to_container(cfg, resolve=True),
            resume="allow",
            id=_stable_run_id(run_dir),
            settings=wandb.Settings(init_timeout=60, console="off", x_disable_stats=True),
        )

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def log_images(self, images: dict[str, Path], step: int | None = None) -> None:
        self.run.log({name: self._wandb.Image(str(path)) for name, path in images.items()}, step=step)

    def log_summary(self, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self.run.summary[name] = value

    def finish(self) -> None:
        self.run.finish()


def _stable_run_id(run_dir: Path) -> str:
    """The same run directory maps to the same wandb id, so `resume=true` continues the same wandb run."""
    return hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:16]


def build_logger(cfg: DictConfig, run_dir: Path, is_main: bool, group: str, tags: list[str]) -> RunLogger:
    settings = typed_config(LoggerConfig, cfg.logger, "logger")
    require_choice(settings.name, ("wandb", "none"), "logger")
    if settings.name == "none" or not is_main:
        return NullLogger()
    return WandbLogger(settings, cfg, run_dir, group, tags)
