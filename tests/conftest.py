"""Shared fixtures: small phantom datasets in both layouts, and the real reports when present."""

from __future__ import annotations

import collections
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

PROJECT = Path(__file__).resolve().parents[1]
SHARED_IU = Path(os.environ.get("CHESTCLIP_SHARED_DATA", PROJECT.parent / "shared/data/iu-xray"))


@pytest.fixture(scope="session")
def real_iu() -> Path:
    """The real IU X-Ray reports (../shared/data/iu-xray); the test is skipped when absent."""
    if not (SHARED_IU / "kaggle/indiana_reports.csv").is_file():
        pytest.skip(f"real IU X-Ray reports not found at {SHARED_IU}")
    return SHARED_IU


@pytest.fixture
def tcp_port() -> int:
    """A free loopback port for a distributed test's rendezvous."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def phantom_openi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from chestclip.phantom import generate_phantoms

    out = tmp_path_factory.mktemp("phantom") / "openi"
    generate_phantoms(out, studies=40, image_size=96, layout="openi", seed=0)
    return out


@pytest.fixture(scope="session")
def phantom_kaggle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from chestclip.phantom import generate_phantoms

    out = tmp_path_factory.mktemp("phantom") / "kaggle"
    generate_phantoms(out, studies=40, image_size=96, layout="kaggle", seed=0)
    return out


@pytest.fixture(scope="session")
def prepared_phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 phantom studies with clearly visible lesions (visibility 3) prepared at 64 px: what a
    tiny CLIP needs to learn image-report alignment in seconds on a CPU."""
    from chestclip.config import PrepareConfig
    from chestclip.data import prepare_dataset
    from chestclip.phantom import generate_phantoms

    root = tmp_path_factory.mktemp("prepared")
    generate_phantoms(
        root / "source", studies=600, image_size=128, layout="kaggle", seed=1, visibility=3.0
    )
    config = PrepareConfig(image_size=64, workers=2)
    return prepare_dataset(root / "source", root / "prepared", config).out


@pytest.fixture(scope="session")
def trained_run(prepared_phantoms: Path, tmp_path_factory: pytest.TempPathFactory):
    """A tiny CLIP pre-trained for 12 epochs on ``prepared_phantoms`` (about 20 s on 2 cores)."""
    from chestclip.config import load_run_config
    from chestclip.training.pretrain import pretrain

    config = load_run_config("tiny", ["pretrain.epochs=12"])
    return pretrain(prepared_phantoms, tmp_path_factory.mktemp("run"), config)


@pytest.fixture(scope="session")
def probed_run(trained_run, prepared_phantoms: Path):
    """``trained_run`` with its multimodal, image-only and text-only heads trained."""
    from chestclip.config import load_run_config
    from chestclip.training.probe import probe

    heads = probe(trained_run.run, prepared_phantoms, load_run_config("tiny"))
    return trained_run.run, {h.name: h for h in heads}


def write_dicom(path: Path, pixels, photometric: str) -> None:
    """A 12-bit-stored, 16-bit-allocated greyscale DICOM of ``pixels`` [H, W]."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.Modality, ds.PatientID = "CR", "phantom"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def _raw(tag: int, vr: str, value: bytes):
    """An element written byte for byte, however wrong (pydicom validates what it encodes)."""
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    return RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)


def _lut(descriptor: list[int], entries: int):
    import struct

    from pydicom.dataset import Dataset

    item = Dataset()
    item[0x00283002] = _raw(0x00283002, "US", struct.pack(f"<{len(descriptor)}H", *descriptor))
    item[0x00283006] = _raw(0x00283006, "OW", struct.pack(f"<{entries}H", *range(entries)))
    return item


# the DICOM attributes a broken exporter writes, each raising inside pydicom's pixel pipeline
MALFORMED_DICOM = {
    "slope-text": {"RescaleSlope": _raw(0x00281053, "DS", b"abc "),
                   "RescaleIntercept": _raw(0x00281052, "DS", b"0 ")},
    "window-text": {"WindowCenter": _raw(0x00281050, "DS", b"wide"),
                    "WindowWidth": _raw(0x00281051, "DS", b"400 ")},
    "short-voi-lut": {"VOILUTSequence": [_lut([4096, 0, 12], 10)]},
    "short-modality-lut": {"ModalityLUTSequence": [_lut([4096, 0, 12], 10)]},
    "one-value-lut-descriptor": {"VOILUTSequence": [_lut([4096], 4096)]},
}  # fmt: skip


@pytest.fixture(scope="session")
def malformed_dicoms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small DICOM per MALFORMED_DICOM attribute set, named ``<kind>.dcm``."""
    import numpy as np
    from pydicom import dcmread

    folder = tmp_path_factory.mktemp("malformed")
    paths = {}
    for kind, elements in MALFORMED_DICOM.items():
        path = paths[kind] = folder / f"{kind}.dcm"
        write_dicom(path, np.arange(64 * 64).reshape(64, 64) % 4096, "MONOCHROME2")
        dataset = dcmread(path)
        for keyword, value in elements.items():
            if isinstance(value, list):
                setattr(dataset, keyword, value)
            else:
                dataset[value.tag] = value
        dataset.save_as(path, enforce_file_format=True)
    return paths


@pytest.fixture(scope="session")
def evaluated_run(probed_run, prepared_phantoms: Path, tmp_path_factory: pytest.TempPathFactory):
    """A copy of ``probed_run`` with validation thresholds (`evaluate`) and the training index
    (`retrieve`): everything `predict` and `serve` use."""
    import shutil

    from chestclip.config import load_run_config
    from chestclip.evaluation.evaluate import evaluate
    from chestclip.retrieval.stage import run_retrieval

    run = tmp_path_factory.mktemp("evaluated") / "run"
    shutil.copytree(probed_run[0], run)
    evaluate(run, prepared_phantoms, load_run_config("tiny"), n_boot=0)
    run_retrieval(run, prepared_phantoms)
    return run


@pytest.fixture(scope="session")
def xray_files(prepared_phantoms: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One frontal test phantom as PNG, JPEG, 16-bit PNG, DICOM MONOCHROME2, DICOM MONOCHROME1
    (no extension), and a truncated PNG."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    folder = tmp_path_factory.mktemp("files")
    images = pd.read_csv(prepared_phantoms / "images.csv").query(
        "projection == 'Frontal' and split == 'test'"
    )
    grey = np.asarray(Image.open(images["file"].iloc[0]).convert("L"))
    paths = {
        "png": folder / "a.png",
        "jpeg": folder / "b.jpg",
        "png16": folder / "c.png",
        "mono2": folder / "d.dcm",
        "mono1": folder / "e",
        "corrupt": folder / "f.png",
    }
    Image.fromarray(grey).save(paths["png"])
    Image.fromarray(grey).save(paths["jpeg"], quality=95)
    Image.fromarray(grey.astype(np.uint16) * 16).save(paths["png16"])
    write_dicom(paths["mono2"], grey.astype(np.uint16) * 16, "MONOCHROME2")
    write_dicom(paths["mono1"], (255 - grey.astype(np.uint16)) * 16, "MONOCHROME1")
    paths["corrupt"].write_bytes(paths["png"].read_bytes()[:200])
    return paths


@pytest.fixture(scope="session")
def lateral_only(prepared_phantoms: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``prepared_phantoms`` as if no image were frontal (views unknown, then inferred lateral)."""
    import shutil

    import pandas as pd

    copy = tmp_path_factory.mktemp("lateral") / "prepared"
    shutil.copytree(prepared_phantoms, copy)
    images = pd.read_csv(copy / "images.csv", dtype=str, keep_default_na=False)
    images.assign(projection="Lateral").to_csv(copy / "images.csv", index=False)
    return copy


@pytest.fixture(scope="session")
def real_reports_fixture(real_iu: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `chestclip download iu-xray` would leave for 200 of the real reports (no view table),
    with 64-px phantom images (`chestclip phantom --reports`, views drawn as the Kaggle table
    says); the phantom truth beside it. Skipped when the real reports are absent."""
    from chestclip.phantom.real_reports import generate_from_reports

    reports = real_iu / "openi/NLMCXR_reports.tgz"
    if not reports.is_file():
        pytest.skip(f"{reports} not found")
    projections = real_iu / "kaggle/indiana_projections.csv"
    out = tmp_path_factory.mktemp("real-reports") / "iu-xray"
    generate_from_reports(
        reports,
        out,
        studies=200,
        image_size=64,
        projections=projections if projections.is_file() else None,
    )
    return out


# ── Pretrained dual encoders in every format `model.init_from` reads, tiny and random ──────────
# The open_clip and OpenAI towers are re-implemented here from their published structure
# (timm's VisionTransformer, OpenAI's CLIP): their state dicts carry the real key names, and their
# forward passes are the reference the converted transformers models must reproduce.


class _QuickGELU(torch.nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class _OpenAIBlock(torch.nn.Module):
    """OpenAI CLIP's ResidualAttentionBlock (``attn.in_proj_weight``, ``ln_1``, ``mlp.c_fc``...)."""

    def __init__(self, width: int, heads: int, causal: bool, context: int):
        super().__init__()
        self.attn = torch.nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_1, self.ln_2 = torch.nn.LayerNorm(width), torch.nn.LayerNorm(width)
        self.mlp = torch.nn.Sequential(
            collections.OrderedDict(
                c_fc=torch.nn.Linear(width, 4 * width),
                gelu=_QuickGELU(),
                c_proj=torch.nn.Linear(4 * width, width),
            )
        )
        self.mask = torch.full((context, context), float("-inf")).triu(1) if causal else None

    def forward(self, x):
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=self.mask)[0]
        return x + self.mlp(self.ln_2(x))


class OpenAICLIP(torch.nn.Module):
    """OpenAI's CLIP (ViT image tower, causal text transformer pooled at the highest token id,
    the end-of-text token): ``encode_image(pixel_values)``, ``encode_text(ids)``."""

    def __init__(self, width=64, text_width=64, layers=2, patch=8, image=32, vocab=60, context=16):
        super().__init__()
        grid = image // patch
        self.visual = torch.nn.Module()
        self.visual.conv1 = torch.nn.Conv2d(3, width, patch, patch, bias=False)
        self.visual.class_embedding = torch.nn.Parameter(torch.randn(width) * 0.1)
        self.visual.positional_embedding = torch.nn.Parameter(torch.randn(grid**2 + 1, width) * 0.1)
        self.visual.ln_pre, self.visual.ln_post = (
            torch.nn.LayerNorm(width),
            torch.nn.LayerNorm(width),
        )
        self.visual.transformer = torch.nn.Module()
        self.visual.transformer.resblocks = torch.nn.Sequential(
            *(_OpenAIBlock(width, width // 64, False, grid**2 + 1) for _ in range(layers))
        )
        self.visual.proj = torch.nn.Parameter(torch.randn(width, 16) / width**0.5)
        self.token_embedding = torch.nn.Embedding(vocab, text_width)
        self.positional_embedding = torch.nn.Parameter(torch.randn(context, text_width) * 0.1)
        self.transformer = torch.nn.Module()
        self.transformer.resblocks = torch.nn.Sequential(
            *(_OpenAIBlock(text_width, text_width // 64, True, context) for _ in range(layers))
        )
        self.ln_final = torch.nn.LayerNorm(text_width)
        self.text_projection = torch.nn.Parameter(torch.randn(text_width, 16) / text_width**0.5)
        self.logit_scale = torch.nn.Parameter(torch.tensor(2.6593))

    def encode_image(self, pixel_values):
        v = self.visual
        x = v.conv1(pixel_values).flatten(2).transpose(1, 2)  # [B, grid², width]
        x = torch.cat([v.class_embedding.expand(len(x), 1, -1), x], dim=1) + v.positional_embedding
        x = v.transformer.resblocks(v.ln_pre(x))
        return v.ln_post(x[:, 0]) @ v.proj

    def encode_text(self, ids):
        x = self.transformer.resblocks(self.token_embedding(ids) + self.positional_embedding)
        return self.ln_final(x)[torch.arange(len(ids)), ids.argmax(dim=-1)] @ self.text_projection


class _TimmAttention(torch.nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.qkv, self.proj = (
            heads,
            torch.nn.Linear(dim, 3 * dim),
            torch.nn.Linear(dim, dim),
        )

    def forward(self, x):
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class _TimmBlock(torch.nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.norm2 = (
            torch.nn.LayerNorm(dim, eps=1e-6),
            torch.nn.LayerNorm(dim, eps=1e-6),
        )
        self.attn = _TimmAttention(dim, heads)
        self.mlp = torch.nn.ModuleDict(
            {"fc1": torch.nn.Linear(dim, 4 * dim), "fc2": torch.nn.Linear(4 * dim, dim)}
        )

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        y = self.mlp["fc1"](self.norm2(x))
        return x + self.mlp["fc2"](torch.nn.functional.gelu(y))


class TimmBertCLIP(torch.nn.Module):
    """open_clip's CustomTextCLIP as BiomedCLIP builds it: a timm ViT trunk (token pooling) with
    a bias-free linear head, and a Hugging Face BERT (CLS of the last hidden state) with
    open_clip's bias-free MLP projection."""

    def __init__(self, bert_config, width=128, layers=2, patch=8, image=32, embed=16):
        super().__init__()
        from transformers import BertModel

        grid = image // patch
        trunk = torch.nn.Module()
        trunk.patch_embed = torch.nn.ModuleDict({"proj": torch.nn.Conv2d(3, width, patch, patch)})
        trunk.cls_token = torch.nn.Parameter(torch.randn(1, 1, width) * 0.1)
        trunk.pos_embed = torch.nn.Parameter(torch.randn(1, grid**2 + 1, width) * 0.1)
        trunk.blocks = torch.nn.Sequential(*(_TimmBlock(width, width // 64) for _ in range(layers)))
        trunk.norm = torch.nn.LayerNorm(width, eps=1e-6)
        self.visual = torch.nn.Module()
        self.visual.trunk = trunk
        self.visual.head = torch.nn.ModuleDict({"proj": torch.nn.Linear(width, embed, bias=False)})
        self.text = torch.nn.Module()
        self.text.transformer = BertModel(bert_config)
        hidden = (bert_config.hidden_size + embed) // 2
        self.text.proj = torch.nn.Sequential(
            torch.nn.Linear(bert_config.hidden_size, hidden, bias=False),
            torch.nn.GELU(),
            torch.nn.Linear(hidden, embed, bias=False),
        )
        self.logit_scale = torch.nn.Parameter(torch.tensor(2.0))

    def encode_image(self, pixel_values):
        trunk = self.visual.trunk
        x = trunk.patch_embed["proj"](pixel_values).flatten(2).transpose(1, 2)
        x = torch.cat([trunk.cls_token.expand(len(x), -1, -1), x], dim=1) + trunk.pos_embed
        return self.visual.head["proj"](trunk.norm(trunk.blocks(x))[:, 0])

    def encode_text(self, ids, mask):
        hidden = self.text.transformer(input_ids=ids, attention_mask=mask).last_hidden_state
        return self.text.proj(hidden[:, 0])


@dataclass(frozen=True)
class DualEncoderSource:
    """A tiny pretrained dual encoder written in one format: where it is (``init_from``) and the
    model whose ``encode_image(pixel_values)``/``encode_text(ids, mask)`` it must reproduce."""

    path: Path
    reference: torch.nn.Module
    image_size: int = 32
    context: int = 16


def _hf_clip(directory: Path, tokenizer) -> torch.nn.Module:
    from transformers import CLIPConfig, CLIPModel

    text = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
    text |= {"intermediate_size": 64, "vocab_size": len(tokenizer), "max_position_embeddings": 64}
    text |= {"eos_token_id": tokenizer.sep_token_id, "bos_token_id": tokenizer.cls_token_id}
    vision = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
    vision |= {"intermediate_size": 64, "image_size": 32, "patch_size": 8}
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return model


def _hf_vtde(directory: Path, tokenizer) -> torch.nn.Module:
    from transformers import (
        BertConfig,
        VisionTextDualEncoderConfig,
        VisionTextDualEncoderModel,
        ViTConfig,
    )

    vision = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64, image_size=32, patch_size=8)  # fmt: skip
    text = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=64, vocab_size=len(tokenizer))  # fmt: skip
    config = VisionTextDualEncoderConfig.from_vision_text_configs(vision, text, projection_dim=16)
    model = VisionTextDualEncoderModel(config).eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return model


@pytest.fixture(scope="session")
def dual_encoder_sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DualEncoderSource]:
    """``hf-clip`` (CLIPModel directory, with a tokenizer), ``vtde`` (ViT + BERT
    VisionTextDualEncoderModel, with a tokenizer), ``biomedclip`` (open_clip directory: timm ViT +
    Hugging Face BERT, open_clip_config.json whose hf_model_name is a local directory) and
    ``chexzero`` (a bare OpenAI-style ViT-B/32-like state dict file, no config)."""
    from transformers import BertConfig

    from chestclip.models import train_wordpiece_tokenizer

    root = tmp_path_factory.mktemp("dual_encoders")
    tokenizer = train_wordpiece_tokenizer(
        ["heart size normal lungs clear", "small right pleural effusion"], vocab_size=200
    )
    torch.manual_seed(0)
    sources = {
        "hf-clip": DualEncoderSource(root / "hf-clip", _hf_clip(root / "hf-clip", tokenizer)),
        "vtde": DualEncoderSource(root / "vtde", _hf_vtde(root / "vtde", tokenizer)),
    }
    bert = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=64, vocab_size=len(tokenizer))  # fmt: skip
    bert.save_pretrained(root / "pubmedbert")
    biomedclip = TimmBertCLIP(bert).eval()
    (root / "biomedclip").mkdir()
    torch.save(biomedclip.state_dict(), root / "biomedclip/open_clip_pytorch_model.bin")
    open_clip_config = {
        "model_cfg": {
            "embed_dim": 16,
            "vision_cfg": {
                "timm_model_name": "vit_base_patch16_224",
                "timm_pool": "",
                "timm_proj": "linear",
                "image_size": 32,
            },
            "text_cfg": {
                "hf_model_name": str(root / "pubmedbert"),
                "hf_proj_type": "mlp",
                "hf_pooler_type": "cls_last_hidden_state_pooler",
                "context_length": 16,
            },
        },
        "preprocess_cfg": {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]},
    }
    (root / "biomedclip/open_clip_config.json").write_text(json.dumps(open_clip_config))
    tokenizer.save_pretrained(root / "biomedclip")
    sources["biomedclip"] = DualEncoderSource(root / "biomedclip", biomedclip)
    chexzero = OpenAICLIP(width=128, text_width=64).eval()
    torch.save(chexzero.state_dict(), root / "chexzero.pt")
    sources["chexzero"] = DualEncoderSource(root / "chexzero.pt", chexzero)
    return sources
