"""Process-group set-up for single-process and torchrun (DDP) runs.

    dist_info = distributed.init()        # reads RANK/WORLD_SIZE/LOCAL_RANK set by torchrun
    device = dist_info.device              # cuda:<local_rank> or cpu
    if distributed.is_main(): ...          # only rank 0 writes files
    distributed.teardown()

The backend is NCCL on CUDA and gloo on CPU. Without torchrun variables everything degrades to one
process (world size 1) and no process group is created.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


_INFO = DistInfo()


def init(device: str = "auto", timeout_s: int = 1800) -> DistInfo:
    """Pick the device and, under torchrun (WORLD_SIZE > 1), start the process group.

    device: 'auto' (CUDA if available), 'cpu' or 'cuda'.
    """
    global _INFO
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda:
        if not torch.cuda.is_available():
            from ..errors import MambaoutError

            raise MambaoutError("device 'cuda' was asked for but CUDA is not available")
        torch.cuda.set_device(local % torch.cuda.device_count())
        dev = torch.device("cuda", torch.cuda.current_device())
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        kwargs = dict(backend="nccl" if use_cuda else "gloo", timeout=datetime.timedelta(seconds=timeout_s))
        if use_cuda:
            kwargs["device_id"] = dev
        try:
            dist.init_process_group(**kwargs)
        except TypeError:  # older torch without device_id
            kwargs.pop("device_id", None)
            dist.init_process_group(**kwargs)
    _INFO = DistInfo(rank, world, local, dev)
    return _INFO


def info() -> DistInfo:
    return _INFO


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_dist() else 0


def world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_dist():
        dist.barrier()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over all processes (in place; returns it)."""
    if is_dist():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_object(obj, src: int = 0):
    """Send a picklable object from ``src`` to every rank (e.g. a run name chosen on rank 0)."""
    if not is_dist():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def teardown() -> None:
    global _INFO
    if is_dist():
        dist.destroy_process_group()
    _INFO = DistInfo()
