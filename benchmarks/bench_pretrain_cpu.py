"""Training throughput (pairs/s) of the tiny CLIP config on CPU, Lightning loop included.

python benchmarks/bench_pretrain_cpu.py [--studies 200] [--epochs 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import lightning as L

from chestclip.config import PrepareConfig, load_run_config
from chestclip.data import prepare_dataset
from chestclip.phantom import generate_phantoms
from chestclip.training.pretrain import pretrain


class EpochTimer(L.Callback):
    def __init__(self):
        self.seconds, self.pairs = [], []

    def on_train_epoch_start(self, trainer, module):
        self.start, self.count = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.count += len(batch["pixels"])

    def on_train_epoch_end(self, trainer, module):
        self.seconds.append(time.perf_counter() - self.start)
        self.pairs.append(self.count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    config = load_run_config("tiny", [f"pretrain.epochs={args.epochs}"])
    with tempfile.TemporaryDirectory() as tmp:
        generate_phantoms(Path(tmp) / "src", studies=args.studies, image_size=256, layout="kaggle")
        prepare_dataset(
            Path(tmp) / "src",
            Path(tmp) / "prep",
            PrepareConfig(image_size=config.prepare.image_size),
        )
        timer = EpochTimer()
        pretrain(Path(tmp) / "prep", Path(tmp) / "run", config, callbacks=[timer])
    # the first epoch includes start-up costs; report the rest
    seconds, pairs = sum(timer.seconds[1:]), sum(timer.pairs[1:])
    model = f"{config.model.image_encoder}+{config.model.text_encoder}"
    print(
        f"tiny CLIP ({model}, {config.prepare.image_size}px, batch {config.pretrain.batch_size}) "
        f"on CPU: {pairs / seconds:.1f} pairs/s over {len(timer.seconds) - 1} timed epochs"
    )


if __name__ == "__main__":
    main()
