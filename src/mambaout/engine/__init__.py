"""What every training task shares (classification, detection, segmentation).

Modules (each small, plain and documented):

* :mod:`.config`       -- YAML presets, ``a.b=value`` overrides, saving the resolved config.
* :mod:`.distributed`  -- torchrun/DDP init and teardown, rank helpers, reductions.
* :mod:`.checkpoint`   -- atomic ``save_state`` / ``load_state`` (weights_only=True) and keep-best/last.
* :mod:`.rng`          -- capture / restore python, numpy, torch and CUDA RNG states as tensors.
* :mod:`.sampler`      -- data order as a function of (seed, epoch), sharded per rank, resumable mid-epoch.
* :mod:`.logging`      -- ``RunLogger``: per-epoch JSONL + CSV + optional TensorBoard scalars.
* :mod:`.progress`     -- tqdm bars on rank 0 only when attached to a terminal.
* :mod:`.plots`        -- ``plot_curves`` (matplotlib, Agg) for training curves.
"""
