"""The one engine under every task (classification, detection, segmentation, multi-task, what comes next).

A task supplies build, train step and evaluate (:mod:`.task`); the engine does the rest:

* :mod:`.trainer`      -- ``fit``/``train``: the loop, run folder, DDP, optimizer step, deferred finite check, rows,
  checkpoints, exact resume, CUDA graphs.
* :mod:`.config`       -- typed dataclass configs: presets with ``_base_``, device sections, flags, ``--set``.
* :mod:`.recipe`       -- the sections every task shares: ``OptimConfig``, ``SchedConfig``, ``TrainConfig``.
* :mod:`.optim`        -- weight-decay groups, timm optimizers, schedules (timm cosine; mmcv multistep/poly).
* :mod:`.precision`    -- autocast and GradScaler, the same on every task and device.
* :mod:`.state`        -- atomic training-state checkpoints, their format, what a resumed run may change.
* :mod:`.distributed`  -- torchrun/DDP init and teardown, rank helpers, reductions.
* :mod:`.rng`          -- capture / restore python, numpy, torch and CUDA RNG states as tensors.
* :mod:`.cuda_graph`   -- replaying a model's training forward/backward as CUDA graphs.
* :mod:`.logging`      -- ``RunLogger`` (JSONL + CSV + optional TensorBoard) and the run's ``train.log``.
* :mod:`.progress`, :mod:`.plots` -- tqdm bars on rank 0; training curves as PNG.

Data order and resumable batch streams live in :mod:`mambaout.data` (``sampler``, ``stream``).
"""
