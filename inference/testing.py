"""Builders of random models in the exact upstream file layouts, for tests (inference,
CLI, app) and benchmarks. Each writes `<models_dir>/<key>/…` with upstream file names, key
names (transformers 4.x names where upstream has them), config and label files, so the real
discovery and loaders run on them. Architectures are built here independently of the
loaders on purpose: a loader that drifted from the upstream layout fails against these.

Two sizes: tiny stand-ins (default; tests) and, with `full_size=True`, the upstream
architectures at their real sizes (ViT-B/16, CLIP ViT-L/14, SigLIP so400m @384 with 9083
tags) for benchmarks that must time a realistic forward pass. Full-size models are built on
the meta device and filled by `materialise_cheaply` instead of the libraries' initialisers
(trunc_normal_ over 430M parameters takes ~15 s on 2 cores; the fill takes well under 1 s).

torch/transformers/timm are imported inside the functions.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

CLIP_PREPROCESSOR = {  # openai/clip-vit-large-patch14 and the CompVis safety checker
    "crop_size": 224, "do_center_crop": True, "do_normalize": True, "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor",
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": 224}
VIT_PREPROCESSOR = {  # Falconsai/nsfw_image_detection
    "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
    "image_processor_type": "ViTImageProcessor", "image_std": [0.5, 0.5, 0.5], "resample": 2,
    "rescale_factor": 0.00392156862745098, "size": {"height": 224, "width": 224}}


def _folder(models_dir: Path, key: str) -> Path:
    folder = Path(models_dir) / key
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _save_safetensors(state: dict[str, Any], path: Path, *, copy: bool = True) -> None:
    """copy=False skips the defensive copy (which separates tensors sharing storage) for
    multi-GB full-size states whose tensors are known to be separate."""
    from safetensors.torch import save_file

    prepare = (lambda v: v.detach().contiguous().clone()) if copy else \
        (lambda v: v.detach().contiguous())
    save_file({k: prepare(v) for k, v in state.items()}, str(path), metadata={"format": "pt"})


# A prime length, so the repeated pool never lines up with a row length and no two rows of a
# weight matrix are equal.
_POOL_SIZE = 1_000_003


def materialise_cheaply(model: Any, seed: int = 0) -> Any:
    """A model built on the meta device -> CPU tensors holding pseudo-random values, cheaply
    (see `fill_cheaply`). Non-persistent buffers the modules compute in __init__ are
    rebuilt; an unknown one raises so a new architecture is not silently left with garbage."""
    import torch

    persistent = set(model.state_dict())
    transient = [n for n, _ in model.named_buffers() if n not in persistent]
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for name in transient:
            buffer = model.get_buffer(name)
            if name.rpartition(".")[2] != "position_ids":
                raise ValueError(f"materialise_cheaply: cannot rebuild buffer {name!r}")
            buffer.copy_(torch.arange(buffer.shape[-1]).expand_as(buffer))
    return fill_cheaply(model, seed).eval()


def fill_cheaply(model: Any, seed: int = 0, std: float = 0.02) -> Any:
    """Overwrite every parameter and persistent buffer with pseudo-random values, cheaply.

    For timing only: a dense layer's cost does not depend on the values it multiplies (no
    sparsity shortcuts on CPU or GPU), so a pool of N(0, std) values tiled through every
    tensor times exactly like trained weights; the values only have to stay finite and
    clear of denormals (which do slow x86 arithmetic), which N(0, 0.02) weights and
    normalisation weights around 1 guarantee. The values depend only on the seed and the
    tensors' order and sizes, so equal towers inside different wrappers come out equal."""
    import torch

    pool = torch.randn(_POOL_SIZE, generator=torch.Generator().manual_seed(seed)) * std
    norm_types = (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.modules.batchnorm._NormBase)
    norms = {name for name, m in model.named_modules() if isinstance(m, norm_types)}
    offset = 0
    with torch.no_grad():
        for name, tensor in model.state_dict(keep_vars=True).items():
            flat = tensor.data.view(-1)
            for start in range(0, flat.numel(), _POOL_SIZE):
                piece = flat[start:start + _POOL_SIZE]
                at = (offset + start) % (_POOL_SIZE - piece.numel() + 1)
                piece.copy_(pool[at:at + piece.numel()])
            offset += 7919  # each tensor starts elsewhere in the pool
            owner, _, leaf = name.rpartition(".")
            if owner in norms and leaf in ("weight", "running_var"):
                tensor.data.add_(1.0)
    return model


def _fresh_model(build: Any, seed: int, full_size: bool) -> Any:
    """build() with torch's seeded initialisers (tiny), or on the meta device and filled
    cheaply (full size)."""
    import torch

    if not full_size:
        torch.manual_seed(seed)
        return build().eval()
    with torch.device("meta"):
        model = build()
    return materialise_cheaply(model, seed)


def _randomise_norm_stats(module: Any, generator: Any) -> None:
    """Random BatchNorm running stats, so normalisation is really exercised."""
    import torch

    for m in module.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=generator) + 0.5)


# ---------------------------------------------------------------- coherence


def coherence_reference_model(num_classes: int = 3, seed: int = 0,
                              logit_bias: list[float] | None = None) -> Any:
    """FastAI cnn_learner(resnet34) layout: Sequential(body, head). With `logit_bias` the
    head's last BatchNorm outputs ones and the classifier row i is logit_bias[i] / 512, so
    the logits are exactly logit_bias for any image (to test label order)."""
    import torch
    import torchvision
    from torch import nn

    class ConcatPool(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ap, self.mp = nn.AdaptiveAvgPool2d(1), nn.AdaptiveMaxPool2d(1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([self.mp(x), self.ap(x)], 1)

    torch.manual_seed(seed)
    body = nn.Sequential(*list(torchvision.models.resnet34(weights=None).children())[:-2])
    head = nn.Sequential(ConcatPool(), nn.Flatten(), nn.BatchNorm1d(1024), nn.Dropout(0.25),
                         nn.Linear(1024, 512, bias=False), nn.ReLU(inplace=True),
                         nn.BatchNorm1d(512), nn.Dropout(0.5),
                         nn.Linear(512, num_classes, bias=False))
    model = nn.Sequential(body, head).eval()
    with torch.no_grad():
        _randomise_norm_stats(model, torch.Generator().manual_seed(seed))
        if logit_bias is not None:
            bn = head[6]
            bn.weight.zero_()
            bn.bias.fill_(1.0)
            head[8].weight.copy_(torch.tensor(logit_bias)[:, None].expand(-1, 512) / 512)
    return model


def write_coherence(models_dir: Path, *, prefix: str = "", seed: int = 0,
                    num_classes: int = 3, logit_bias: list[float] | None = None) -> Any:
    """`coherence/coherence_model.safetensors` (full-size ResNet-34: builds in ~1 s).
    Returns the reference model (eval mode)."""
    model = coherence_reference_model(num_classes, seed, logit_bias)
    folder = _folder(models_dir, "coherence")
    _save_safetensors({prefix + k: v for k, v in model.state_dict().items()},
                      folder / "coherence_model.safetensors")
    return model


# ---------------------------------------------------------------- nsfw-vit

_VIT_TO_4X = [
    (r"^vit\.layers\.(\d+)\.attention\.q_proj\.", r"vit.encoder.layer.\1.attention.attention.query."),
    (r"^vit\.layers\.(\d+)\.attention\.k_proj\.", r"vit.encoder.layer.\1.attention.attention.key."),
    (r"^vit\.layers\.(\d+)\.attention\.v_proj\.", r"vit.encoder.layer.\1.attention.attention.value."),
    (r"^vit\.layers\.(\d+)\.attention\.o_proj\.", r"vit.encoder.layer.\1.attention.output.dense."),
    (r"^vit\.layers\.(\d+)\.mlp\.fc1\.", r"vit.encoder.layer.\1.intermediate.dense."),
    (r"^vit\.layers\.(\d+)\.mlp\.fc2\.", r"vit.encoder.layer.\1.output.dense."),
    (r"^vit\.layers\.(\d+)\.", r"vit.encoder.layer.\1."),
]


def vit_key_to_4x(key: str) -> str:
    """transformers 5 ViT names -> the 4.x names in the upstream model.safetensors."""
    for pattern, repl in _VIT_TO_4X:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    return key


VIT_TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 64}


def write_nsfw_vit(models_dir: Path, *, seed: int = 0,
                   id2label: dict[int, str] | None = None, full_size: bool = False) -> Any:
    """ViTForImageClassification in Falconsai's layout: tiny, or ViT-B/16 (transformers'
    ViTConfig defaults are Falconsai's config) with `full_size`. Returns the reference model."""
    from transformers import ViTConfig, ViTForImageClassification

    labels = id2label or {0: "normal", 1: "nsfw"}
    config = ViTConfig(**({} if full_size else VIT_TINY), image_size=224, patch_size=16,
                       id2label={int(k): v for k, v in labels.items()},
                       label2id={v: int(k) for k, v in labels.items()},
                       architectures=["ViTForImageClassification"])
    model = _fresh_model(lambda: ViTForImageClassification(config), seed, full_size)
    folder = _folder(models_dir, "nsfw-vit")
    config.to_json_file(str(folder / "config.json"))
    (folder / "preprocessor_config.json").write_text(json.dumps(VIT_PREPROCESSOR, indent=2))
    state = {vit_key_to_4x(k): v for k, v in model.state_dict().items()}
    assert "vit.encoder.layer.0.attention.attention.query.weight" in state
    _save_safetensors(state, folder / "model.safetensors", copy=not full_size)
    return model


# ---------------------------------------------------------------- CLIP pieces


def _tiny_clip_config(projection_dim: int = 768) -> Any:
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "vocab_size": TOKENIZER_VOCAB_SIZE,
                     "max_position_embeddings": 77, "bos_token_id": BOS_ID,
                     "eos_token_id": EOS_ID, "pad_token_id": EOS_ID},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "image_size": 224, "patch_size": 32},
        projection_dim=projection_dim)


def _full_clip_config(projection_dim: int = 768) -> Any:
    """openai/clip-vit-large-patch14's sizes (the CompVis safety checker's vision tower is
    the same ViT-L/14). The text tower keeps the upstream vocabulary size; its special token
    ids are those of the character-level test tokenizer written beside it."""
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config={"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                     "num_attention_heads": 12, "vocab_size": 49408,
                     "max_position_embeddings": 77, "bos_token_id": BOS_ID,
                     "eos_token_id": EOS_ID, "pad_token_id": EOS_ID, "hidden_act": "quick_gelu"},
        vision_config={"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                       "num_attention_heads": 16, "image_size": 224, "patch_size": 14,
                       "hidden_act": "quick_gelu"},
        projection_dim=projection_dim)


def _clip_config(full_size: bool) -> Any:
    return _full_clip_config() if full_size else _tiny_clip_config()


def tiny_clip_vision_state(seed: int = 0) -> dict[str, Any]:
    """transformers-5 CLIPVisionModel state (keys 'embeddings.…', 'encoder.…')."""
    return clip_vision_state(seed)


def clip_vision_state(seed: int = 0, full_size: bool = False) -> dict[str, Any]:
    """transformers-5 CLIPVisionModel state, tiny or ViT-L/14; equal seeds give equal
    weights (so two analysers' towers can be recognised as one)."""
    import torch
    from transformers import CLIPVisionModel

    vision_config = _clip_config(full_size).vision_config
    if full_size:
        return _fresh_model(lambda: CLIPVisionModel(vision_config), seed, True).state_dict()
    torch.manual_seed(seed)
    vision = CLIPVisionModel(vision_config)
    with torch.no_grad():  # default init leaves LayerNorms at identity; perturb them
        for name, p in vision.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return vision.state_dict()


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable unicode table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


_CHARS = list(_bytes_to_unicode().values())
TOKENIZER_VOCAB_SIZE = 2 * len(_CHARS) + 2
BOS_ID, EOS_ID = 2 * len(_CHARS), 2 * len(_CHARS) + 1


def write_clip_tokenizer(folder: Path) -> None:
    """A character-level CLIP BPE tokenizer (no merges) in openai's file layout."""
    vocab = {c: i for i, c in enumerate(_CHARS)}
    vocab.update({c + "</w>": len(_CHARS) + i for i, c in enumerate(_CHARS)})
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = BOS_ID, EOS_ID
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "model_max_length": 77,
        "do_lower_case": True, "tokenizer_class": "CLIPTokenizer"}), encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}), encoding="utf-8")


# ---------------------------------------------------------------- safety checker


def write_safety_checker(models_dir: Path, *, seed: int = 0, vision_seed: int = 0,
                         fmt: str = "bin", concept_threshold: float = 0.2,
                         special_threshold: float = 0.2, with_position_ids: bool = True,
                         full_size: bool = False) -> dict[str, Any]:
    """CompVis layout: config.json (CLIPConfig), preprocessor_config.json and
    pytorch_model.bin (torch.save zip; or model.safetensors with fmt="safetensors") with the
    4.x keys `vision_model.vision_model.…`; a tiny CLIP tower, or ViT-L/14 with `full_size`.
    Returns the state dict written."""
    import torch

    config = _clip_config(full_size)
    config.architectures = ["StableDiffusionSafetyChecker"]
    g = torch.Generator().manual_seed(seed)
    dim, vision = config.projection_dim, config.vision_config
    state: dict[str, Any] = {"vision_model.vision_model." + k: v
                             for k, v in clip_vision_state(vision_seed, full_size).items()}
    if with_position_ids:  # old checkpoints carry this buffer; loaders must ignore it
        n_pos = (vision.image_size // vision.patch_size) ** 2 + 1
        state["vision_model.vision_model.embeddings.position_ids"] = torch.arange(n_pos)[None]
    state["visual_projection.weight"] = (torch.randn(dim, vision.hidden_size, generator=g)
                                         * 0.2 * (32 / vision.hidden_size) ** 0.5)
    state["concept_embeds"] = torch.randn(17, dim, generator=g)
    state["special_care_embeds"] = torch.randn(3, dim, generator=g)
    state["concept_embeds_weights"] = torch.full((17,), concept_threshold)
    state["special_care_embeds_weights"] = torch.full((3,), special_threshold)
    folder = _folder(models_dir, "safety-checker")
    config.to_json_file(str(folder / "config.json"))
    (folder / "preprocessor_config.json").write_text(json.dumps(CLIP_PREPROCESSOR, indent=2))
    if fmt == "bin":
        torch.save(state, folder / "pytorch_model.bin")
    else:
        _save_safetensors(state, folder / "model.safetensors", copy=not full_size)
    return state


# ---------------------------------------------------------------- aesthetic


def write_aesthetic(models_dir: Path, *, seed: int = 0, vision_seed: int = 0,
                    with_text: bool = True, clip_subdir: str = "clip-vit-large-patch14",
                    full_size: bool = False) -> dict[str, Any]:
    """`aesthetic/sac+logos+ava1-l14-linearMSE.pth` (full-size random MLP, a plain
    state_dict saved with torch.save) and a tiny CLIP (projection_dim 768; ViT-L/14 with
    `full_size`) in `aesthetic/<clip_subdir>/` with openai's file names.
    Returns {"mlp": state, "clip": state}."""
    import torch
    from torch import nn
    from transformers import CLIPModel

    torch.manual_seed(seed)
    mlp = nn.Module()
    mlp.layers = nn.Sequential(nn.Linear(768, 1024), nn.Dropout(0.2), nn.Linear(1024, 128),
                               nn.Dropout(0.2), nn.Linear(128, 64), nn.Dropout(0.1),
                               nn.Linear(64, 16), nn.Linear(16, 1))
    with torch.no_grad():
        mlp.layers[7].bias.fill_(5.0)  # centre scores where real ones live (~5)
    folder = _folder(models_dir, "aesthetic")
    torch.save(mlp.state_dict(), folder / "sac+logos+ava1-l14-linearMSE.pth")

    config = _clip_config(full_size)
    config.architectures = ["CLIPModel"]
    clip = _fresh_model(lambda: CLIPModel(config), seed, full_size)
    if full_size:  # the same values clip_vision_state(vision_seed, True) holds, in place
        fill_cheaply(clip.vision_model, vision_seed)
    else:
        clip.vision_model.load_state_dict(clip_vision_state(vision_seed))
    clip_folder = folder / clip_subdir
    clip_folder.mkdir(parents=True, exist_ok=True)
    config.to_json_file(str(clip_folder / "config.json"))
    (clip_folder / "preprocessor_config.json").write_text(json.dumps(CLIP_PREPROCESSOR, indent=2))
    state = clip.state_dict()
    if not with_text:
        state = {k: v for k, v in state.items() if not k.startswith(("text_", "logit_scale"))}
    _save_safetensors(state, clip_folder / "model.safetensors", copy=not full_size)
    if with_text:
        write_clip_tokenizer(clip_folder)
    return {"mlp": mlp.state_dict(), "clip": state}


# ---------------------------------------------------------------- JTP tagger

JTP_TINY = {"embed_dim": 32, "depth": 2, "num_heads": 2, "mlp_ratio": 2.0}
JTP_TAG_COUNT = 9083  # the PILOT/PILOT2 tags.json
JTP_DIRS = {"PILOT": ("JTP_PILOT", "JTP_PILOT-e4-vit_so400m_patch14_siglip_384.safetensors"),
            "PILOT2": ("JTP_PILOT2", "JTP_PILOT2-e3-vit_so400m_patch14_siglip_384.safetensors")}


def jtp_reference_model(variant: str = "PILOT2", n_tags: int = 12, seed: int = 0,
                        full_size: bool = False) -> Any:
    """timm SigLIP so400m @384 with JTP's head: tiny (JTP_TINY overrides) or full size."""
    import timm
    import torch
    from torch import nn

    class GatedHead(nn.Module):
        def __init__(self, features: int, classes: int):
            super().__init__()
            self.num_classes = classes
            self.linear = nn.Linear(features, classes * 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.linear(x)
            return torch.sigmoid(x[:, :self.num_classes]) * torch.sigmoid(x[:, self.num_classes:])

    def build() -> Any:
        model = timm.create_model("vit_so400m_patch14_siglip_384", pretrained=False,
                                  num_classes=n_tags, **({} if full_size else JTP_TINY))
        if variant == "PILOT2":
            model.head = GatedHead(model.num_features, n_tags)
        return model

    model = _fresh_model(build, seed, full_size)
    with torch.no_grad():  # spread the outputs so thresholds bite both ways
        head = model.head.linear if variant == "PILOT2" else model.head
        head.weight.normal_(0, 2.0)
        head.bias.normal_(0, 2.0)
    return model.eval()


def jtp_tag_names(n_tags: int) -> list[str]:
    base = ["long_hair", "smile", "blue_eyes", "outdoors", "solo", "looking_at_viewer"]
    return [base[i] if i < len(base) else f"tag_{i}" for i in range(n_tags)]


def write_jtp(models_dir: Path, *, variant: str = "PILOT2", n_tags: int | None = None,
              seed: int = 0, full_size: bool = False) -> Any:
    """`tagger-jtp/JTP_PILOT{,2}/<upstream name>.safetensors` + `tags.json` ({tag: index})
    with a tiny SigLIP (timm so400m name, embed_dim 32, depth 2, 2 heads; 12 tags) or, with
    `full_size`, so400m itself with JTP's 9083 tags. Returns the model."""
    n_tags = n_tags or (JTP_TAG_COUNT if full_size else 12)
    model = jtp_reference_model(variant, n_tags, seed, full_size)
    sub, name = JTP_DIRS[variant]
    folder = _folder(models_dir, "tagger-jtp") / sub
    folder.mkdir(parents=True, exist_ok=True)
    _save_safetensors(model.state_dict(), folder / name, copy=not full_size)
    tags = {tag: i for i, tag in enumerate(jtp_tag_names(n_tags))}
    (folder / "tags.json").write_text(json.dumps(tags), encoding="utf-8")
    return model


# ---------------------------------------------------------------- style (VGG19)

# torchvision's VGG19 ("E") feature layout: conv widths, "M" = max pool.
_VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
                 512, 512, 512, 512, "M")
VGG19_FILE = "vgg19-dcbb9e9d.pth"


def vgg19_features_reference(seed: int = 0, up_to: int = 29, full_size: bool = False) -> Any:
    """VGG19's `features` (Conv3x3+ReLU blocks, max pools) up to index `up_to`, built here
    independently of torchvision and initialised as torchvision does (Kaiming normal,
    fan_out, zero bias) so activations keep their scale through the layers."""
    import torch
    from torch import nn

    def build() -> Any:
        layers: list[Any] = []
        channels = 3
        for item in _VGG19_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, int(item), kernel_size=3, padding=1),
                           nn.ReLU(inplace=True)]
                channels = int(item)
        return nn.Sequential(*layers[:up_to + 1])

    if full_size:
        return _fresh_model(build, seed, True)
    torch.manual_seed(seed)
    model = build()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
    return model.eval()


def write_style(models_dir: Path | None = None, *, seed: int = 0, folder: Path | None = None,
                full_size: bool = False) -> Path:
    """`style/vgg19-dcbb9e9d.pth` (or `folder/vgg19-dcbb9e9d.pth`, e.g. a torch hub cache):
    a plain state_dict saved with torch.save, with torchvision's key names and shapes. The
    file holds `features.0`..`features.28` (up to conv5_1, all the analyser reads) and the
    last classifier layer; the two big classifier matrices (~400 MB) are left out. Returns
    the file."""
    import torch

    features = vgg19_features_reference(seed, full_size=full_size)
    state = {f"features.{k}": v.detach().clone() for k, v in features.state_dict().items()}
    g = torch.Generator().manual_seed(seed)
    state["classifier.6.weight"] = torch.randn(1000, 4096, generator=g) * 0.01
    state["classifier.6.bias"] = torch.zeros(1000)
    target = Path(folder) if folder is not None else _folder(Path(models_dir or "."), "style")
    target.mkdir(parents=True, exist_ok=True)
    torch.save(state, target / VGG19_FILE)
    return target / VGG19_FILE


# ---------------------------------------------------------------- everything + images


def write_all(models_dir: Path, *, seed: int = 0, full_size: bool = False) -> Path:
    """Every default analyser's folder (safety checker and aesthetic share one CLIP vision
    tower, as the real ones do). Tiny: ~3 s on 2 cores; full size: ~5 GB of files. The
    opt-in style analyser's VGG19 (68 MB even for tests: its widths are fixed) is written
    by `write_style` where a test needs it."""
    write_coherence(models_dir, seed=seed)
    write_nsfw_vit(models_dir, seed=seed, full_size=full_size)
    write_safety_checker(models_dir, seed=seed, vision_seed=seed, full_size=full_size)
    write_aesthetic(models_dir, seed=seed, vision_seed=seed, full_size=full_size)
    write_jtp(models_dir, seed=seed, full_size=full_size)
    return Path(models_dir)


def photo_like(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    """A smooth, photo-like test image: low-frequency colour fields plus mild grain."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((6, 6, 3)) * 255
    img = Image.fromarray(coarse.astype(np.uint8)).resize((width, height),
                                                          Image.Resampling.BICUBIC)
    arr = np.asarray(img, dtype=np.float32) + rng.normal(0, 6, (height, width, 3))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if mode == "RGBA":
        alpha = np.linspace(0, 255, width, dtype=np.float32)[None, :].repeat(height, 0)
        img.putalpha(Image.fromarray(alpha.astype(np.uint8)))
    elif mode != "RGB":
        img = img.convert(mode)
    return img


def write_images(folder: Path, count: int, size: tuple[int, int] = (320, 256),
                 seed: int = 0) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"img_{i:04d}.png"
        photo_like(*size, seed=seed + i).save(path)
        paths.append(path)
    return paths
