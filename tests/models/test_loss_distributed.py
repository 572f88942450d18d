"""ClipLoss across 2 CPU processes (gloo) equals the single-process loss on the global batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from chestclip.models import ClipLoss

WORLD_SIZE = 2

# Fork, not spawn: a spawned rank re-imports transformers (~6 s per process on 2 cores) while a
# forked one starts at once; torch's own gloo tests fork too. No CUDA is involved.
pytestmark = pytest.mark.skipif(
    not dist.is_available() or "fork" not in mp.get_all_start_methods(),
    reason="needs torch.distributed and the fork start method",
)


def run_rank(rank: int, port: int, batch: dict[str, torch.Tensor], out_dir: Path) -> None:
    """Loss and embedding gradients of this rank's slice of the global ``batch``."""
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE
    )
    try:
        rows = len(batch["image"]) // WORLD_SIZE
        local = slice(rank * rows, (rank + 1) * rows)
        image = batch["image"][local].clone().requires_grad_()
        text = batch["text"][local].clone().requires_grad_()
        loss = ClipLoss()(
            image, text, batch["scale"], batch["study_ids"][local], batch["text_ids"][local]
        )
        loss.backward()
        result = {
            "loss": loss.detach().reshape(1),
            "image_grad": image.grad,
            "text_grad": text.grad,
        }
        save_file(result, out_dir / f"rank{rank}.safetensors")
    finally:
        dist.destroy_process_group()


def test_gathered_loss_and_gradients_match_single_process(tmp_path: Path, tcp_port: int) -> None:
    generator = torch.Generator().manual_seed(0)
    batch = {
        "image": F.normalize(torch.randn(8, 16, generator=generator, dtype=torch.float64), dim=-1),
        "text": F.normalize(torch.randn(8, 16, generator=generator, dtype=torch.float64), dim=-1),
        "scale": torch.tensor(10.0, dtype=torch.float64),
        # Positives that cross ranks: study 1 has a view on each rank; text 9 appears on both.
        "study_ids": torch.tensor([0, 1, 2, 3, 1, 4, 5, 6]),
        "text_ids": torch.tensor([10, 11, 9, 12, 11, 13, 9, 14]),
    }
    mp.start_processes(
        run_rank, args=(tcp_port, batch, tmp_path), nprocs=WORLD_SIZE, start_method="fork"
    )
    ranks = [load_file(tmp_path / f"rank{rank}.safetensors") for rank in range(WORLD_SIZE)]

    image = batch["image"].clone().requires_grad_()
    text = batch["text"].clone().requires_grad_()
    single = ClipLoss()(image, text, batch["scale"], batch["study_ids"], batch["text_ids"])
    single.backward()

    mean_over_ranks = torch.cat([result["loss"] for result in ranks]).mean()
    torch.testing.assert_close(mean_over_ranks, single.detach())
    # Each rank's embeddings receive the gradient of the sum of all ranks' losses; DDP's
    # averaging over ranks then yields exactly the single-process gradient.
    image_grad = torch.cat([result["image_grad"] for result in ranks]) / WORLD_SIZE
    text_grad = torch.cat([result["text_grad"] for result in ranks]) / WORLD_SIZE
    torch.testing.assert_close(image_grad, image.grad)
    torch.testing.assert_close(text_grad, text.grad)
