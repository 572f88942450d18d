"""Several processes, one run directory: who writes, who waits, and what a re-executed DDP child
does.

A run gets several processes in one of two ways:

* **Lightning's DDP launcher** (``pretrain.devices=N``, one command): inside ``trainer.fit`` it
  re-executes the whole command line N-1 times. The process calling fit wraps it in
  :func:`spawning_children`, which hands the children that one call (JSON in
  ``CHESTCLIP_DDP_CALL``); a child makes only that call and exits
  (``chestclip.pipeline.join_spawned_call``), so it never runs — or writes — any other stage.
  Afterwards the launcher's variables and process group are removed, so a later DDP stage
  spawns children of its own.
* **An external launcher** (``torchrun``, SLURM's ``srun``): every process runs the command.
  Rank 0 decides and runs the single-process stages; the others wait for its word
  (:func:`share`) and join the training stages.

Either way only the leader (:func:`is_leader`) writes outputs.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from chestclip.errors import ChestClipError
from chestclip.utils.io import atomic_directory

# torch and Lightning are imported where used: the CLI asks `spawned_call()` before loading them
if TYPE_CHECKING:
    import torch.distributed as dist
    from lightning.fabric.plugins.environments import ClusterEnvironment

CALL_ENV = "CHESTCLIP_DDP_CALL"
# what Lightning's subprocess launcher sets in the process that launches
LAUNCHER_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
# rank 0 may spend hours on single-process stages while the others wait for it
WAIT_FOR_LEADER = timedelta(days=30)

T = TypeVar("T")
_coordination: dist.ProcessGroup | None = None


def spawned_call() -> dict[str, Any] | None:
    """The training call a Lightning-launched DDP child was started for; None in any other
    process (including the launching one, whose local rank is 0)."""
    call = os.environ.get(CALL_ENV)
    if call is None or int(os.environ.get("LOCAL_RANK", "0")) == 0:
        return None
    return json.loads(call)


def external_cluster() -> ClusterEnvironment | None:
    """torchrun's or SLURM's environment when it started this process as one of several."""
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    for kind in (TorchElasticEnvironment, SLURMEnvironment):
        if kind.detect():
            cluster = kind()
            if cluster.world_size() > 1:
                return cluster
    return None


def is_leader() -> bool:
    """Whether this process writes the run's outputs: it is no DDP child, and rank 0 of an
    external launch (or the only process)."""
    if spawned_call() is not None:
        return False
    cluster = external_cluster()
    return cluster is None or cluster.global_rank() == 0


def check_launch() -> None:
    """Refuse a multi-node launch chestclip cannot coordinate: a main process on another node
    (``NODE_RANK`` > 0) that no external launcher started would run every stage itself."""
    node = os.environ.get("NODE_RANK", "0")
    if node != "0" and external_cluster() is None and spawned_call() is None:
        raise ChestClipError(
            f"NODE_RANK={os.environ['NODE_RANK']} without torchrun or srun: launch multi-node "
            "runs with torchrun or SLURM's srun (README: several GPUs and nodes)"
        )


@contextlib.contextmanager
def spawning_children(call: dict[str, Any]) -> Iterator[None]:
    """Around ``trainer.fit``: the DDP children Lightning's launcher re-executes this command as
    inherit ``call`` (JSON-ready) and make only that call. Afterwards this process drops the
    launcher's variables and process group, so the next DDP fit launches its own children."""
    import torch.distributed as dist

    if spawned_call() is not None or external_cluster() is not None:
        yield
        return
    saved = {name: os.environ.get(name) for name in (CALL_ENV, *LAUNCHER_ENV)}
    os.environ[CALL_ENV] = json.dumps(call)
    try:
        yield
    finally:
        launched = saved["LOCAL_RANK"] is None and "LOCAL_RANK" in os.environ
        if launched and dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def coordination_group() -> dist.ProcessGroup | None:
    """A gloo group over every process of an external launch, for waiting on rank 0 (created
    once, by all processes at the same point; it also initialises the process group Lightning
    then reuses). None for a single process."""
    import torch
    import torch.distributed as dist

    global _coordination
    cluster = external_cluster()
    if cluster is None:
        return None
    if _coordination is None:
        if not dist.is_initialized():
            os.environ["MASTER_ADDR"] = cluster.main_address
            os.environ["MASTER_PORT"] = str(cluster.main_port)
            backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(
                backend, rank=cluster.global_rank(), world_size=cluster.world_size()
            )
        _coordination = dist.new_group(backend="gloo", timeout=WAIT_FOR_LEADER)
    return _coordination


def share(value: T) -> T:
    """Rank 0's ``value`` on every process of an external launch (the others wait for rank 0 to
    get here, without timeout); ``value`` itself in a single process."""
    import torch.distributed as dist

    group = coordination_group()
    if group is None:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0, group=group)
    return box[0]


def leader_barrier() -> None:
    """Wait until rank 0 reaches this point (and has written what the others read next)."""
    share(None)


def release() -> None:
    """End the coordination of an external launch (all processes, at the end of the command)."""
    import torch.distributed as dist

    global _coordination
    if _coordination is not None and dist.is_initialized():
        dist.destroy_process_group()
    _coordination = None


@contextlib.contextmanager
def written_by_leader(path: str | os.PathLike) -> Iterator[Path]:
    """``atomic_directory(path)`` on the leader; elsewhere a scratch directory, discarded, so a DDP
    rank that trains alongside rank 0 writes nothing."""
    if is_leader():
        with atomic_directory(path) as tmp:
            yield tmp
        return
    with tempfile.TemporaryDirectory(prefix="chestclip-rank-") as scratch:
        yield Path(scratch)
