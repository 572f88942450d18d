"""The explanation methods measured on tiny ViTs trained on phantoms (known lesions): pointing
game and energy in the lesion vs the lesion-area baseline, top-10 % IoU, deletion/insertion AUC
vs random order (gains with 95 % bootstrap intervals), the cascading randomisation's rank
correlation at every step (95 % intervals), seconds per image. The default method is chosen on
--limit validation images; the table reports --limit test images.

Generates --studies phantom studies (128 px, prepared at 64 px) at --visibility, then trains what
the requested heads need with configs/tiny-vit.yaml: the fine-tuned image baseline (frontal
views, where the lesions are drawn) for ``image-finetuned``, the CLIP and its heads for ``image``
and ``multimodal``. A ViT trained from scratch needs thousands of steps: the default (2,400
studies, visibility 6, image-finetuned, 40 epochs) took 7 minutes on 2 CPU cores shared with
other jobs (2 CPU-minutes); the CLIP heads (``--heads image,multimodal``) 14 minutes more.
Finished stages are reused when the script is run again with the same --out.

    python benchmarks/bench_explain_faithfulness.py [--out runs/explain-bench] [--limit 120]
        [--heads image-finetuned,image,multimodal] [--visibility 6] [--epochs 40] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from chestclip.config import load_run_config
from chestclip.data import prepare_dataset
from chestclip.evaluation.metrics import format_with_ci
from chestclip.explain.stage import explain_split
from chestclip.explain.summary import summary_table
from chestclip.phantom import generate_phantoms
from chestclip.training.finetune import FINETUNED, finetune_image_baseline
from chestclip.training.pretrain import pretrain
from chestclip.training.probe import probe
from chestclip.utils.run_layout import BASELINE_FILE, RunLayout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/explain-bench"))
    parser.add_argument("--studies", type=int, default=2400)
    parser.add_argument("--limit", type=int, default=120, help="frontal test images to explain")
    parser.add_argument("--visibility", type=float, default=6.0, help="phantom lesion visibility")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--heads", default=FINETUNED, help="comma-separated heads to explain")
    parser.add_argument("--seed", type=int, default=0, help="seed of the phantoms and the training")
    args = parser.parse_args()
    heads = args.heads.split(",")
    epochs = [f"pretrain.epochs={args.epochs}", f"seed={args.seed}"]
    config = load_run_config("tiny-vit", epochs)
    source, prepared, run = args.out / "phantoms", args.out / "prepared", args.out / "run"
    layout = RunLayout(run)
    if not source.exists():
        generate_phantoms(source, args.studies, 128, "kaggle", config.seed, args.visibility)
    if not prepared.exists():
        prepare_dataset(source, prepared, config.prepare)
    if FINETUNED in heads and not layout.baseline(FINETUNED).exists():
        frontal = load_run_config("tiny-vit", [*epochs, "pretrain.views=frontal"])
        finetune_image_baseline(prepared, run, frontal)
    if set(heads) - {FINETUNED} and not layout.clip_weights.exists():
        pretrain(prepared, run, config, resume=layout.last_checkpoint.exists())
        probe(run, prepared, config)
    if FINETUNED in heads:
        info = json.loads((layout.baseline(FINETUNED) / BASELINE_FILE).read_text())
        print(f"{FINETUNED}: validation AUC {info['val_auc']:.3f} (epoch {info['best_epoch']})")
    for head in heads:
        summary = explain_split(
            run, prepared, "test", args.limit, head=head, out=run / f"explain-{head}"
        )
        print(
            f"\n{head} head (default chosen on {summary['validation']['images']} validation "
            f"images: {summary['default_method']}); {summary['split']} split:"
        )
        print(summary_table(summary).T.to_string())
        cascade = summary["randomisation"]
        print(f"cascading randomisation, rank correlation on {cascade['images']} images:")
        for method, steps in cascade["methods"].items():
            shown = "; ".join(
                f"{step['step']} {format_with_ci(step['rank_correlation'])}"
                for step in steps
                if step["rank_correlation"]
            )
            print(f"  {method}: {shown}")


if __name__ == "__main__":
    main()
