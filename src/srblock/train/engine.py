"""What both training loops share: `start_run` claims the run folder, builds the model and the
optimiser and resumes from last.ckpt; `Run.checkpoint` and `Run.log` save progress; `Run.finish`
writes result.json. The loops (classify.py, segment.py) hold what differs: batches, steps, evaluations.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from lightning.fabric import Fabric
from torch import nn

from .. import startup
from ..checkpoint import save_atomic, set_rng_state, training_state
from ..config import TrainConfig
from ..insert import sr_blocks
from ..memory import statistic_columns
from ..params import config_overhead
from ..provenance import git_commit, versions
from ..run_folder import BEST_CKPT, LAST_CKPT, MetricsLog, RunDiverged, RunFolder
from ..run_lock import RunHeld, claim_lost
from ..run_model import build_model, check_input_size
from ..splits import Splits, load_splits
from .compiling import compile_mode, compiled
from .fabric import device_name
from .tracking import check_trackers, finish_loggers, make_loggers

LOSS_LIMIT = 1e4  # a cross-entropy no network that still learns reaches (a logit gap of 10,000)


def divergence_advice(cfg: TrainConfig, folder: Path) -> str:
    """What to do after a divergence: which keys to change (lr, and the SR block's settings that
    can blow up where the run changed them), and where, since the same settings' folder is taken."""
    smaller = cfg.lr / 10 if cfg.lr <= 1 else 0.1
    keys = [f"a smaller lr (now {cfg.lr:g}, e.g. --set lr={smaller:g})"]
    diversity = cfg.sr.diversity if cfg.sr_stage is not None else 0.0
    if diversity > 0:  # its loss term is added to the cross-entropy: a large weight swamps it first
        less = 0.1 if diversity > 0.1 else diversity / 10  # (docs/memory.md measures 0.1)
        keys.insert(0, f"a smaller sr_diversity (now {diversity:g}, e.g. --set sr_diversity={less:g})")
    if cfg.sr_stage is not None and cfg.sr.temperature != 1.0:
        keys.append(f"sr_temperature nearer 1, the paper's (now {cfg.sr.temperature:g})")
    if cfg.sr_stage is not None and cfg.sr.memory_init != "zeros":
        keys.append(f"a smaller sr_memory_init_scale (now {cfg.sr.memory_init_scale:g})")
    return f"train again with {' or '.join(keys)}, after deleting {folder} (or in another --out)"


def prepare_model(fabric: Fabric, cfg: TrainConfig, model: nn.Module) -> nn.Module:
    """The model as training wants it: SyncBN across GPUs, on the device."""
    if fabric.world_size > 1 and fabric.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    # on the device before the optimiser exists, so a resumed optimiser state lands there too
    return model.to(
        fabric.device, memory_format=torch.channels_last if cfg.channels_last else torch.preserve_format
    )


def make_optimizer(fabric: Fabric, cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD (the paper's) or AdamW (fine-tuning). The SR blocks' parameters may train at
    `sr_lr_mult` times the lr (a block added to a pretrained network learns faster than the
    network moves), and their memory at `sr_memory_lr_mult` times that, with its own weight decay."""
    groups: list[dict[str, Any]] = [{"params": list(model.parameters()), "lr": cfg.lr}]
    spec = cfg.sr
    own_memory = spec.memory_lr_mult != 1.0 or spec.memory_weight_decay is not None
    if spec.lr_mult != 1.0 or own_memory:  # (one group otherwise, as the paper's runs hold)
        blocks = [b for _, b in sr_blocks(model)]
        memory = {id(b.memory) for b in blocks}
        block = {id(p) for b in blocks for p in b.parameters()} - memory
        memory_group = {"lr": cfg.lr * spec.lr_mult * spec.memory_lr_mult}
        if spec.memory_weight_decay is not None:
            memory_group["weight_decay"] = spec.memory_weight_decay
        groups = [
            {"params": [p for p in model.parameters() if id(p) not in block | memory], "lr": cfg.lr},
            {"params": [p for p in model.parameters() if id(p) in block], "lr": cfg.lr * spec.lr_mult},
            {"params": [p for p in model.parameters() if id(p) in memory], **memory_group},
        ]
        groups = [g for g in groups if g["params"]]
    fused = fabric.device.type == "cuda" or None
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    return torch.optim.SGD(
        groups,
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay,
        fused=fused,
    )


@dataclass
class Run:
    """One run in progress: its folder, data, model (`model` unwrapped, `net` as Fabric set it up),
    optimiser, schedule, and where it stands (`step`: epochs or iterations done, in `unit`s)."""

    fabric: Fabric
    cfg: TrainConfig
    folder: Path
    data: Splits
    model: nn.Module
    net: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    unit: str  # "epoch" or "iteration": the loop's count, as checkpoints name it
    step: int = 0
    best_val: float = float("-inf")
    best_step: int = -1
    metrics: MetricsLog | None = None
    loggers: list[Any] = field(default_factory=list)  # the trackers' (tracking.py): rank 0's only
    compiled: str | None = None  # the torch.compile mode, or None: eager
    started: float = field(default_factory=time.time)

    @property
    def rank0(self) -> bool:
        return self.fabric.global_rank == 0

    @property
    def files(self) -> RunFolder:
        """The run's folder and its files (run_folder.py)."""
        return RunFolder(self.folder)

    def check_finite(self, loss: float, where: str, what: str = "training loss") -> None:
        """Stops a diverged run before it checkpoints, so it never counts as finished (last.ckpt
        keeps the weights from before; the folder says why): a loss not a number, or a training
        loss past LOSS_LIMIT. A large validation loss is a number to record, not a divergence: with
        BatchNorm's running statistics from a few steps at a high lr it is common early on, and
        passes as they settle."""
        if not math.isfinite(loss) or (what == "training loss" and loss > LOSS_LIMIT):
            message = f"training diverged in {self.folder} at {where}: the {what} is {loss:.3g}; "
            message += divergence_advice(self.cfg, self.folder)
            if self.rank0:
                self.files.mark_diverged(message)
            raise RunDiverged(message)

    def checkpoint(self, name: str) -> None:
        """Saves the run as it stands (model, optimiser, schedule, RNGs, progress) to `name` in its
        folder; RunHeld instead where another worker took the run over (this one stalled past its
        claim's lease: run_lock.py), so that nothing of the new holder's is written over."""
        lost = claim_lost(self.folder) if self.rank0 else False
        if self.fabric.world_size > 1:
            lost = self.fabric.broadcast(lost, src=0)
        if lost:
            raise RunHeld(f"{self.folder} was taken over by another worker (this one stalled past its lease)")
        if self.rank0:
            progress = {self.unit: self.step, "best_val": self.best_val, f"best_{self.unit}": self.best_step}
            state = training_state(
                self.cfg.identity(), self.model, self.optimizer, self.scheduler, **progress
            )
            save_atomic(self.folder / name, state)
        self.fabric.barrier()

    def log(self, row: dict[str, Any]) -> None:
        """A row of metrics.csv and of every tracker (rank 0 writes, the others do nothing)."""
        if self.rank0:
            self.metrics.append(row)
            values = {k: v for k, v in row.items() if k != self.unit and v is not None}
            for logger in self.loggers:
                logger.log_metrics(values, step=row[self.unit])

    def log_step(self, step: int, loss: torch.Tensor, lr: float) -> None:
        """The training loss and lr at optimiser step `step`, every `log_every` steps, to the trackers
        (the one host-device sync this costs, only then and only where a tracker listens)."""
        if self.loggers and step % self.cfg.log_every == 0:
            values = {"step/train_loss": float(loss), "step/lr": lr}
            for logger in self.loggers:
                logger.log_metrics(values, step=step)

    def load_best(self) -> None:
        """Loads the tested checkpoint (best.ckpt) into the model."""
        self.files.load_weights(self.model, self.cfg, BEST_CKPT)

    def finish(self, scores: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """result.json: the loop's test scores, then what every run records."""
        result = {
            **scores,
            "seed": self.cfg.seed,
            **config_overhead(self.cfg, self.model),
            "wall_time_s": time.time() - self.started,
            "device": device_name(self.fabric),
            "world_size": self.fabric.world_size,
            "compiled": self.compiled,  # the torch.compile mode trained with (compile: auto decides), or None
            "config": self.cfg.record(),
            "versions": versions(),
            **({"git_commit": commit} if (commit := git_commit()) else {}),  # (an editable checkout's)
            **(extra or {}),
        }
        if self.rank0:
            self.files.write_result(result)
            finish_loggers(self.loggers, self.folder, result)
        self.fabric.barrier()
        return result


def start_run(
    fabric: Fabric,
    cfg: TrainConfig,
    folder: Path,
    *,
    unit: str,
    lr_factor: Callable[[int], float],
    columns: tuple[str, ...],
    resume: bool,
    model: nn.Module | None = None,
    data: Splits | None = None,
    memory_columns: tuple[str, ...] | None = None,
    compile_model: bool = True,
    fits: Callable[[TrainConfig, Splits], None] | None = None,
    extra: dict[str, Any] | None = None,
) -> Run:
    """Builds the run's model (the seed decides the init), claims its folder, reads its data, and
    continues from last.ckpt where one exists. `model` and `data`, where given (srblock.fit), are
    used as they are. `memory_columns`: metrics.csv gets the SR memory's statistics (memory.py),
    then these columns. `compile_model=False`: eager whatever the config says (a stacked seed's
    own model, which only evaluates and saves; train/stacked.py compiles the stack). `fits(cfg,
    data)` refuses data the loop cannot start on, before the run's folder is written."""
    folder, files = Path(folder), RunFolder(folder)
    fabric.seed_everything(cfg.seed, verbose=False)
    resuming = (folder / LAST_CKPT).exists()
    if model is None:
        model = build_model(cfg, pretrained=not resuming)  # a resumed run's weights are in last.ckpt
        check_input_size(model, cfg)
    if getattr(model, "pretrained_summary", None):
        fabric.print(model.pretrained_summary)
    if resuming and not resume:
        raise ValueError(
            f"{folder} holds an unfinished run: add --resume to continue it, or choose another --out"
        )
    fabric.barrier()
    cfg = files.check(cfg)  # another configuration's folder is refused; a resumed run keeps its data folder
    if data is None:
        startup.mark("model")
        data = load_splits(cfg, cfg.data_dir)  # as given: a missing folder gets the data set's own message
    if fits is not None:
        fits(cfg, data)
    check_trackers(cfg)  # a tracker that is not installed: one line before the folder is written
    # config.yaml only once the model built and the data read: a run that cannot start leaves no folder
    if fabric.global_rank == 0:
        files.claim(cfg)
    files.check_data(data, cfg.data_dir, write=fabric.global_rank == 0)  # data.json: a resume's data
    fabric.barrier()
    startup.mark("data")
    model = prepare_model(fabric, cfg, model)
    optimizer = make_optimizer(fabric, cfg, model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    run = Run(fabric, cfg, folder, data, model, model, optimizer, scheduler, unit)
    if (folder / LAST_CKPT).exists():
        state = files.load_weights(model, cfg, LAST_CKPT)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        run.step, run.best_val, run.best_step = state[unit], state["best_val"], state[f"best_{unit}"]
    run.compiled = compile_mode(
        fabric, cfg.compile_plan(fabric.device.type, cfg.training_steps(len(data.train), fabric.world_size))
    )
    run.net, run.optimizer = fabric.setup(compiled(model, run.compiled if compile_model else None), optimizer)
    if memory_columns is not None and sr_blocks(model):
        columns = (*columns, *statistic_columns(model), *memory_columns)
    if run.rank0:  # metrics.csv numbers epochs and iterations from 1: keep the rows of those done
        run.metrics = files.metrics_log(run.step + 1, columns)
        run.loggers = make_loggers(cfg, folder, extra, step=run.step)
    startup.mark("device, optimiser, checkpoint")
    return run
