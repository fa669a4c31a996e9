"""The one training loop under every task.

    summary = fit(ClassificationTask(cfg))                       # a new run
    cfg, state = load_for_resume("runs/x/last.pt", ClassificationConfig)
    summary = fit(ClassificationTask(cfg), state=state, resume_path="runs/x/last.pt")   # continues exactly

A task (:mod:`.task`) builds the model and its data stream, computes the losses of one batch and evaluates;
this module does the rest, the same way for every task:

* the run folder (``config.yaml``, ``train.log``, ``metrics.jsonl``/``.csv``, ``last.pt``/``best.pt``,
  ``model.safetensors``, ``curves.png``, ``summary.json``); only rank 0 writes;
* one process or one per GPU under torchrun (DDP; the global batch = batch x processes x accumulation);
* the optimizer step: gradient accumulation (``no_sync`` until the last micro-batch), clipping, the fp16
  GradScaler, EMA, the schedule per step;
* losses are summed on the device; the host syncs only every ``train.log_every`` steps, at metrics rows and
  before checkpoints, which is also when a non-finite loss is noticed (no checkpoint is ever written after one);
* metrics rows at epoch ends, evaluations and every ``train.metrics_every`` steps (train losses averaged since
  the previous row, over every process);
* atomic checkpoints holding the model, optimizer, schedule, scaler, EMA, every process's RNG states, the data
  position and the running loss sums, so ``--resume`` continues bit for bit;
* the run folder is claimed by :mod:`.rundir` (never another run's without ``if_exists="overwrite"``) and written
  only once everything (task, model, optimizer, schedule, restored state) has been built without error;
* SIGTERM (a scheduler's preemption) or Ctrl-C: the current step ends, ``last.pt`` is saved and the exact resume
  command is printed; a second signal stops at once (the last checkpoint is whole either way).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import signal
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from ..errors import CheckpointError, ConfigError, MambaoutError, NonFiniteLossError
from ..weights import save_safetensors
from . import cuda_graph, distributed, precision, rundir
from .config import to_dict
from .logging import RunLogger, attach_file_log, detach_file_logs, hold_logs
from .optim import build_optimizer, build_scheduler, total_updates
from .plots import plot_curves
from .progress import step_progress
from .rng import capture_rng, restore_rng, seed_everything, set_deterministic
from .state import (
    FORMAT,
    checkpoint_step,
    copy_atomic,
    disk_full,
    load_for_resume,
    save_state,
    temp_path,
    write_failed,
    write_text_atomic,
)
from .task import Parts, Task

log = logging.getLogger("mambaout")


@dataclass
class Run:
    """What a task sees of the run: configuration, process, device, folder and precision."""

    cfg: Any
    info: distributed.DistInfo
    run_dir: str
    quiet: bool = False
    amp: str | None = None
    resuming: bool = False  # continuing a checkpoint (e.g. no pretrained weights to load)

    @property
    def device(self) -> torch.device:
        return self.info.device

    @property
    def main(self) -> bool:
        return self.info.rank == 0

    def autocast(self):
        return precision.autocast(self.device, self.amp)


class Meter:
    """Training losses summed on the device between metrics rows (no host sync per step)."""

    def __init__(self, device: torch.device):
        self.device, self.keys = device, None
        self.reset()

    def reset(self):
        self.sums = None if self.keys is None else torch.zeros(len(self.keys), dtype=torch.float64, device=self.device)
        self.count, self.samples = 0, 0

    def add(self, losses: dict[str, torch.Tensor], samples: int):
        if self.keys is None:
            self.keys = ["loss"] + sorted(k for k in losses if k != "loss")
            self.reset()
        self.sums += torch.stack([losses[k].detach().double() for k in self.keys])
        self.count += 1
        self.samples += samples

    def totals(self, stop: bool = False):
        """(every process's sums, their micro-batch count, all finite, some process asked to stop): the one host
        sync, which also lets every process agree on a stop signal that reached only some of them."""
        n = len(self.keys or [])
        local = torch.zeros(n + 3, dtype=torch.float64, device=self.device)
        if self.sums is not None:
            local[0] = torch.isfinite(self.sums).all().double()
            local[3:] = self.sums
        else:
            local[0] = 1.0
        local[1] = self.count
        local[2] = float(stop)
        distributed.all_reduce_sum(local)
        values = local.tolist()
        return values[3:], int(values[1]), values[0] == distributed.world_size(), values[2] > 0

    def state(self, sums: list[float], count: int) -> dict:
        return {"keys": self.keys, "sums": sums, "count": count}

    def load(self, state: dict | None, main: bool):
        """Continue the sums of a checkpoint (held by rank 0; the others start from zero)."""
        if state and state.get("keys"):
            self.keys = list(state["keys"])
            self.reset()
            if main:
                self.sums += torch.tensor(state["sums"], dtype=torch.float64, device=self.device)
                self.count = int(state["count"])


def _scalars(prefix: str, metrics: dict[str, Any]) -> dict[str, float]:
    """Numbers only (per-class lists stay out of the rows)."""
    return {prefix + k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _metric_key(name: str) -> str:
    return name if not name or name.startswith(("val_", "ema_", "train_")) else f"val_{name}"


class Interrupted(KeyboardInterrupt):
    """Training stopped by SIGTERM/SIGINT after saving ``last.pt``; the message is the resume command."""


class _StopSignals:
    """SIGTERM and SIGINT only set a flag, which the loop reads at the end of each optimizer step; a second signal
    raises KeyboardInterrupt at once. (DataLoader workers ignore both: ``data.stream.ignore_stop_signals``.)"""

    def __init__(self):
        self.signum, self._old = None, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # signal handlers: main thread only
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


def _shown(path: str) -> str:
    """A path as the user would type it: relative to the working folder when inside it."""
    rel = os.path.relpath(os.path.abspath(path))
    return rel if not rel.startswith("..") else os.path.abspath(path)


def resume_command(task: Task, path: str, info: distributed.DistInfo) -> str:
    cmd = f"{task.command} --resume {shlex.quote(_shown(path))}"
    if info.distributed:
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", info.world_size))
        nodes = "" if per_node == info.world_size else f" (on each of the {info.world_size // per_node} nodes)"
        return f"torchrun --nproc-per-node {per_node} -m mambaout {cmd}{nodes}"
    return f"mambaout {cmd}"


def fit(
    task: Task,
    state: dict | None = None,
    resume_path: str | None = None,
    quiet: bool = False,
    if_exists: str = "error",
) -> dict:
    """Train ``task`` (a new run, or the one saved in ``resume_path`` whose loaded ``state`` is given);
    returns the summary that rank 0 also writes to ``summary.json``.

    ``if_exists``: what a new run does when its folder ``<train.output>/<train.name>`` holds a run already:
    ``"error"`` (a one-line error), ``"overwrite"`` (replace it, once this run's configuration has passed every
    check) or ``"suffix"`` (take name-1, name-2, ...; what a generated name always does). With ``resume_path``,
    ``"overwrite"`` allows resuming a checkpoint older than the folder's ``last.pt``."""
    if if_exists not in ("error", "overwrite", "suffix"):
        raise ValueError(f"if_exists must be 'error', 'overwrite' or 'suffix', got {if_exists!r}")
    info = distributed.init(task.cfg.train.device)
    try:
        return _fit(task, info, state, resume_path, quiet, if_exists)
    finally:
        detach_file_logs()  # the next run in this process (e.g. `mambaout compare`) logs to its own folder
        distributed.teardown()


def train(
    task_cls,
    config_cls,
    cfg=None,
    resume: str | None = None,
    quiet: bool = False,
    sets=None,
    flags=None,
    convert=None,
    if_exists: str = "error",
    tasks=None,
) -> dict:
    """A task's ``train()``: a new run from ``cfg``, or the run saved in ``resume`` continued (``sets``/``flags``
    may change only what :data:`~mambaout.engine.state.RESUMABLE` allows; ``convert`` upgrades older states;
    ``tasks``: the checkpoint task names accepted, default the task class's ``kinds``); ``if_exists``: see
    :func:`fit`."""
    if resume:
        if cfg is not None:
            raise ConfigError("train(): pass a config or a checkpoint to resume, not both")
        tasks = tasks or task_cls.kinds or (task_cls.name,)
        cfg, state = load_for_resume(resume, config_cls, flags, sets, convert=convert, tasks=tasks)
        return fit(task_cls(cfg), state=state, resume_path=resume, quiet=quiet, if_exists=if_exists)
    if cfg is None:
        raise ConfigError("train() needs a config or a checkpoint to resume from")
    return fit(task_cls(cfg), quiet=quiet, if_exists=if_exists)


def _check_resume_target(path: str, step: int, if_exists: str) -> None:
    """Resuming an older checkpoint of a run (best.pt, a copy) would overwrite the newer last.pt and drop the rows
    after it: only on request."""
    last = os.path.join(os.path.dirname(os.path.abspath(path)), "last.pt")
    if if_exists == "overwrite" or not os.path.isfile(last) or os.path.samefile(last, path):
        return
    newer = checkpoint_step(last)
    if newer is not None and newer > step:
        raise ConfigError(
            f"{_shown(path)} is at step {step} but {_shown(last)} at step {newer}: resuming it would overwrite "
            f"last.pt and the rows after step {step}; resume last.pt, or add --overwrite to go back to step {step}"
        )


def _claim_folder(task: Task, t, state, resume_path: str | None, if_exists: str):
    """(rank 0) The run folder: the checkpoint's for a resume, else a new one under ``t.output``."""
    if resume_path:
        _check_resume_target(resume_path, int(state["step"]), if_exists)
        return rundir.reopen(os.path.dirname(os.path.abspath(resume_path)))
    name = t.name or f"{task.run_name()}-{time.strftime('%Y%m%d-%H%M%S')}"
    return rundir.claim(t.output, name, auto=not t.name, if_exists=if_exists)


def _fit(task: Task, info, state, resume_path, quiet, if_exists) -> dict:
    t, main = task.cfg.train, info.rank == 0
    if t.deterministic:
        set_deterministic(True)
    seed_everything(t.seed + info.rank)
    folder = None
    if main:
        hold_logs()  # train.log starts once the folder may be written
        try:
            folder = _claim_folder(task, t, state, resume_path, if_exists)
            claimed = folder.path
        except MambaoutError as e:
            claimed = e
    claimed = distributed.broadcast_object(claimed if main else None)
    if isinstance(claimed, BaseException):  # every process stops with rank 0's one line
        raise claimed
    run_dir = claimed
    if not resume_path:
        t.name = os.path.relpath(run_dir, t.output)  # a generated or suffixed name is the run's name
    try:
        return _run(task, info, state, resume_path, quiet, run_dir, folder)
    finally:
        if folder is not None:
            folder.rollback()  # a no-op once committed
            folder.release()


def _run(task: Task, info, state, resume_path, quiet, run_dir: str, folder) -> dict:
    cfg = task.cfg
    t, device, main = cfg.train, info.device, info.rank == 0
    run = Run(cfg, info, run_dir, quiet, precision.effective_amp(t.amp, device, warn=main), state is not None)
    parts: Parts = task.build(run)  # may fill the config (class counts) before it is saved

    data, accum = parts.data, t.accum_steps
    per_epoch = data.batches_per_epoch // accum
    total = total_updates(cfg.sched, per_epoch)
    global_batch = parts.batch_size * info.world_size * accum
    model = parts.model.to(device)
    if parts.sync_bn and info.distributed and device.type == "cuda":  # SyncBN needs CUDA; gloo keeps BN per process
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizer, lr = build_optimizer(cfg.optim, model, global_batch, parts.backbone_lr_scale)
    scheduler = build_scheduler(cfg.sched, optimizer, per_epoch, total)
    scaler = precision.grad_scaler(run.amp, device)
    ema = None
    if t.ema:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=t.ema_decay)
    meter, step, best, wall_before = Meter(device), 0, None, 0.0
    if state is not None:
        step, best = int(state["step"]), state.get("best")
        if step > total:
            raise ConfigError(
                f"the checkpoint is at step {step} but the schedule now ends at step {total}: a resume can "
                "shorten the run, not end it before where it is"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        data.seek(state["data"])
        saved = state["config"]
        same_lr = all(saved["optim"].get(k) == getattr(cfg.optim, k) for k in ("lr", "base_lr"))
        if saved["sched"] == to_dict(cfg.sched) and same_lr:
            scheduler.load_state_dict(state["scheduler"])
        else:  # another length, shape or peak lr: the rebuilt schedule takes over from this step
            for group, base in zip(optimizer.param_groups, scheduler.base_values):
                group["initial_lr"] = base
            scheduler.step_update(num_updates=step)
            scheduler.step(data.epoch)
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        if ema is not None and state.get("model_ema"):
            ema.module.load_state_dict(state["model_ema"])
        meter.load(state.get("meter"), main)
        rng = state["rng"]
        restore_rng(rng[info.rank] if isinstance(rng, list) else rng)
        wall_before = float(state.get("wall_time_s") or 0.0)

    train_model = torch.compile(model) if t.compile else model
    graphs = cuda_graph.check(t.cuda_graph, device, info.distributed, t.compile)
    if graphs and parts.graph_example is None:
        if t.cuda_graph is True:
            raise ConfigError(
                f"train.cuda_graph: the {task.name} step cannot be recorded here (inputs of varying "
                "shape, or gradient checkpointing)"
            )
        graphs = False
    if graphs:
        cuda_graph.graph_training_step(model, parts.graph_example, precision.AMP_DTYPES.get(run.amp))
    if info.distributed:
        train_model = DDP(
            train_model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=parts.ddp_find_unused,
        )

    if state is not None and step >= total:  # a finished run: its results stand as they are
        summary_path = os.path.join(run_dir, "summary.json")
        done = None
        if main and os.path.isfile(summary_path):
            with contextlib.suppress(ValueError, OSError), open(summary_path) as f:
                done = json.load(f)
        done = distributed.broadcast_object(done)
        if done is not None:
            data.close()
            if main:
                log.warning(
                    "%s: the run finished at step %d; nothing to do (a longer schedule, e.g. --epochs or --set "
                    "sched.max_iters, would train it further); %s is unchanged",
                    _shown(resume_path),
                    step,
                    _shown(summary_path),
                )
            return done

    # Everything is built and checked: from here on the run writes its folder.
    if main:
        folder.commit()
        attach_file_log(run_dir)
        if state is not None:
            log.info("resumed from %s at step %d (epoch %d, batch %d)", resume_path, step, data.epoch, data.batch)
        text = yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=None)
        write_text_atomic(os.path.join(run_dir, "config.yaml"), text)
    distributed.barrier()

    logger = RunLogger(
        run_dir, enabled=main, resume_step=step if state is not None else None, tensorboard=t.tensorboard
    )
    if main:
        log.info(
            "run %s: %s (%.2fM params) on %s x%d, global batch %d (%d x %d proc x %d accum), lr %.3g, "
            "%d steps (%d per epoch)",
            run_dir,
            task.run_name(),
            sum(p.numel() for p in model.parameters()) / 1e6,
            device.type,
            info.world_size,
            global_batch,
            parts.batch_size,
            info.world_size,
            accum,
            lr,
            total,
            per_epoch,
        )
    last_path = os.path.join(run_dir, "last.pt")
    saved_step = step if state is not None else None

    def save(name: str, sums: list[float], count: int) -> None:
        nonlocal saved_step
        rng = capture_rng()
        if info.distributed:  # every rank's RNG, gathered to rank 0
            gathered = [None] * info.world_size
            torch.distributed.all_gather_object(gathered, rng)
            rng = gathered
        st = {
            "format": FORMAT,
            "task": task.name,
            "config": to_dict(cfg),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler else None,
            "model_ema": ema.module.state_dict() if ema is not None else None,
            "rng": rng,
            "step": step,
            "data": data.position(),
            "meter": meter.state(sums, count),
            "best": best,
            "world_size": info.world_size,
            "wall_time_s": wall_before + time.time() - wall0,
        }
        if main:
            try:
                save_state(os.path.join(run_dir, name), st)
            except CheckpointError as e:
                raise CheckpointError(f"{e}{_resume_hint(saved_step)}") from None
        saved_step = step
        distributed.barrier()

    def _resume_hint(at) -> str:
        if at is None:
            return ""
        return f"; to continue from step {at} later: {resume_command(task, last_path, info)}"

    best_key = _metric_key(t.best_metric or task.best_metric)
    wall0 = t_row = time.time()
    checked = step  # the last step whose losses are known to be finite
    bar = step_progress(total=total, initial=step, desc=task.name, quiet=quiet)
    optimizer.zero_grad(set_to_none=not graphs)  # graphs: see cuda_graph
    try:
        with _StopSignals() as signals:
            while step < total:
                train_model.train()
                for micro in range(accum):
                    batch = data.next()
                    last_micro = micro == accum - 1 or not info.distributed
                    sync = contextlib.nullcontext() if last_micro else train_model.no_sync()
                    with sync:
                        with run.autocast():
                            losses = task.train_step(train_model, batch, run)
                        loss = losses["loss"] / accum
                        (scaler.scale(loss) if scaler else loss).backward()
                    meter.add(losses, parts.batch_size)
                if cfg.optim.clip_grad:
                    if scaler:
                        scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad)
                if scaler:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                optimizer.zero_grad(set_to_none=not graphs)
                step += 1
                if ema is not None:
                    ema.update(model, step=step)
                with warnings.catch_warnings():  # GradScaler skips the first steps' updates; the schedule counts them
                    warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step()`")
                    scheduler.step_update(num_updates=step)
                bar.update(1)

                epoch_end = data.epoch_done
                if epoch_end:
                    scheduler.step(data.epoch + 1)
                evaluate = (
                    step >= total
                    or bool(t.eval_every_iters and step % t.eval_every_iters == 0)
                    or bool(t.eval_every and epoch_end and (data.epoch + 1) % t.eval_every == 0)
                )
                row_now = evaluate or epoch_end or bool(t.metrics_every and step % t.metrics_every == 0)
                save_now = evaluate or epoch_end or bool(t.save_every_steps and step % t.save_every_steps == 0)
                # one process stops at once; several agree at the next host sync (no sync per step)
                stop_here = signals.signum is not None and not info.distributed
                if not (row_now or save_now or stop_here or step % t.log_every == 0):
                    continue
                sums, count, finite, stop = meter.totals(signals.signum is not None)
                if not finite:
                    bar.close()
                    raise NonFiniteLossError(
                        f"non-finite loss at epoch {data.epoch}, in optimizer steps {checked + 1}-{step} (checked "
                        f"every train.log_every={t.log_every} steps, at metrics rows and before checkpoints); the "
                        f"weights may have been updated since, but nothing was saved: the last good checkpoint is "
                        f"kept in {run_dir} (try a lower lr, fp32/bf16, or gradient clipping via --set "
                        "optim.clip_grad=1.0)"
                    )
                checked = step
                bar.set_postfix(loss=f"{sums[0] / max(count, 1):.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
                improved = False
                if row_now:
                    now = time.time()
                    row = {
                        "step": step,
                        "epoch": round(data.epoch + data.batch / data.batches_per_epoch, 4),
                        "lr": optimizer.param_groups[0]["lr"],
                    }
                    row.update({f"train_{k}": v / max(count, 1) for k, v in zip(meter.keys, sums)})
                    row.update(
                        time_s=now - t_row, train_img_per_s=meter.samples * info.world_size / max(now - t_row, 1e-9)
                    )
                    if evaluate:
                        row.update(_scalars("val_", task.evaluate(model, run)))
                        if ema is not None:
                            row.update(_scalars("ema_", task.evaluate(ema.module, run)))
                        if best_key in row and (best is None or row[best_key] > best["value"]):
                            best = {"step": step, "epoch": row["epoch"], "metric": best_key, "value": row[best_key]}
                            improved = True
                    row.update(task.row_extras(run))
                    logger.log(row, step=step)
                    if main:
                        log.info(
                            "step %d/%d, epoch %.2f: %s",
                            step,
                            total,
                            row["epoch"],
                            ", ".join(
                                f"{k} {v:.4g}"
                                for k, v in row.items()
                                if isinstance(v, float)
                                and k not in ("epoch", "lr")
                                and not k.endswith(("time_s", "per_s"))
                            ),
                        )
                    meter.reset()
                    sums, count, t_row = [0.0] * len(sums), 0, time.time()
                if save_now or (stop and step < total):
                    save("last.pt", sums, count)
                    if improved and main:
                        copy_atomic(last_path, os.path.join(run_dir, "best.pt"))
                    distributed.barrier()
                if stop and step < total:
                    bar.close()
                    data.close()
                    logger.close()
                    name = signal.Signals(signals.signum).name if signals.signum else "a signal"
                    message = (
                        f"{name}: stopped after step {step} of {total} and saved {_shown(last_path)}; resume with: "
                        f"{resume_command(task, last_path, info)}"
                    )
                    if main:
                        log.warning("%s", message)
                    raise Interrupted(message)
        bar.close()
        data.close()
        logger.close()

        evals = [r for r in logger.rows if any(k.startswith("val_") for k in r)]
        summary = {
            "run_dir": run_dir,
            "task": task.name,
            "model": task.run_name(),
            "steps": step,
            "epochs": round(step / max(per_epoch, 1), 4),
            "global_batch": global_batch,
            "world_size": info.world_size,
            "device": device.type,
            "wall_time_s": wall_before + time.time() - wall0,
            "final": evals[-1] if evals else None,
            "best": best,
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
            **task.summary_extras(run),
        }
        if main:
            save_safetensors(model, os.path.join(run_dir, "model.safetensors"), metadata=parts.weights_metadata)
            if ema is not None:
                save_safetensors(
                    ema.module, os.path.join(run_dir, "model_ema.safetensors"), metadata=parts.weights_metadata
                )
            curves = os.path.join(run_dir, "curves.png")
            tmp = temp_path(curves)  # ends in .png: matplotlib picks the format from the name
            try:
                plot_curves(
                    {task.run_name(): logger.rows},
                    tmp,
                    panels=(("train_loss", "val_loss"),) + ((tuple(task.plot_metrics),) if task.plot_metrics else ()),
                    x="epoch",
                    title=f"{task.run_name()}",
                )
                os.replace(tmp, curves)
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
            write_text_atomic(os.path.join(run_dir, "summary.json"), json.dumps(summary, indent=2, default=str))
            if not quiet:
                print_summary(logger.rows, summary)
        distributed.barrier()
        return summary
    # a write of the run (rows, logs, results) failed on a full disk: one line, and where the run can continue from
    except OSError as e:
        if not disk_full(e):
            raise
        kept = f"{_shown(last_path)} (step {saved_step}) is whole" if saved_step is not None else "no checkpoint yet"
        raise CheckpointError(str(write_failed(e.filename or run_dir, e, kept)) + _resume_hint(saved_step)) from None


def print_summary(rows: list[dict], summary: dict) -> None:
    from ..utils.table import markdown_table

    shown = [r for r in rows if any(k.startswith("val_") for k in r)] or rows
    skip = ("time_s", "per_s")
    cols = ["step", "epoch", "lr"] + [
        k
        for k in dict.fromkeys(k for r in shown for k in r)
        if (k.startswith(("train_loss", "val_", "ema_")))
        and not k.endswith(skip)
        and all(isinstance(r.get(k, 0.0), (int, float)) for r in shown)
    ][:8]
    print(markdown_table(shown, cols, cols, digits=4))
    best = summary.get("best")
    best_text = f"best {best['metric']} {best['value']:.4g} at step {best['step']}; " if best else ""
    print(
        f"\n{summary['model']}: {summary['steps']} steps, {best_text}{summary['wall_time_s']:.1f}s; "
        f"run folder {summary['run_dir']}"
    )
