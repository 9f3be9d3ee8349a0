"""The shared trainer behind every ``maa train-*`` command.

A stage describes *what* to train as a :class:`TrainTask` (modules, optimisers, one training
step, validation, export); :func:`train` does the rest the same way for every stage:

* accelerate for devices, multi-GPU (``accelerate launch`` / ``torchrun``), bf16/fp16 mixed
  precision and gradient accumulation; unchanged on CPU;
* deterministic data order: each epoch's permutation and each item's random crop derive from
  ``(seed, epoch, index)``, so a resumed run sees exactly the batches an uninterrupted one would;
* EMA (diffusers ``EMAModel``), gradient clipping, periodic validation;
* training state (modules, optimisers, schedulers, EMA, step, RNG, config) written atomically
  every ``ckpt_every`` steps to ``OUT/train/<name>/state.pt``; ``resume=True`` continues from it
  and reaches the same weights as an uninterrupted run;
* TensorBoard scalars plus ``metrics.csv``, and a rich progress bar with loss and steps/s.
"""

from __future__ import annotations

import contextlib
import csv
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from maa.config import Config
from maa.errors import MaaError, check_count, ensure_free_space
from maa.fsutil import atomic_path
from maa.progress import ProgressBar

STATE_FILE = "state.pt"
S = TypeVar("S", bound="TrainSummary")


@dataclass(frozen=True)
class TrainConfig(Config):
    """Loop settings shared by every stage (model settings live in each stage's config)."""

    max_steps: int = 1000
    batch_size: int = 16
    grad_accum: int = 1
    mixed_precision: str = "no"  # "no" | "bf16" | "fp16"
    grad_clip: float | None = 1.0
    ema_decay: float | None = None
    ckpt_every: int = 500
    val_every: int = 0
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    progress: bool = True

    def validate(self) -> None:
        for option in ("--max-steps", "--batch-size", "--grad-accum", "--ckpt-every"):
            check_count(option, getattr(self, option[2:].replace("-", "_")))
        check_count("--val-every", self.val_every, minimum=0)
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise MaaError(f"--precision {self.mixed_precision!r} is not one of no, bf16, fp16")


@dataclass(frozen=True, kw_only=True)
class TrainSummary:
    """Steps run (and resumed from), time, last logged losses; stages add clips and skips."""

    steps: int
    resumed_from: int
    seconds: float
    steps_per_s: float
    last: dict[str, float]
    clips: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    @classmethod
    def of(cls: type[S], run: TrainSummary, **fields: Any) -> S:
        """What :func:`train` returned, with a stage's fields added."""
        return cls(**{**vars(run), **fields})


@dataclass
class StepContext:
    """What a task's ``train_step`` uses to do backward passes and optimiser steps."""

    accelerator: Any
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Any]
    grad_clip: float | None
    step: int = 0
    logs: dict[str, float] = field(default_factory=dict)
    manual_sync: set[int] = field(default_factory=set)  # ids of params DDP does not all-reduce

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def sync(self) -> bool:
        """True on the micro-batch that completes a gradient-accumulation cycle."""
        return bool(self.accelerator.sync_gradients)

    def backward(self, loss: torch.Tensor) -> None:
        """Backward pass (scaled for accumulation and fp16 by accelerate)."""
        if not torch.isfinite(loss.detach()).all():
            raise MaaError(
                f"training diverged at step {self.step}: loss is {loss.item()}; lower the learning "
                "rate, use --precision no or bf16, or resume from the last checkpoint"
            )
        self.accelerator.backward(loss)

    def optimizer_step(self, name: str) -> None:
        """Clip, step and zero optimiser ``name`` (a no-op until accumulation completes)."""
        opt = self.optimizers[name]
        if self.sync and self.manual_sync and self.accelerator.num_processes > 1:
            self._all_reduce(opt)
        if self.sync and self.grad_clip:
            params = [p for g in opt.param_groups for p in g["params"]]
            self.accelerator.clip_grad_norm_(params, self.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if self.sync and name in self.schedulers:
            self.schedulers[name].step()

    def _all_reduce(self, opt: torch.optim.Optimizer) -> None:
        """Average the gradients of params that live outside DDP (see ``TrainTask.no_ddp``)."""
        import torch.distributed as dist

        world = self.accelerator.num_processes
        for group in opt.param_groups:
            for p in group["params"]:
                if id(p) in self.manual_sync and p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad.div_(world)

    def log(self, **values: float | torch.Tensor) -> None:
        for k, v in values.items():
            self.logs[k] = (
                float(v.detach().float().mean()) if isinstance(v, torch.Tensor) else float(v)
            )


class TrainTask(Protocol):
    """What a stage supplies to :func:`train`."""

    name: str  # component name, e.g. "vae"; state lives in OUT/train/<name>/
    # Modules kept out of DDP (e.g. a GAN loss whose parameters are used outside its forward);
    # the trainer averages their gradients across processes itself. Optional attribute.
    no_ddp: tuple[str, ...]

    def config_dict(self) -> dict[str, Any]:
        """The stage's model/loss config (saved in the state; must match on resume)."""

    def modules(self) -> dict[str, nn.Module]:
        """Every trained module by name (e.g. {"vae": ..., "disc": ...})."""

    def build_optimizers(
        self, modules: dict[str, nn.Module], train: TrainConfig
    ) -> tuple[dict[str, torch.optim.Optimizer], dict[str, Any]]:
        """Optimisers and LR schedulers (stepped once per optimiser step), by name."""

    def dataset(self) -> Dataset:
        """Training items; may define ``set_epoch(epoch)`` for per-epoch randomness."""

    def ema_module(self) -> str | None:
        """Name of the module that gets an EMA copy (when ``ema_decay`` is set)."""

    def train_step(self, batch: Any, modules: dict[str, nn.Module], ctx: StepContext) -> None:
        """One micro-batch: forward, ``ctx.backward``, ``ctx.optimizer_step``, ``ctx.log``."""

    def validate(self, modules: dict[str, nn.Module], step: int, writer: Any) -> dict[str, float]:
        """Metrics on held-out data (called with EMA weights swapped in, in eval mode)."""

    def export(self, modules: dict[str, nn.Module], step: int) -> None:
        """Write the usable weights (EMA ones swapped in when EMA is on) into the bundle."""


class EpochSampler(Sampler[int]):
    """A permutation of ``range(n)`` seeded by ``(seed, epoch)``, sharded across ranks.

    ``skip`` drops the first items, so a resumed run starts mid-epoch where it stopped. With
    ``weights`` (one non-negative weight per item) an epoch is instead ``n`` draws with
    replacement in proportion to them (e.g. category-balanced batches), from the same seed.
    """

    def __init__(
        self,
        n: int,
        seed: int,
        epoch: int,
        rank: int = 0,
        world: int = 1,
        skip: int = 0,
        weights: torch.Tensor | None = None,
    ):
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        if weights is None:
            perm = torch.randperm(n, generator=g).tolist()
        else:
            perm = torch.multinomial(weights.double(), n, replacement=True, generator=g).tolist()
        self.indices = perm[rank::world][skip:]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator a dataset uses for item ``index`` in ``epoch`` (random crops, gains)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 1_000_033 + index)


def state_dir(out: str | Path, name: str) -> Path:
    return Path(out) / "train" / name


def train(task: TrainTask, out: str | Path, cfg: TrainConfig, resume: bool = False) -> TrainSummary:
    """Run (or resume) training of ``task``; returns steps, last losses and timings."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    cfg.validate()
    cpu = cfg.device == "cpu"
    if cfg.device not in ("auto", "cpu", "cuda") and not cfg.device.startswith("cuda"):
        raise MaaError(f"--device {cfg.device!r}: training runs on auto, cpu or cuda")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise MaaError("--device cuda was requested but no CUDA GPU is visible; pass --device cpu")
    sdir = state_dir(out, task.name)
    state_path = sdir / STATE_FILE
    if state_path.exists() and not resume:
        raise MaaError(
            f"{state_path} exists: a training run is already in {out}. Pass --resume to continue "
            "it, or choose a new --out folder"
        )
    sdir.mkdir(parents=True, exist_ok=True)

    accelerator = Accelerator(
        mixed_precision=cfg.mixed_precision,
        gradient_accumulation_steps=cfg.grad_accum,
        cpu=cpu,
    )
    set_seed(cfg.seed)

    modules = task.modules()
    ensure_free_space(
        sdir, checkpoint_bytes(modules, ema=bool(cfg.ema_decay)), "training checkpoints"
    )
    optimizers, schedulers = task.build_optimizers(modules, cfg)
    ema = None
    ema_name = task.ema_module() if cfg.ema_decay else None
    if ema_name:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(modules[ema_name].parameters(), decay=cfg.ema_decay)

    start_step = 0
    if resume and state_path.exists():
        start_step = _load_state(state_path, task, modules, optimizers, schedulers, ema, cfg)
        accelerator.print(f"resuming {task.name} from step {start_step} ({state_path})")

    no_ddp = set(getattr(task, "no_ddp", ()))
    names = [n for n in modules if n not in no_ddp]
    prepared = accelerator.prepare(*[modules[n] for n in names], *optimizers.values())
    if not isinstance(prepared, (list, tuple)):
        prepared = [prepared]
    wrapped = dict(zip(names, prepared[: len(names)], strict=True))
    optimizers = dict(zip(optimizers, prepared[len(names) :], strict=True))
    manual_sync = set()
    for n in no_ddp:
        wrapped[n] = modules[n].to(accelerator.device)
        manual_sync |= {id(p) for p in modules[n].parameters()}
    wrapped = {n: wrapped[n] for n in modules}  # keep the task's order
    if ema is not None:
        ema.to(accelerator.device)

    dataset = task.dataset()
    per_rank = cfg.batch_size
    n_items = len(dataset)
    batches_per_epoch = (n_items // accelerator.num_processes) // per_rank
    if batches_per_epoch < 1:
        raise MaaError(
            f"the training set has {n_items} item(s), fewer than one batch of {per_rank} per "
            f"process ({accelerator.num_processes} process(es)); lower --batch-size or add data"
        )
    ctx = StepContext(accelerator, optimizers, schedulers, cfg.grad_clip, manual_sync=manual_sync)
    writer = _writer(sdir) if accelerator.is_main_process else None
    csv_log = _CsvLog(sdir / "metrics.csv", start_step) if accelerator.is_main_process else None

    micro = start_step * cfg.grad_accum
    step = start_step
    t0 = time.perf_counter()
    last: dict[str, float] = {}
    with ProgressBar(cfg.progress and accelerator.is_main_process, unit="steps") as bar:
        bar(task.name, step, cfg.max_steps)
        while step < cfg.max_steps:
            epoch, skip = divmod(micro, batches_per_epoch)
            loader = _loader(dataset, cfg, epoch, skip * per_rank, accelerator)
            for batch in loader:
                ctx.step = step
                batch = _to_device(batch, accelerator.device)
                for m in wrapped.values():
                    m.train()
                with accelerator.accumulate(*wrapped.values()):
                    task.train_step(batch, wrapped, ctx)
                micro += 1
                if not accelerator.sync_gradients:
                    continue
                step += 1
                if ema is not None:
                    ema.step(accelerator.unwrap_model(wrapped[ema_name]).parameters())
                last = dict(ctx.logs)
                if step % cfg.log_every == 0 or step == cfg.max_steps:
                    last["steps_per_s"] = (step - start_step) / max(time.perf_counter() - t0, 1e-9)
                    if writer is not None:
                        for k, v in last.items():
                            writer.add_scalar(f"train/{k}", v, step)
                        csv_log.write(step, last)
                bar(task.name, step, cfg.max_steps, f"loss {_fmt_loss(last)}")
                if cfg.val_every and step % cfg.val_every == 0 and accelerator.is_main_process:
                    _run_validation(
                        task, wrapped, ema, ema_name, step, writer, accelerator, csv_log
                    )
                if step % cfg.ckpt_every == 0 or step == cfg.max_steps:
                    accelerator.wait_for_everyone()
                    if accelerator.is_main_process:
                        _save_state(state_path, task, ctx, wrapped, ema, step, cfg)
                        with _ema_weights(ema, ema_name, wrapped, accelerator):
                            task.export(_unwrapped(wrapped, accelerator), step)
                if step >= cfg.max_steps:
                    break
    if writer is not None:
        writer.close()
    elapsed = time.perf_counter() - t0
    return TrainSummary(
        steps=step,
        resumed_from=start_step,
        seconds=elapsed,
        steps_per_s=(step - start_step) / max(elapsed, 1e-9),
        last=last,
    )


# -- checkpoint state -------------------------------------------------------------------------
def checkpoint_bytes(modules: dict[str, nn.Module], ema: bool) -> int:
    """Bytes one checkpoint round needs: the state file (weights, two Adam moments, EMA) written
    beside the previous one, plus the exported safetensors."""
    params = sum(p.numel() * p.element_size() for m in modules.values() for p in m.parameters())
    return params * (3 + int(ema)) * 2 + params


def _save_state(path, task, ctx: StepContext, wrapped, ema, step, cfg) -> None:
    state = {
        "step": step,
        "task": task.name,
        "config": task.config_dict(),
        "train": cfg.to_dict(),
        "modules": {n: ctx.accelerator.unwrap_model(m).state_dict() for n, m in wrapped.items()},
        "optimizers": {n: o.state_dict() for n, o in ctx.optimizers.items()},
        "schedulers": {n: s.state_dict() for n, s in ctx.schedulers.items()},
        "ema": ema.state_dict() if ema is not None else None,
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": list(random.getstate()[1]),
            "python_pos": random.getstate()[0],
        },
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_state(path, task, modules, optimizers, schedulers, ema, cfg) -> int:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        reason = "the file is empty (0 bytes)" if path.stat().st_size == 0 else first[:100]
        raise MaaError(
            f"{path}: training state is unreadable ({reason}); delete it to start over"
        ) from exc
    if state.get("config") != task.config_dict():
        raise MaaError(
            f"{path}: this run's model settings differ from the saved run's; resume with the "
            "same --preset and options, or choose a new --out folder"
        )
    from maa.bundle import load_strict

    for n, m in modules.items():
        load_strict(m, state["modules"][n], f"{path} [{n}]")
    for n, o in optimizers.items():
        o.load_state_dict(state["optimizers"][n])
    for n, s in schedulers.items():
        s.load_state_dict(state["schedulers"][n])
    if ema is not None:
        if state.get("ema") is None:
            raise MaaError(f"{path}: saved run had no EMA; resume without --ema or start over")
        ema.load_state_dict(state["ema"])
    rng = state["rng"]
    torch.set_rng_state(rng["torch"])
    if torch.cuda.is_available() and rng["cuda"]:
        torch.cuda.set_rng_state_all(rng["cuda"])
    random.setstate((rng["python_pos"], tuple(rng["python"]), None))
    if state["step"] >= cfg.max_steps:
        raise MaaError(
            f"{path}: the saved run already reached step {state['step']}; raise --max-steps to "
            "train further"
        )
    return int(state["step"])


def _unwrapped(wrapped, accelerator) -> dict[str, nn.Module]:
    return {n: accelerator.unwrap_model(m) for n, m in wrapped.items()}


@contextlib.contextmanager
def _ema_weights(ema, ema_name, wrapped, accelerator):
    """Temporarily swap the EMA weights into the EMA'd module."""
    if ema is None:
        yield
        return
    params = list(accelerator.unwrap_model(wrapped[ema_name]).parameters())
    ema.store(params)
    ema.copy_to(params)
    try:
        yield
    finally:
        ema.restore(params)


def _run_validation(task, wrapped, ema, ema_name, step, writer, accelerator, csv_log) -> None:
    modules = _unwrapped(wrapped, accelerator)
    for m in modules.values():
        m.eval()
    # validation draws its own randomness without disturbing the training RNG stream
    with (
        torch.random.fork_rng(devices=[]),
        _ema_weights(ema, ema_name, wrapped, accelerator),
        torch.no_grad(),
    ):
        metrics = task.validate(modules, step, writer)
    if metrics:
        for k, v in metrics.items():
            if writer is not None:
                writer.add_scalar(f"valid/{k}", v, step)
        if csv_log is not None:
            csv_log.write(step, {f"valid_{k}": v for k, v in metrics.items()})


# -- data -------------------------------------------------------------------------------------
def _loader(dataset, cfg: TrainConfig, epoch: int, skip_items: int, accelerator) -> DataLoader:
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    sampler = EpochSampler(
        len(dataset),
        cfg.seed,
        epoch,
        accelerator.process_index,
        accelerator.num_processes,
        skip_items,
        getattr(dataset, "sample_weights", None),
    )
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=cfg.num_workers,
        pin_memory=accelerator.device.type == "cuda",
        collate_fn=getattr(dataset, "collate", None),
        # its own generator: creating an iterator must not draw from the global RNG, or a
        # resumed run (which creates one more loader) would drift from an uninterrupted one
        generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch),
    )


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


# -- logging ----------------------------------------------------------------------------------
def _writer(sdir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency, but keep training if it is broken
        return None
    return SummaryWriter(str(sdir / "tb"))


class _CsvLog:
    """Append-only metrics CSV; on resume, rows past the resumed step are dropped."""

    def __init__(self, path: Path, start_step: int) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if path.exists():
            with path.open(newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if int(r["step"]) <= start_step]

    def write(self, step: int, values: dict[str, float]) -> None:
        self.rows.append({"step": step, **{k: f"{v:.6g}" for k, v in values.items()}})
        keys: list[str] = []
        for r in self.rows:
            keys.extend(k for k in r if k not in keys)
        with atomic_path(self.path) as tmp, tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(self.rows)


def _fmt_loss(logs: dict[str, float]) -> str:
    if "loss" in logs:
        return f"{logs['loss']:.4g}"
    vals = [f"{k}={v:.3g}" for k, v in logs.items() if k != "steps_per_s"][:3]
    return " ".join(vals) or "-"


def lr_warmup(optimizer: torch.optim.Optimizer, warmup_steps: int):
    """Linear warm-up to the base LR over ``warmup_steps``, then constant."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / max(1, warmup_steps))
    )


def lr_exponential(optimizer: torch.optim.Optimizer, gamma: float):
    """Multiply the LR by ``gamma`` each optimiser step (HiFi-GAN decays per epoch; see caller)."""
    return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma)
