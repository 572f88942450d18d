"""The ``chestclip`` command line: parses arguments and calls library functions, nothing more."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import click

from chestclip.errors import ChestClipError

MAX_SKIPPED_SHOWN = 10
RUN_OPTION = click.option(
    "--run", "run_dir", required=True, type=click.Path(path_type=Path), help="A run directory."
)
DATA_OPTION = click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="A prepared dataset (`chestclip prepare`).",
)
OVERRIDES_OPTION = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value, e.g. --set pretrain.lr=1e-4 (repeatable).",
)
RUN_CONFIG_OPTION = click.option(
    "--config", "config_file", help="YAML path or packaged name [RUN/config.yaml]."
)
RUNTIME_OPTION = click.option(
    "--runtime",
    type=click.Choice(["eager", "onnx"]),
    default="eager",
    show_default=True,
    help="Score with PyTorch, or with RUN/onnx (`chestclip export --format onnx`); heat maps "
    "always come from PyTorch.",
)
BOOTSTRAP_OPTION = click.option(
    "--bootstrap",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Bootstrap resamples (over patients) for the 95% CIs.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="chestclip")
def cli() -> None:
    """chestclip: CLIP on chest X-rays and their reports, MLP heads, Grad-CAM ROI analysis."""


@cli.command()
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Directory to create.")
@click.option("--studies", default=200, show_default=True, type=click.IntRange(min=1))
@click.option("--image-size", default=512, show_default=True, type=click.IntRange(min=32))
@click.option(
    "--layout", type=click.Choice(["openi", "kaggle"]), default="openi", show_default=True
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--visibility",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Lesion contrast: 0 draws no lesions (reports still describe them).",
)
def phantom(
    out: Path, studies: int, image_size: int, layout: str, seed: int, visibility: float
) -> None:
    """Generate synthetic chest X-ray studies with known lesions, in a real IU X-Ray layout."""
    from chestclip.phantom import generate_phantoms

    summary = generate_phantoms(out, studies, image_size, layout, seed, visibility)
    click.echo(
        f"wrote {summary.n_studies} studies ({summary.n_normal} normal, {summary.n_abnormal} "
        f"abnormal), {summary.n_images} images, {layout} layout → {out}"
    )


@cli.command()
@click.option(
    "--source",
    required=True,
    type=click.Path(path_type=Path),
    help="OpenI folder or NLMCXR_reports.tgz, or the Kaggle folder.",
)
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="Directory to (re)create."
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    help="YAML with a `prepare:` section.",
)
@click.option("--image-size", type=click.IntRange(min=16), help="Side of the square images [224].")
@click.option("--views", type=click.Choice(["all", "frontal"]), help="Which projections [all].")
@click.option("--text-fields", help="Comma-separated report sections [indication,findings].")
@click.option("--clean", type=click.Choice(["safe", "paper", "none"]), help="Text cleaning [safe].")
@click.option("--split", help="train,val,test fractions [0.70,0.15,0.15].")
@click.option("--seed", type=int, help="Split seed [0].")
@click.option(
    "--resize",
    type=click.Choice(["pad", "stretch"]),
    help="Keep aspect (pad) or stretch [pad].",
)
@click.option("--workers", type=click.IntRange(min=1), help="Decoding threads [cores, at most 8].")
@click.option("--no-images", is_flag=True, help="Reports only (for sources without images).")
def prepare(source: Path, out: Path, config_file: Path | None, no_images: bool, **options) -> None:
    """Turn an IU X-Ray download into a clean, split, cached dataset."""
    from chestclip.config import PrepareConfig, read_yaml, validate
    from chestclip.data import prepare_dataset

    settings = read_yaml(config_file).get("prepare", {}) if config_file else {}
    settings.update({k: v for k, v in options.items() if v is not None})
    if no_images:
        settings["images"] = False
    config = validate(PrepareConfig, settings, str(config_file or "options"))
    summary = prepare_dataset(source, out, config).counts
    click.echo(
        f"{summary['layout']} source: {summary['reports_parsed']} reports parsed, "
        f"{summary['reports_with_images']} with images; kept {summary['studies']} studies "
        f"({summary['normal']} normal, {summary['diseased']} diseased), {summary['images']} images"
    )
    for split, counts in summary["splits"].items():
        click.echo(
            f"  {split:5s}: {counts['patients']} patients, {counts['images']} images, "
            f"{counts['normal']} normal / {counts['diseased']} diseased"
        )
    if summary["skipped_count"]:
        reasons = ", ".join(f"{n} {r}" for r, n in summary["skipped_by_reason"].items())
        click.echo(f"skipped {summary['skipped_count']}: {reasons} (all listed in summary.json)")
        for item in summary["skipped"][:MAX_SKIPPED_SHOWN]:
            click.echo(f"  {item['kind']} {item['id']}: {item['reason']}", err=True)
    click.echo(f"→ {out}")


@cli.command()
@DATA_OPTION
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Run directory.")
@click.option("--config", "config_file", help="YAML path or packaged name (paper, tiny) [paper].")
@OVERRIDES_OPTION
@click.option("--resume", is_flag=True, help="Continue from RUN/checkpoints/last.ckpt.")
def pretrain(
    data_dir: Path, out: Path, config_file: str | None, overrides: tuple[str, ...], resume: bool
) -> None:
    """Contrastive CLIP pre-training on X-ray/report pairs (PyTorch Lightning)."""
    from chestclip.config import load_run_config
    from chestclip.training.pretrain import pretrain as run_pretrain

    config = load_run_config(config_file, list(overrides))
    result = run_pretrain(data_dir, out, config, resume=resume)
    last = result.history.iloc[-1].to_dict() if len(result.history) else {}
    shown = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k != "epoch")
    click.echo(f"epoch {int(last.get('epoch', -1))}: {shown}")
    click.echo(f"best checkpoint {result.best_checkpoint.name} → model saved in {result.clip_dir}")


@cli.command()
@RUN_OPTION
@DATA_OPTION
@click.option(
    "--features",
    type=click.Choice(["both", "image", "text", "all"]),
    default="all",
    show_default=True,
    help="both = the paper's multimodal head; all = multimodal, image-only and text-only.",
)
@click.option("--text-fields", help="Report sections for the text features [as prepared].")
@RUN_CONFIG_OPTION
@OVERRIDES_OPTION
def probe(
    run_dir: Path,
    data_dir: Path,
    features: str,
    text_fields: str | None,
    config_file: str | None,
    overrides: tuple[str, ...],
) -> None:
    """Train MLP heads on frozen CLIP features (best epoch chosen on validation)."""
    from chestclip.training.probe import FEATURE_CHOICES
    from chestclip.training.probe import probe as run_probe

    config = run_config(run_dir, config_file, overrides)
    fields = [f.strip() for f in text_fields.split(",")] if text_fields else None
    for head in run_probe(run_dir, data_dir, config, FEATURE_CHOICES[features], fields):
        click.echo(
            f"{head.name:28s} best epoch {head.best_epoch:3d}, validation AUC {head.val_auc:.3f}"
        )


@cli.command()
@RUN_OPTION
@DATA_OPTION
@click.option(
    "--threshold",
    type=click.Choice(["youden", "fixed"]),
    default="youden",
    show_default=True,
    help="Decision threshold chosen on validation (Youden's J) or fixed at 0.5.",
)
@click.option(
    "--ablation",
    multiple=True,
    default=["indication"],
    show_default=True,
    help="Other text fields to evaluate side by side (repeatable; e.g. indication).",
)
@BOOTSTRAP_OPTION
@RUN_CONFIG_OPTION
def evaluate(
    run_dir: Path,
    data_dir: Path,
    threshold: str,
    ablation: tuple[str, ...],
    bootstrap: int,
    config_file: str | None,
) -> None:
    """Evaluate every head on the test split: metrics with CIs, plots, warnings."""
    from chestclip.evaluation.evaluate import evaluate as run_evaluate

    config = run_config(run_dir, config_file, ())
    fields = [tuple(f.strip() for f in a.split(",")) for a in ablation if a]
    document = run_evaluate(run_dir, data_dir, config, threshold, fields, bootstrap)
    print_metrics(document, Path(run_dir))


def print_metrics(document: dict, out: Path) -> None:
    click.echo(f"{'head':34s} {'ROC-AUC per image (95% CI)':28s} accuracy  threshold")
    for name, result in document["heads"].items():
        metrics = result["levels"]["image"]["metrics"]
        auc, accuracy = format_ci(metrics["roc_auc"]), metrics["accuracy"]["value"]
        click.echo(f"{name:34s} {auc:28s} {accuracy:.3f}     {result['threshold']['value']:.3f}")
    for warning in document["warnings"]:
        click.echo(f"warning: {warning}")
    click.echo(f"→ {out / 'eval/metrics.json'}")


@cli.command()
@RUN_OPTION
def report(run_dir: Path) -> None:
    """Write RUN/report.html: config, data, metrics with CIs, every plot (self-contained)."""
    from chestclip.evaluation.report import write_report
    from chestclip.inference.model_card import write_model_card

    click.echo(f"→ {write_report(run_dir)}")
    click.echo(f"→ {write_model_card(run_dir)}")


@cli.command()
@RUN_OPTION
@DATA_OPTION
@click.option(
    "--prompts", type=click.Path(path_type=Path), help="Prompt YAML [configs/prompts.yaml]."
)
@click.option("--split", default="test", show_default=True)
@BOOTSTRAP_OPTION
def zeroshot(
    run_dir: Path, data_dir: Path, prompts: Path | None, split: str, bootstrap: int
) -> None:
    """Zero-shot classification by prompt pairs (positive vs negative ensembles), AUC with CIs."""
    from chestclip.retrieval.stage import run_zero_shot

    result = run_zero_shot(run_dir, data_dir, prompts, split, bootstrap)
    for name, task in result["tasks"].items():
        shown = (
            format_ci(task["roc_auc"]) if task["status"] == "ok" else f"skipped: {task['reason']}"
        )
        click.echo(f"{name:14s} ROC-AUC {shown}")
    click.echo(f"→ {Path(run_dir) / 'zeroshot/metrics.json'}")


@cli.command()
@RUN_OPTION
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path),
    help="Prepared dataset (builds the index).",
)
@click.option("--split", default="test", show_default=True)
@click.option(
    "--image", type=click.Path(path_type=Path), help="Ad-hoc query: an X-ray file → top-k reports."
)
@click.option("--text", help="Ad-hoc query: a report text → top-k images.")
@click.option("-k", "top_k", type=click.IntRange(min=1), default=5, show_default=True)
@click.option(
    "--drafts", is_flag=True, help="With --image: the k nearest TRAINING reports as drafts."
)
def retrieve(
    run_dir: Path,
    data_dir: Path | None,
    split: str,
    image: Path | None,
    text: str | None,
    top_k: int,
    drafts: bool,
) -> None:
    """Image↔report retrieval: Recall@1/5/10 and median rank on a split (with --data), or an
    ad-hoc --image / --text query against the saved index."""
    from chestclip.retrieval.stage import draft_reports, query, run_retrieval

    if data_dir is not None:
        metrics = run_retrieval(run_dir, data_dir, split)
        for direction in ("image_to_report", "report_to_image"):
            values = metrics[direction]
            shown = "  ".join(
                f"R@{k} {values[f'recall@{k}']:.3f} (chance {values[f'chance@{k}']:.3f})"
                for k in (1, 5, 10)
            )
            click.echo(f"{direction:16s} {shown}  median rank {values['median_rank']:g}")
    if image is not None and drafts:
        click.echo(draft_reports(run_dir, image, top_k).to_string(index=False))
    elif image is not None or text is not None:
        click.echo(query(run_dir, split, image, text, top_k).to_string(index=False))
    elif data_dir is None:
        raise click.UsageError("give --data to evaluate retrieval, or --image/--text to query")


@cli.command("explain")
@RUN_OPTION
@click.option("--image", type=click.Path(path_type=Path), help="One X-ray (PNG/JPEG) to explain.")
@click.option(
    "--text", help="With --image: the report text the multimodal head reads (e.g. the indication)."
)
@click.option(
    "--data", "data_dir", type=click.Path(path_type=Path), help="Batch mode: a prepared dataset."
)
@click.option("--split", default="test", show_default=True, help="Batch mode: which split.")
@click.option(
    "--limit", type=click.IntRange(min=1), help="Batch mode: at most this many frontal images."
)
@click.option(
    "--method",
    "methods",
    multiple=True,
    help="attention-gradcam, gradcam, rollout (ViT) or cnn-gradcam [batch: all that apply].",
)
@click.option(
    "--head",
    help="Head to explain, or image-finetuned for the fine-tuned image baseline "
    "[multimodal; image for --image without --text].",
)
@click.option(
    "--masks",
    type=click.Path(path_type=Path),
    help="Lesion masks <image_id>_mask.png [SOURCE/masks].",
)
@click.option("--out", type=click.Path(path_type=Path), help="Output directory [RUN/explain].")
def explain_command(
    run_dir: Path,
    image: Path | None,
    text: str | None,
    data_dir: Path | None,
    split: str,
    limit: int | None,
    methods: tuple[str, ...],
    head: str | None,
    masks: Path | None,
    out: Path | None,
) -> None:
    """Grad-CAM heat maps, ROI zone analysis and measured faithfulness."""
    from chestclip.explain.stage import EXPLAIN_DIR, explain_image, explain_split
    from chestclip.explain.summary import summary_table

    out = out or Path(run_dir) / EXPLAIN_DIR
    if image is not None:
        result = explain_image(run_dir, image, out, text, methods[0] if methods else None, head)
        zones = ", ".join(result["top_zones"])
        probability = result["probability_diseased"]
        click.echo(f"P(diseased) {probability:.3f} · {result['method']} · top zones: {zones}")
        click.echo(f"→ {out}")
        return
    if data_dir is None:
        raise click.UsageError("give --image FILE, or --data PREPARED for a batch")
    summary = explain_split(
        run_dir, data_dir, split, limit, methods or None, head or "multimodal", out, masks
    )
    click.echo(summary_table(summary).to_string())
    click.echo(f"default method: {summary['default_method']} → {out}")


@cli.command()
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("runs/demo"), show_default=True
)
@click.option("--studies", type=click.IntRange(min=40), default=600, show_default=True)
@click.option(
    "--epochs", type=click.IntRange(min=1), help="CLIP pre-training epochs [configs/tiny.yaml]."
)
@BOOTSTRAP_OPTION
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
def demo(out: Path, studies: int, epochs: int | None, bootstrap: int, overwrite: bool) -> None:
    """The whole study on phantoms, offline, in a few minutes on a CPU: pre-training, heads,
    baselines, evaluation with CIs, explanations, zero-shot, retrieval, report.html."""
    from chestclip.pipeline import run_demo

    result = run_demo(out, studies, epochs, bootstrap, overwrite=overwrite, log=click.echo)
    click.echo("\nROC-AUC on the test images (95% CI over patients), thresholds from validation:")
    print_metrics(result.metrics, result.run)
    best = result.explanations["default_method"]
    method = result.explanations["methods"][best]
    click.echo(
        f"explanations ({best}, image head): heat-map energy in the lesion "
        f"{method['energy_in_lesion']:.3f} vs {method['pointing_baseline_area']:.3f} by chance "
        f"(lesion area); pointing game {method['pointing_game']:.2f}"
    )
    abnormal = result.zero_shot["tasks"]["abnormal"]
    click.echo(f"zero-shot normal vs diseased: ROC-AUC {format_ci(abnormal['roc_auc'])}")
    recall = result.retrieval["image_to_report"]
    click.echo(
        f"image→report retrieval: R@5 {recall['recall@5']:.3f} (chance {recall['chance@5']:.3f})"
    )
    click.echo(f"finished in {result.seconds:.0f} s → open {result.report}")


@cli.command()
@RUN_OPTION
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--indication", help="The indication (known before reading): enables indication-only heads."
)
@click.option(
    "--cam-dir", type=click.Path(path_type=Path), help="Write an overlay PNG per file here."
)
@click.option("--method", help="Heat-map method [the encoder's default].")
@click.option(
    "--drafts",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Nearest training reports to show (needs `chestclip retrieve` to have built the index).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file (JSON lines).")
@RUNTIME_OPTION
def predict(
    run_dir: Path,
    files: tuple[Path, ...],
    indication: str | None,
    cam_dir: Path | None,
    method: str | None,
    drafts: int,
    as_json: bool,
    runtime: str,
) -> None:
    """P(diseased) for PNG, JPEG or DICOM files, with decisions, ROI zones and overlays."""
    import json

    from chestclip.inference.predict import predict_files

    failed = 0
    results = predict_files(run_dir, files, indication, cam_dir, method, drafts, runtime)
    for result in results:
        if result.error:
            failed += 1
            click.echo(f"chestclip: error: {result.error}", err=True)
            continue
        if as_json:
            click.echo(json.dumps(result.as_dict(), default=str))
            continue
        click.echo(result.file)
        for head, probability in result.probabilities.items():
            threshold, decision = result.thresholds[head], result.decisions[head]
            verdict = (
                f"{decision} (threshold {threshold:.3f})"
                if threshold is not None
                else "no threshold: run evaluate"
            )
            click.echo(f"  {head:24s} P(diseased) {probability:.3f} → {verdict}")
        zones = (
            ", ".join(f"{zone} {share:.0%}" for zone, share in result.top_zones) or "map is empty"
        )
        if result.method is None:
            zones = "no heat map (--runtime onnx: --cam-dir or --method makes one)"
        click.echo(
            f"  top zones: {zones}" + (f"  overlay: {result.overlay}" if result.overlay else "")
        )
        for draft in result.drafts:
            report = f"{draft['findings']} {draft['impression']}".strip()
            click.echo(f"  draft {draft['rank']} ({draft['similarity']:.2f}): {report}")
    if failed:
        raise SystemExit(1)


@cli.command()
@RUN_OPTION
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; anything but loopback lets the network upload images.",
)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--max-upload-mb",
    default=32,
    show_default=True,
    type=click.IntRange(min=1),
    help="Larger uploads get HTTP 413.",
)
@RUNTIME_OPTION
def serve(run_dir: Path, host: str, port: int, max_upload_mb: int, runtime: str) -> None:
    """Web viewer and JSON API: upload an X-ray, see P(diseased) per head, the heat map, its ROI
    zones and the nearest training reports (API docs at /docs)."""
    from chestclip.serve import serve as run_server

    run_server(run_dir, host, port, max_upload_mb * 2**20, log=click.echo, runtime=runtime)


@cli.command("run")
@click.option(
    "--config", "config_file", required=True, help="YAML path or packaged name (paper, tiny)."
)
@click.option(
    "--source", required=True, type=click.Path(path_type=Path), help="The IU X-Ray download."
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Run directory.")
@OVERRIDES_OPTION
def run_command(config_file: str, source: Path, out: Path, overrides: tuple[str, ...]) -> None:
    """Every stage in order (prepare, pretrain, probe, evaluate, explain, report); stages whose
    config and inputs are unchanged are skipped, and a killed run resumes where it stopped."""
    from chestclip.config import load_run_config
    from chestclip.pipeline import run_pipeline

    run = run_pipeline(load_run_config(config_file, list(overrides)), source, out, log=click.echo)
    click.echo(f"→ {run / 'report.html'}")


@cli.command()
@click.option(
    "--config",
    "sweep_file",
    required=True,
    help="Sweep YAML path or packaged name (sweep-paper, sweep-tiny).",
)
@DATA_OPTION
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Sweep directory; the same command again resumes it.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Trials at once, each in its own process on its own GPU.",
)
@BOOTSTRAP_OPTION
def sweep(sweep_file: str, data_dir: Path, out: Path, jobs: int, bootstrap: int) -> None:
    """Hyperparameter search (grid, random or TPE, with Optuna) over ordinary runs, chosen on
    the validation split; the test split is read once, for the chosen trial only."""
    from chestclip.sweep import load_sweep, run_sweep

    logging.getLogger("optuna").setLevel(logging.WARNING)  # its per-trial lines repeat ours
    result = run_sweep(load_sweep(sweep_file), data_dir, out, jobs, bootstrap, log=click.echo)
    board = result.leaderboard
    shown = board.drop(columns=["chosen", "test_split_read", "gpu", "run"])
    click.echo(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    best = board.set_index("trial").loc[result.best_trial, "objective"]
    click.echo(
        f"chosen on validation: trial {result.best_trial} ({result.objective} {best:.4f}) "
        f"→ {result.out / 'best.yaml'}, {result.out / 'leaderboard.csv'}"
    )
    click.echo(f"test split, read for trial {result.best_trial} only:")
    print_metrics(result.test_metrics, result.best_run)
    click.echo(f"finished in {result.seconds:.0f} s → open {result.report}")


@cli.command("export")
@RUN_OPTION
@click.option(
    "--format",
    "export_format",
    type=click.Choice(["hf", "onnx"]),
    required=True,
    help="hf: one Hugging Face Hub folder (CLIP, heads, tokenizer, model card); "
    "onnx: the image encoder and heads as ONNX graphs for `--runtime onnx`.",
)
@click.option("--out", type=click.Path(path_type=Path), help="Output folder [RUN/hub or RUN/onnx].")
@click.option(
    "--quantize",
    type=click.Choice(["int8"]),
    help="With --format onnx: dynamic int8 quantisation (onnxruntime).",
)
def export_command(
    run_dir: Path, export_format: str, out: Path | None, quantize: str | None
) -> None:
    """Package a trained run: a Hub-ready folder, or ONNX graphs for fast CPU inference."""
    if export_format == "hf":
        if quantize:
            raise click.UsageError("--quantize applies to --format onnx only")
        from chestclip.export import export_hub_folder

        click.echo(f"→ {export_hub_folder(run_dir, out)}")
        return
    from chestclip.export.onnx import export_onnx

    result = export_onnx(run_dir, out, quantize)
    click.echo(
        f"image encoder + {len(result.heads)} heads ({result.quantize or 'float32'}); largest "
        f"|Δ P(diseased)| vs eager on {result.checked_images} images {result.max_abs_error:.2g}"
    )
    click.echo(f"→ {result.directory}")


@cli.command()
@RUN_OPTION
@click.option("--repo-id", required=True, help="Hub model repository, ORG/NAME (created if new).")
@click.option("--private", is_flag=True, help="Create the repository private.")
def push(run_dir: Path, repo_id: str, private: bool) -> None:
    """Upload a trained run to the Hugging Face Hub as one folder (what `export --format hf`
    writes). Authenticate first with `hf auth login` or HF_TOKEN."""
    from chestclip.export import push_run

    click.echo(f"→ {push_run(run_dir, repo_id, private, log=click.echo)}")


@cli.group()
def download() -> None:
    """Fetch public data sets (resumable, verified)."""


@download.command("iu-xray")
@click.option(
    "--dest", required=True, type=click.Path(path_type=Path), help="Where the archives go."
)
@click.option("--base-url", help="Mirror of the OpenI collection [official OpenI URL].")
@click.option("--only", type=click.Choice(["reports", "images"]), help="Just one archive.")
@click.option(
    "--no-extract",
    is_flag=True,
    help="Keep the archives packed (saves ~14 GB): `chestclip prepare` reads them directly.",
)
@click.option(
    "--sha256",
    "checksums",
    multiple=True,
    metavar="NAME=HEX",
    help="Expected checksum (repeatable).",
)
def download_iu_xray_command(
    dest: Path, base_url: str | None, only: str | None, no_extract: bool, checksums: tuple[str, ...]
) -> None:
    """The OpenI IU X-Ray archives (NLMCXR_reports.tgz, NLMCXR_png.tgz), with progress, resume
    of partial downloads, size/checksum checks and safe extraction."""
    from chestclip.data.download import (
        DEFAULT_BASE_URL,
        IU_XRAY_ARCHIVES,
        download_iu_xray,
        parse_sha256,
    )

    files = (IU_XRAY_ARCHIVES[only],) if only else tuple(IU_XRAY_ARCHIVES.values())
    result = download_iu_xray(
        dest,
        base_url or DEFAULT_BASE_URL,
        files=files,
        extract=not no_extract,
        expected=parse_sha256(checksums),
    )
    for item in result.files:
        click.echo(item.describe())
    click.echo(f"→ {result.dest}")


@cli.group()
def baseline() -> None:
    """Baselines every reported score is compared with."""


@baseline.command("image")
@DATA_OPTION
@click.option(
    "--out", "run_dir", required=True, type=click.Path(path_type=Path), help="Run directory."
)
@RUN_CONFIG_OPTION
@OVERRIDES_OPTION
def baseline_image(
    data_dir: Path, run_dir: Path, config_file: str | None, overrides: tuple[str, ...]
) -> None:
    """The paper's image-only baseline: the image encoder fine-tuned end to end (same initial
    weights as CLIP's). `chestclip evaluate` then reports it beside the heads."""
    from chestclip.training.finetune import finetune_image_baseline

    config = run_config(run_dir, config_file, overrides)
    click.echo(f"→ {finetune_image_baseline(data_dir, run_dir, config)}")


@baseline.command("text")
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Prepared dataset (reports only is enough: --no-images).",
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output directory.")
@click.option(
    "--fields",
    "fields_list",
    multiple=True,
    default=["indication,findings", "indication"],
    show_default=True,
    help="Comma-separated report sections; repeat to compare.",
)
@BOOTSTRAP_OPTION
@click.option("--seed", type=int, default=0, show_default=True)
def baseline_text(
    data_dir: Path, out: Path, fields_list: tuple[str, ...], bootstrap: int, seed: int
) -> None:
    """Bag-of-words (TF-IDF + logistic regression) on report text, through the same evaluation
    code as every head: the leakage ablation, on reports alone."""
    from chestclip.evaluation.evaluate import evaluate_text_baselines

    fields = [tuple(f.strip() for f in item.split(",")) for item in fields_list]
    document = evaluate_text_baselines(data_dir, out, fields, n_boot=bootstrap, seed=seed)
    print_metrics(document, Path(out))


def format_ci(metric: dict) -> str:
    """A metric with its CI; imported here so `chestclip --help` does not load scikit-learn."""
    from chestclip.evaluation.metrics import format_with_ci

    return format_with_ci(metric)


def run_config(run_dir: Path, config_file: str | None, overrides: tuple[str, ...]):
    """The run's own resolved config unless another is named."""
    from chestclip.config import load_run_config

    saved = Path(run_dir) / "config.yaml"
    return load_run_config(config_file or (saved if saved.is_file() else None), list(overrides))


def main() -> None:
    """Entry point: user errors become one line on stderr and exit status 1."""
    # Lightning's banners and tips; set on the child logger, which its import does not reset
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    # a deprecation inside Lightning itself, printed on every step; nothing a user can act on
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except (ChestClipError, OSError) as err:
        click.echo(f"chestclip: error: {err}", err=True)
        sys.exit(1)
