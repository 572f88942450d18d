"""The ``chestclip`` command line: parses arguments and calls library functions, nothing more."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

import click

from chestclip.errors import ChestClipError
from chestclip.utils.distributed import CALL_ENV
from chestclip.utils.run_layout import RunLayout

MAX_SKIPPED_SHOWN = 10
RUN_OPTION = click.option(
    "--run", "run_dir", required=True, type=click.Path(path_type=Path), help="A run directory."
)
NEW_RUN_OPTION = click.option(
    "--run",
    "--run-dir",  # under torchrun, whose parser reads --run as an abbreviation of --run-path
    "run_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="The run directory to create or continue (every command calls it --run).",
)
SEED_OPTION = click.option(
    "--seed",
    type=int,
    help="Seed of every random choice in training (the config's `seed`) [config: 0].",
)


def with_seed(overrides: tuple[str, ...], seed: int | None) -> tuple[str, ...]:
    """``--seed`` as the config override it stands for."""
    return overrides if seed is None else (*overrides, f"seed={seed}")


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
MAX_MEGAPIXELS_OPTION = click.option(
    "--max-megapixels",
    type=click.FloatRange(min=0, min_open=True),
    default=50,  # limits.DEFAULT_MAX_PIXELS in MP (importing chestclip.data would load torch)
    show_default=True,
    help="Refuse images with more pixels (read from the header, before decoding).",
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


def checked_device(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--device`` must exist on this machine: checked before any work starts."""
    if value is None:
        return None
    from chestclip.utils.device import resolve_device

    return str(resolve_device(value))


DEVICE_OPTION = click.option(
    "--device",
    callback=checked_device,
    help="Where the model runs: cpu, cuda or cuda:N [cuda when available, else cpu].",
)


@click.group(
    context_settings={
        "help_option_names": ["-h", "--help"],
        "max_content_width": 100,
        "show_default": True,
    }
)
@click.version_option(package_name="chestclip")
@click.option(
    "-v", "--verbose", count=True, help="More log lines: -v info, -vv debug [warnings only]."
)
@click.option("-q", "--quiet", is_flag=True, help="Errors only: no warnings, no progress bars.")
def cli(verbose: int, quiet: bool) -> None:
    """chestclip: CLIP on chest X-rays and their reports, MLP heads, Grad-CAM ROI analysis."""
    configure_logging(verbose, quiet)


def configure_logging(verbose: int, quiet: bool) -> None:
    """chestclip's log level from -v/-q (warnings by default); -q also silences progress bars."""
    if quiet:
        level = logging.ERROR
    else:
        level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("chestclip").setLevel(level)
    if quiet:
        os.environ["TQDM_DISABLE"] = "1"  # tqdm reads its defaults from TQDM_* variables


@cli.command()
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Directory to create.")
@click.option(
    "--studies", type=click.IntRange(min=1), help="Studies [200; with --reports: every report]."
)
@click.option(
    "--image-size", default=512, type=click.IntRange(min=32), help="Side of the phantom images."
)
@click.option(
    "--layout",
    type=click.Choice(["openi", "kaggle", "mimic", "chexpert", "manifest"]),
    default="openi",
    help="The download layout to imitate.",
)
@click.option("--seed", default=0, type=int, help="Seed of the phantom generator.")
@click.option(
    "--visibility",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Lesion contrast: 0 draws no lesions (reports still describe them).",
)
@click.option(
    "--reports",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Real NLMCXR_reports.tgz: phantom images for its reports, as the real download.",
)
@click.option(
    "--projections",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="With --reports: indiana_projections.csv, the view to draw for each real image.",
)
def phantom(
    out: Path,
    studies: int | None,
    image_size: int,
    layout: str,
    seed: int,
    visibility: float,
    reports: Path | None,
    projections: Path | None,
) -> None:
    """Generate synthetic chest X-ray studies with known lesions, in a real IU X-Ray layout."""
    if reports is None:
        if projections is not None:
            raise click.UsageError("--projections needs --reports")
        from chestclip.phantom import generate_phantoms

        summary = generate_phantoms(out, studies or 200, image_size, layout, seed, visibility)
        click.echo(
            f"wrote {summary.n_studies} studies ({summary.n_normal} normal, "
            f"{summary.n_abnormal} abnormal), {summary.n_images} images, {layout} layout → {out}"
        )
        return
    if layout != "openi":
        raise click.UsageError("--reports writes the OpenI layout (the real download's)")
    from chestclip.phantom.real_reports import generate_from_reports

    made = generate_from_reports(reports, out, studies, image_size, seed, visibility, projections)
    click.echo(
        f"wrote {made.n_images} images ({made.n_frontal} frontal) for {made.n_reports} real "
        f"reports, lesions drawn for {made.n_with_lesions} → {out}"
    )
    if made.unmapped_terms:
        top = ", ".join(f"{term} {n}" for term, n in list(made.unmapped_terms.items())[:5])
        click.echo(
            f"{len(made.unmapped_terms)} MeSH terms have no phantom finding (reports: {top}, ...; "
            "all in phantom_params.json)"
        )


@cli.command()
@click.option(
    "--source",
    required=True,
    type=click.Path(path_type=Path),
    help="OpenI folder or NLMCXR_reports.tgz, the Kaggle folder, MIMIC-CXR-JPG, CheXpert or a "
    "manifest CSV.",
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
@click.option(
    "--split-ratios",
    "split",
    help="train,val,test fractions of the patients [0.70,0.15,0.15].",
)
@click.option(
    "--official-split",
    is_flag=True,
    help="Keep the source's own split (MIMIC-CXR's split.csv, a manifest's split column).",
)
@click.option("--seed", type=int, help="Split seed [0].")
@click.option(
    "--resize",
    type=click.Choice(["pad", "stretch"]),
    help="Keep aspect (pad) or stretch [pad].",
)
@click.option("--workers", type=click.IntRange(min=1), help="Decoding threads [cores, at most 8].")
@click.option("--no-images", is_flag=True, help="Reports only (for sources without images).")
@click.option(
    "--allow-partial",
    is_flag=True,
    help="Keep what a truncated archive or an empty result leaves (listed in summary.json).",
)
@click.option(
    "--uncertain",
    type=click.Choice(["ignore", "zeros", "ones"]),
    help="Uncertain (-1) findings: masked, 0 or 1 [ignore].",
)
@click.option(
    "--missing",
    type=click.Choice(["ignore", "zeros", "ones"]),
    help="Missing (blank) findings: masked, 0 or 1 [zeros].",
)
@click.option("--labeler", type=click.Choice(["chexpert", "negbio"]), help="MIMIC-CXR labels.")
@click.option(
    "--cache",
    type=click.Choice(["auto", "array", "shards"]),
    help="Image cache: one images.npy or tar shards [auto: shards above 4 GiB].",
)
@click.option("--shard-size", type=click.IntRange(min=1), help="Images per shard [1000].")
@click.option(
    "--column",
    "columns",
    multiple=True,
    metavar="ROLE=NAME",
    help="Manifest CSV column, e.g. --column patient_id=MRN (repeatable).",
)
def prepare(
    source: Path,
    out: Path,
    config_file: Path | None,
    no_images: bool,
    allow_partial: bool,
    official_split: bool,
    columns: tuple[str, ...],
    **options,
) -> None:
    """Turn a download (IU X-Ray, MIMIC-CXR-JPG, CheXpert, a manifest CSV) into a clean,
    patient-split, cached dataset."""
    from chestclip.config import ConfigError, PrepareConfig, read_yaml, validate
    from chestclip.data import prepare_dataset
    from chestclip.data.prepare import describe_views
    from chestclip.phantom.real_reports import check_inferred_views

    settings = read_yaml(config_file).get("prepare", {}) if config_file else {}
    settings.update({k: v for k, v in options.items() if v is not None})
    if no_images:
        settings["images"] = False
    if allow_partial:
        settings["allow_partial"] = True
    if official_split:
        if options["split"]:
            raise ConfigError("--official-split and --split-ratios: choose one")
        settings["split"] = "official"
    for item in columns:
        role, sep, name = item.partition("=")
        if not sep:
            raise ConfigError(f"--column {item!r}: expected ROLE=NAME")
        settings.setdefault("manifest", {})[role.strip()] = name.strip() or None
    config = validate(PrepareConfig, settings, str(config_file or "options"))
    summary = prepare_dataset(source, out, config).counts
    click.echo(
        f"{summary['layout']} source: {summary['reports_parsed']} reports parsed, "
        f"{summary['reports_with_images']} with images; kept {summary['studies']} studies "
        f"({summary['normal']} normal, {summary['diseased']} diseased), {summary['images']} images"
    )
    for split, counts in summary["splits"].items():
        click.echo(
            f"  {split:5s}: {counts['patients']} patients, {counts['studies']} studies, "
            f"{counts['images']} images, {counts['normal']} normal / {counts['diseased']} diseased"
        )
    click.echo(describe_views(summary))
    view_check = check_inferred_views(out)  # a phantom fixture's source: its true views
    if view_check:
        click.echo(view_check.describe())
    for problem in summary["partial"]:
        click.echo(f"warning: partial dataset: {problem}", err=True)
    if summary.get("shards_reused"):
        click.echo(
            f"resumed: {summary['shards_reused']} shards kept, {summary['shards_written']} written"
        )
    if not summary["has_reports"]:
        click.echo("image-only source: no report text (CLIP pre-training needs reports)")
    if summary["skipped_count"]:
        reasons = ", ".join(f"{n} {r}" for r, n in summary["skipped_by_reason"].items())
        click.echo(f"skipped {summary['skipped_count']}: {reasons} (all listed in summary.json)")
        for item in summary["skipped"][:MAX_SKIPPED_SHOWN]:
            click.echo(f"  {item['kind']} {item['id']}: {item['reason']}", err=True)
    click.echo(f"→ {out}")


@cli.command()
@DATA_OPTION
@NEW_RUN_OPTION
@click.option("--config", "config_file", help="YAML path or packaged name (paper, tiny) [paper].")
@OVERRIDES_OPTION
@SEED_OPTION
@click.option("--resume", is_flag=True, help="Continue from RUN/checkpoints/last.ckpt.")
def pretrain(
    data_dir: Path,
    run_dir: Path,
    config_file: str | None,
    overrides: tuple[str, ...],
    seed: int | None,
    resume: bool,
) -> None:
    """Contrastive CLIP pre-training on X-ray/report pairs (PyTorch Lightning)."""
    from chestclip.config import load_run_config
    from chestclip.training.pretrain import pretrain as run_pretrain
    from chestclip.utils.distributed import is_leader

    config = load_run_config(config_file, list(with_seed(overrides, seed)))
    result = run_pretrain(data_dir, run_dir, config, resume=resume)
    if not is_leader():  # a rank of a torchrun/srun launch: rank 0 reports
        return
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
@click.option(
    "--ablation",
    multiple=True,
    help="Also train the text-reading heads on these sections (repeatable) "
    "[probe.ablation: indication].",
)
@click.option("--no-ablation", is_flag=True, help="No leakage-ablation heads.")
@RUN_CONFIG_OPTION
@OVERRIDES_OPTION
@SEED_OPTION
@DEVICE_OPTION
def probe(
    run_dir: Path,
    data_dir: Path,
    features: str,
    text_fields: str | None,
    ablation: tuple[str, ...],
    no_ablation: bool,
    config_file: str | None,
    overrides: tuple[str, ...],
    seed: int | None,
    device: str | None,
) -> None:
    """Train MLP heads on frozen CLIP features (best epoch chosen on validation), and the
    leakage-ablation heads on the indication alone."""
    from chestclip.training.findings_probe import probe_findings
    from chestclip.training.probe import FEATURE_CHOICES
    from chestclip.training.probe import probe as run_probe

    if ablation or no_ablation:
        overrides = (*overrides, f"probe.ablation={[] if no_ablation else list(ablation)}")
    config = run_config(run_dir, config_file, with_seed(overrides, seed))
    fields = [f.strip() for f in text_fields.split(",")] if text_fields else None
    heads = run_probe(run_dir, data_dir, config, FEATURE_CHOICES[features], fields, device)
    for head in heads:
        click.echo(
            f"{head.name:28s} best epoch {head.best_epoch:3d}, validation AUC {head.val_auc:.3f}"
        )
    if config.probe.findings:  # multi-label heads, when the prepared data has findings
        kinds = FEATURE_CHOICES[features]
        for head in probe_findings(run_dir, data_dir, config, kinds, fields, device):
            click.echo(
                f"findings/{head.name:19s} best epoch {head.best_epoch:3d}, "
                f"validation macro AUC {head.val_auc:.3f}"
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
@BOOTSTRAP_OPTION
@RUN_CONFIG_OPTION
@DEVICE_OPTION
def evaluate(
    run_dir: Path,
    data_dir: Path,
    threshold: str,
    bootstrap: int,
    config_file: str | None,
    device: str | None,
) -> None:
    """Evaluate every head `probe` trained on the test split: metrics with CIs, plots,
    warnings. Trains nothing; a stale head (of another CLIP) is refused."""
    from chestclip.evaluation.evaluate import evaluate as run_evaluate

    config = run_config(run_dir, config_file, ())
    document = run_evaluate(run_dir, data_dir, config, threshold, bootstrap, device)
    print_metrics(document, Path(run_dir))
    print_findings(Path(run_dir))


def print_metrics(document: dict, out: Path) -> None:
    click.echo(f"{'head':34s} {'ROC-AUC per image (95% CI)':28s} accuracy  threshold")
    for name, result in document["heads"].items():
        metrics = result["levels"]["image"]["metrics"]
        auc, accuracy = format_ci(metrics["roc_auc"]), metrics["accuracy"]["value"]
        click.echo(f"{name:34s} {auc:28s} {accuracy:.3f}     {result['threshold']['value']:.3f}")
    print_comparisons(document.get("comparisons", []))
    for warning in document["warnings"]:
        click.echo(f"warning: {warning}")
    click.echo(f"→ {RunLayout(out).metrics}")


def print_findings(run_dir: Path) -> None:
    """The multi-label heads' per-finding table, when the run has one (RUN/eval/findings.json)."""
    import json

    from chestclip.evaluation.findings import findings_lines

    path = RunLayout(run_dir).findings_metrics
    if path.is_file():
        for line in findings_lines(json.loads(path.read_text())):
            click.echo(line)
        click.echo(f"→ {path}")


def print_comparisons(comparisons: list[dict]) -> None:
    """Paired ROC-AUC differences per image, each with its paired bootstrap CI."""
    from chestclip.evaluation.metrics import format_difference

    if not comparisons:
        return
    click.echo("paired ROC-AUC differences per image (95% CI, same patients resampled for both):")
    for comparison in comparisons:
        pair = f"{comparison['head']} − {comparison['reference']}"
        shown = format_difference(comparison["levels"]["image"])
        click.echo(f"  {pair:58s} {shown:28s} {comparison['measures']}")


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
@click.option("--split", default="test", help="The split to score (val or test).")
@BOOTSTRAP_OPTION
@DEVICE_OPTION
def zeroshot(
    run_dir: Path,
    data_dir: Path,
    prompts: Path | None,
    split: str,
    bootstrap: int,
    device: str | None,
) -> None:
    """Zero-shot classification by prompt pairs (positive vs negative ensembles), AUC with CIs."""
    from chestclip.retrieval.stage import run_zero_shot

    precision = run_config(run_dir, None, ()).pretrain.precision
    result = run_zero_shot(
        run_dir, data_dir, prompts, split, bootstrap, device=device, precision=precision
    )
    for name, task in result["tasks"].items():
        shown = (
            format_ci(task["roc_auc"]) if task["status"] == "ok" else f"skipped: {task['reason']}"
        )
        click.echo(f"{name:14s} ROC-AUC {shown}")
    click.echo(f"→ {RunLayout(run_dir).zeroshot_metrics}")


@cli.command()
@RUN_OPTION
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path),
    help="Prepared dataset (builds the index).",
)
@click.option("--split", default="test", help="The split to score (val or test).")
@click.option(
    "--image",
    type=click.Path(path_type=Path),
    help="Ad-hoc query: an X-ray file (PNG, JPEG or DICOM) → top-k reports.",
)
@click.option("--text", help="Ad-hoc query: a report text → top-k images.")
@click.option(
    "-k", "top_k", type=click.IntRange(min=1), default=5, help="How many nearest items to show."
)
@click.option(
    "--drafts", is_flag=True, help="With --image: the k nearest TRAINING reports as drafts."
)
@DEVICE_OPTION
def retrieve(
    run_dir: Path,
    data_dir: Path | None,
    split: str,
    image: Path | None,
    text: str | None,
    top_k: int,
    drafts: bool,
    device: str | None,
) -> None:
    """Image↔report retrieval: Recall@1/5/10 and median rank on a split (with --data), or an
    ad-hoc --image / --text query against the saved index."""
    from chestclip.retrieval.stage import draft_reports, query, run_retrieval

    if data_dir is not None:
        precision = run_config(run_dir, None, ()).pretrain.precision
        metrics = run_retrieval(run_dir, data_dir, split, device, precision)
        for direction in ("image_to_report", "report_to_image"):
            values = metrics[direction]
            shown = "  ".join(
                f"R@{k} {values[f'recall@{k}']:.3f} (chance {values[f'chance@{k}']:.3f})"
                for k in (1, 5, 10)
            )
            click.echo(f"{direction:16s} {shown}  median rank {values['median_rank']:g}")
    if image is not None and drafts:
        click.echo(draft_reports(run_dir, image, top_k, device).to_string(index=False))
    elif image is not None or text is not None:
        click.echo(query(run_dir, split, image, text, top_k, device).to_string(index=False))
    elif data_dir is None:
        raise click.UsageError("give --data to evaluate retrieval, or --image/--text to query")


ALLOW_OOD_OPTION = click.option(
    "--allow-ood",
    is_flag=True,
    help="Score images the run flags (out of distribution, or a view its heads never saw) "
    "anyway; they stay flagged.",
)


def warn_untrusted(name: str, trust: dict) -> None:
    """One warning line per reason the run does not vouch for an image, and its notes."""
    for reason in trust["reasons"]:
        click.echo(f"chestclip: warning: {name}: {reason}", err=True)
    for note in trust["notes"]:
        click.echo(f"chestclip: note: {name}: {note}", err=True)


@cli.command("explain")
@RUN_OPTION
@click.option(
    "--image", type=click.Path(path_type=Path), help="One X-ray (PNG, JPEG or DICOM) to explain."
)
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
@DEVICE_OPTION
@ALLOW_OOD_OPTION
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
    device: str | None,
    allow_ood: bool,
) -> None:
    """Grad-CAM heat maps, ROI zone analysis and measured faithfulness."""
    from chestclip.explain.stage import explain_image, explain_split
    from chestclip.explain.summary import summary_table

    out = out or RunLayout(run_dir).explain
    if image is not None:
        method = methods[0] if methods else None
        result = explain_image(run_dir, image, out, text, method, head, device, allow_ood)
        warn_untrusted(str(image), result["trust"])
        if result["trust"]["refused"]:
            click.echo("no decision: " + "; ".join(result["trust"]["reasons"]))
            return
        zones = ", ".join(result["top_zones"])
        where = f"top zones ({result['zones']} zones): {zones}" if result["zones"] else "no zones"
        probability = result["probability_diseased"]
        click.echo(f"P(diseased) {probability:.3f} · {result['method']} · {where}")
        click.echo(f"→ {out}")
        return
    if data_dir is None:
        raise click.UsageError("give --image FILE, or --data PREPARED for a batch")
    summary = explain_split(
        run_dir,
        data_dir,
        split,
        limit,
        methods or None,
        head or "multimodal",
        out,
        masks,
        device=device,
    )
    click.echo(summary_table(summary).to_string())
    click.echo(
        f"default method: {summary['default_method']} (chosen on the "
        f"{summary['default_chosen_on']} split) → {out}"
    )


@cli.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("runs/demo"),
    help="The demo's folder: phantoms/, and the run (with its prepared data) in run/.",
)
@click.option(
    "--studies", type=click.IntRange(min=40), default=600, help="Phantom studies to generate."
)
@click.option(
    "--epochs", type=click.IntRange(min=1), help="CLIP pre-training epochs [configs/tiny.yaml]."
)
@BOOTSTRAP_OPTION
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@DEVICE_OPTION
def demo(
    out: Path,
    studies: int,
    epochs: int | None,
    bootstrap: int,
    overwrite: bool,
    device: str | None,
) -> None:
    """The whole study on phantoms, offline, in a few minutes on a CPU: pre-training, heads,
    baselines, evaluation with CIs, explanations, zero-shot, retrieval, report.html."""
    from chestclip.pipeline import run_demo

    result = run_demo(
        out, studies, epochs, bootstrap, overwrite=overwrite, log=click.echo, device=device
    )
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
@MAX_MEGAPIXELS_OPTION
@DEVICE_OPTION
@ALLOW_OOD_OPTION
@RUNTIME_OPTION
def predict(
    run_dir: Path,
    files: tuple[Path, ...],
    indication: str | None,
    cam_dir: Path | None,
    method: str | None,
    drafts: int,
    as_json: bool,
    max_megapixels: float,
    device: str | None,
    allow_ood: bool,
    runtime: str,
) -> None:
    """P(diseased) for PNG, JPEG or DICOM files, with decisions, ROI zones and overlays."""
    import json

    from chestclip.inference.predict import predict_files

    failed = 0
    max_pixels = int(max_megapixels * 1e6)
    results = predict_files(
        run_dir, files, indication, cam_dir, method, drafts, max_pixels, device, allow_ood, runtime
    )
    for result in results:
        if result.error:
            failed += 1
            click.echo(f"chestclip: error: {result.error}", err=True)
            continue
        warn_untrusted(result.file, result.trust)
        if as_json:
            click.echo(json.dumps(result.as_dict(), default=str))
            continue
        click.echo(result.file)
        if result.trust["refused"]:
            click.echo("  no decision: " + "; ".join(result.trust["reasons"]))
            continue
        for head, probability in result.probabilities.items():
            verdict = verdict_text(result.decisions[head], result.thresholds[head])
            click.echo(f"  {head:24s} P(diseased) {probability:.3f} → {verdict}")
        for head, findings in result.findings.items():  # the multi-label heads, if any
            for finding, found in findings.items():
                verdict = verdict_text(found["decision"], found["threshold"])
                click.echo(f"  {head:24s} {finding:28s} P {found['probability']:.3f} → {verdict}")
        zones = (
            ", ".join(f"{zone} {share:.0%}" for zone, share in result.top_zones) or "map is empty"
        )
        if result.method is None:
            zones = "no heat map (--runtime onnx: --cam-dir or --method makes one)"
        click.echo(
            (f"  top zones ({result.zones} zones): {zones}" if result.zones else "  no zones")
            + (f"  overlay: {result.overlay}" if result.overlay else "")
        )
        for draft in result.drafts:
            report = f"{draft['findings']} {draft['impression']}".strip()
            click.echo(f"  draft {draft['rank']} ({draft['similarity']:.2f}): {report}")
    if failed:
        raise SystemExit(1)


def verdict_text(decision: str | None, threshold: float | None) -> str:
    """``diseased (threshold 0.412)``, or why there is no decision."""
    if threshold is None:
        return "no threshold: run evaluate"
    return f"{decision} (threshold {threshold:.3f})"


@cli.command()
@RUN_OPTION
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; anything but loopback lets the network upload images.",
)
@click.option("--port", default=8000, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option(
    "--max-upload-mb",
    default=32,
    show_default=True,
    type=click.IntRange(min=1),
    help="Larger uploads get HTTP 413.",
)
@click.option(
    "--token",
    envvar="CHESTCLIP_SERVE_TOKEN",
    help="Bearer token the API requires; needed beyond loopback [$CHESTCLIP_SERVE_TOKEN].",
)
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="NAME",
    help="A Host name clients use to reach the server, besides loopback (repeatable).",
)
@MAX_MEGAPIXELS_OPTION
@DEVICE_OPTION
@RUNTIME_OPTION
def serve(
    run_dir: Path,
    host: str,
    port: int,
    max_upload_mb: int,
    token: str | None,
    allow_hosts: tuple[str, ...],
    max_megapixels: float,
    device: str | None,
    runtime: str,
) -> None:
    """Web viewer and JSON API: upload an X-ray, see P(diseased) per head, the heat map, its ROI
    zones and the nearest training reports (API docs at /docs)."""
    from chestclip.serve import serve as run_server

    run_server(
        run_dir,
        host,
        port,
        max_upload_mb * 2**20,
        log=click.echo,
        token=token,
        allow_hosts=allow_hosts,
        max_pixels=int(max_megapixels * 1e6),
        device=device,
        runtime=runtime,
    )


@cli.command("run")
@click.option(
    "--config", "config_file", required=True, help="YAML path or packaged name (paper, tiny)."
)
@click.option(
    "--source", required=True, type=click.Path(path_type=Path), help="The IU X-Ray download."
)
@NEW_RUN_OPTION
@OVERRIDES_OPTION
@SEED_OPTION
@BOOTSTRAP_OPTION
@click.option(
    "--explain-limit", type=click.IntRange(min=1), help="Explain at most this many test images."
)
@DEVICE_OPTION
def run_command(
    config_file: str,
    source: Path,
    run_dir: Path,
    overrides: tuple[str, ...],
    seed: int | None,
    bootstrap: int,
    explain_limit: int | None,
    device: str | None,
) -> None:
    """Every stage in order: prepare, pretrain, probe (with the leakage-ablation heads), the
    fine-tuned image baseline, evaluate, explain, zero-shot, retrieve, report and model card,
    each switchable off (`--set stages.explain=false`). Stages whose config and inputs are
    unchanged are skipped, and a killed run resumes where it stopped. With DDP
    (pretrain.devices > 1, or launched by torchrun/srun) training runs on every rank, the rest
    once."""
    from chestclip.config import load_run_config
    from chestclip.pipeline import run_pipeline
    from chestclip.utils.distributed import is_leader

    config = load_run_config(config_file, list(with_seed(overrides, seed)))
    run = run_pipeline(config, source, run_dir, click.echo, bootstrap, explain_limit, device)
    if is_leader():
        print_findings(run)
        click.echo(f"→ {RunLayout(run).report}")


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
@click.option(
    "--tables-url", help="Mirror of the view tables [torchxrayvision's repository, pinned]."
)
@click.option("--only", type=click.Choice(["reports", "images", "views"]), help="Just one part.")
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
    dest: Path,
    base_url: str | None,
    tables_url: str | None,
    only: str | None,
    no_extract: bool,
    checksums: tuple[str, ...],
) -> None:
    """The OpenI IU X-Ray archives (NLMCXR_reports.tgz, NLMCXR_png.tgz) and the per-image view
    tables, with progress, resume of partial downloads, size/checksum checks and safe
    extraction."""
    from chestclip.data.download import (
        DEFAULT_BASE_URL,
        IU_XRAY_FILES,
        VIEW_TABLES_URL,
        download_iu_xray,
        parse_sha256,
    )

    files = IU_XRAY_FILES[only] if only else sum(IU_XRAY_FILES.values(), ())
    result = download_iu_xray(
        dest,
        base_url or DEFAULT_BASE_URL,
        files=files,
        extract=not no_extract,
        expected=parse_sha256(checksums),
        tables_url=tables_url or VIEW_TABLES_URL,
    )
    for item in result.files:
        click.echo(item.describe())
    click.echo(f"→ {result.dest}")


@cli.group("config")
def config_group() -> None:
    """The configs commands resolve."""


@config_group.command("show")
@click.option("--config", "config_file", help="YAML path or packaged name (paper, tiny) [paper].")
@OVERRIDES_OPTION
@click.option("--keys", is_flag=True, help="List every key (for --set) with its type and value.")
def config_show(config_file: str | None, overrides: tuple[str, ...], keys: bool) -> None:
    """Print the resolved config (the paper's defaults, the file, then --set), as `run` and
    `pretrain` would use it."""
    from chestclip.config import config_keys, load_run_config, run_config_yaml

    config = load_run_config(config_file, list(overrides))
    if not keys:
        click.echo(run_config_yaml(config), nl=False)
        return
    for key, kind, value in config_keys(config):
        click.echo(f"{key} ({kind}) = {value!r}")


@cli.group()
def baseline() -> None:
    """Baselines every reported score is compared with."""


@baseline.command("image")
@DATA_OPTION
@NEW_RUN_OPTION
@RUN_CONFIG_OPTION
@OVERRIDES_OPTION
@SEED_OPTION
def baseline_image(
    data_dir: Path,
    run_dir: Path,
    config_file: str | None,
    overrides: tuple[str, ...],
    seed: int | None,
) -> None:
    """The paper's image-only baseline: the image encoder fine-tuned end to end (same initial
    weights as CLIP's). `chestclip evaluate` then reports it beside the heads."""
    from chestclip.training.finetune import finetune_image_baseline
    from chestclip.utils.distributed import is_leader

    config = run_config(run_dir, config_file, with_seed(overrides, seed))
    directory = finetune_image_baseline(data_dir, run_dir, config)
    if is_leader():
        click.echo(f"→ {directory}")


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
@click.option("--seed", type=int, default=0, help="Seed of the cross-validation and the bootstrap.")
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

    saved = RunLayout(run_dir).config
    return load_run_config(config_file or (saved if saved.is_file() else None), list(overrides))


def main() -> None:
    """Entry point: user errors become one line on stderr and exit status 1."""
    # Lightning's banners and tips; set on the child logger, which its import does not reset
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    # a deprecation inside Lightning itself, printed on every step; nothing a user can act on
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    try:
        if CALL_ENV in os.environ:  # maybe a DDP child Lightning re-executed this command as
            from chestclip.pipeline import join_spawned_call

            join_spawned_call()
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
