"""Typed configuration dataclasses and their YAML loader.

Every model and training run is described by one of these dataclasses; `config/*.yaml` holds the shipped values
and `load_config(cls, path, overrides)` builds the dataclass, rejecting unknown keys and wrong types with a message
that names the file and the key. Overrides use dotted keys, e.g. ``["model.depth=4", "optim.lr=3e-4"]``.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file or override is malformed; the message names the source and the key."""


class GateMode(str, Enum):
    """How the top-1 gate value multiplies the selected expert's output (see `tramoe_ros.models.moe`)."""

    STRAIGHT_THROUGH = "straight_through"  # forward value 1 (paper eq. 1), gradient of the softmax probability
    SOFTMAX_PROB = "softmax_prob"  # Switch Transformer: the selected expert's full-softmax probability
    RENORMALIZED = "renormalized"  # reference code: p_1 / (p_1 + p_2), renormalised against the runner-up


class MaskMode(str, Enum):
    """Policy conditioning on predicted tracks (paper Tab. 3)."""

    NONE = "none"  # ATM: RGB only
    DRAWN = "drawn"  # hand-drawn mask: first half of each trajectory 128, second half 255
    ADAPTIVE = "adaptive"  # the paper's: a learnable value per trajectory time step


class Precision(str, Enum):
    """Arithmetic of training and validation forward passes (the optimiser and weights stay float32)."""

    AUTO = "auto"  # bf16 autocast on a GPU that supports it (as the reference), float32 otherwise
    FP32 = "fp32"
    BF16 = "bf16"  # bf16 autocast; on the CPU too when asked for explicitly


@dataclass
class TrackModelConfig:
    """Tra-MoE track transformer (paper Sec. 3.2; sizes from ATM)."""

    image_size: int = 128
    image_patch: int = 16
    num_points: int = 32  # K query points per sample
    horizon: int = 16  # H predicted steps, including the query step
    track_patch: int = 4  # temporal patch: H / track_patch tokens per point
    dim: int = 384
    depth: int = 8
    heads: int = 8
    kv_heads: int = 1  # 1 = multi-query attention, as ATM
    mlp_ratio: int = 4
    dropout: float = 0.2
    language_dim: int = 384  # width of the instruction embedding (all-MiniLM-L6-v2)
    image_mask_ratio: float = 0.5  # MAE-style patch masking during training
    # MoE: 0-based indices of the blocks whose FFN is a sparse MoE. [0, 4, 7] = the paper's 1st, 5th and 8th
    # layers (LIBERO); [] = the dense Tra-baseline; [0, 1, 4, 6, 7] = the paper's setting with RLBench data.
    moe_layers: list[int] = field(default_factory=lambda: [0, 4, 7])
    num_experts: int = 4
    top_k: int = 1
    gate_mode: GateMode = GateMode.STRAIGHT_THROUGH
    gating_noise: float = 0.0  # std of Gaussian noise on router logits in training (paper Tab. 1c: off)
    # The track head's output is each point's displacement from its query point (added back in `forward`), so
    # an untrained model says "nothing moves"; false: absolute positions, as ATM (and checkpoints made before).
    predict_displacement: bool = False
    # Add to each track token the image patches' 2-D sincos position embedding taken at its query point, so
    # attention finds the patches under and around the point from the first step; false: the query reaches the
    # tokens only through the linear track embedding, as ATM (and checkpoints made before).
    query_pos_embed: bool = False

    def __post_init__(self) -> None:
        if self.image_size % self.image_patch:
            raise ConfigError(f"image_size {self.image_size} is not a multiple of image_patch {self.image_patch}")
        if self.horizon % self.track_patch:
            raise ConfigError(f"horizon {self.horizon} is not a multiple of track_patch {self.track_patch}")
        if self.dim % self.heads or self.heads % self.kv_heads:
            raise ConfigError(f"dim {self.dim}, heads {self.heads}, kv_heads {self.kv_heads} do not divide")
        bad = [i for i in self.moe_layers if not 0 <= i < self.depth]
        if bad:
            raise ConfigError(f"moe_layers {bad} are outside 0..{self.depth - 1}")
        if not 1 <= self.top_k <= self.num_experts:
            raise ConfigError(f"top_k {self.top_k} must be in 1..num_experts ({self.num_experts})")


@dataclass
class TrackLossConfig:
    """Weights of paper eq. 9 plus ATM's image-reconstruction term."""

    track: float = 10.0  # λ_tra (ATM's weight)
    image: float = 1.0  # λ_img, MAE patch reconstruction
    load_balance: float = 0.0  # λ_lo-ba (paper Tab. 1b: off)
    z: float = 1e-4  # λ_z (paper Tab. 1a)


@dataclass
class PolicyConfig:
    """Trajectory-guided ViLT policy (ATM) with adaptive policy conditioning (paper Sec. 3.2)."""

    views: list[str] = field(default_factory=lambda: ["agentview", "eye_in_hand"])
    image_size: int = 128
    frame_stack: int = 10
    action_dim: int = 7
    proprio_dims: dict[str, int] = field(default_factory=lambda: {"joint_states": 7, "gripper_states": 2})
    num_points: int = 32  # grid queries per view (sample_double_grid(4))
    horizon: int = 16
    mask_mode: MaskMode = MaskMode.ADAPTIVE
    # Channels of the image stem's first conv (7x7, stride 2, at full resolution): ATM's 64. At 128 px its forward
    # and backward take ~19 ms per frame on one CPU thread with 64 channels, ~2.5 ms with 16 (the CPU models).
    stem_channels: int = 64
    dim: int = 128  # spatial transformer width
    spatial_depth: int = 7
    spatial_heads: int = 8
    spatial_dim_head: int = 120
    spatial_mlp_dim: int = 256
    temporal_dim: int = 64
    temporal_depth: int = 4
    temporal_heads: int = 6
    temporal_dim_head: int = 64
    head_hidden: list[int] = field(default_factory=lambda: [1024, 1024])
    dropout: float = 0.1  # FFN and action-head dropout
    # Dropout on the attention weights (ATM: as `dropout`). 0 lets torch's CPU SDPA use its fused flash kernel,
    # which has no dropout: with it, the CPU policy's training step falls back to the materialised softmax path
    # and takes ~2x as long (3.3 vs 1.7 s per batch of 16 at config/train_policy_cpu.yaml's size).
    attention_dropout: float = 0.1
    # Actions predicted per step: the step's own and the next action_chunk - 1 (an action chunk, as ACT). Every
    # observation still gets a fresh first action; the rest are what a real-time executor applies at the steps
    # whose own action comes late (docs/ros-graph.md). 1: the paper's policy.
    action_chunk: int = 1
    # Width of the instruction embedding the policy is conditioned on (the training config's language_encoder;
    # MiniLM: 384): ATM's language tokens, which a multi-task policy needs to tell its tasks apart in one scene.
    # 0: no instruction input (a one-task policy; the tracks alone carry the task).
    instruction_dim: int = 0

    def __post_init__(self) -> None:
        if not self.views:
            raise ConfigError("policy needs at least one view")
        if self.instruction_dim < 0:
            raise ConfigError(f"instruction_dim must be >= 0 (0 = no instruction input), got {self.instruction_dim}")
        if self.action_chunk < 1:
            raise ConfigError(f"action_chunk must be at least 1, got {self.action_chunk}")
        if self.action_dim < 1:
            raise ConfigError(f"action_dim must be positive, got {self.action_dim}")
        if self.stem_channels < 1:
            raise ConfigError(f"stem_channels must be positive, got {self.stem_channels}")


@dataclass
class DomainSource:
    """One dataset source: hdf5 files matched by `path` (a folder or glob) and their domain tag."""

    path: str
    domain: str
    weight: float = 1.0  # relative sampling ratio among domains


@dataclass
class DataConfig:
    sources: list[DomainSource] = field(default_factory=list)
    views: list[str] = field(default_factory=lambda: ["agentview", "eye_in_hand"])
    val_fraction: float = 0.1
    # Domains whose held-out episodes form the validation set; empty = every domain. The paper's question is
    # in-domain quality, so ablations validate on the in-domain data only (the other domains then train in full).
    val_domains: list[str] = field(default_factory=list)
    num_workers: int = 0
    color_jitter: float = 0.3  # brightness/contrast/saturation/hue strength, 0 = off
    random_shift_pad: int = 4  # pixels, 0 = off
    variance_threshold_px2: float = 10.0  # variance filtering: tracks below this are "static"
    # Share of each track sample's points kept for static ones (`sample_track_points`); 0 = moving points first,
    # as the paper, which in LIBERO leaves the model no point that stays put.
    still_point_share: float = 0.0


@dataclass
class OptimConfig:
    """AdamW with linear warm-up and cosine decay (paper Tab. 6/7)."""

    lr: float = 1e-4
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_epochs: float = 5.0
    min_lr_ratio: float = 0.0
    clip_grad: float = 10.0


@dataclass
class TrainConfig:
    """Run settings shared by both trainers."""

    epochs: int = 300
    batch_size: int = 2048  # global batch: samples per optimiser step summed over all processes (torchrun ranks)
    # Upper bound on the samples one process runs through forward/backward at once; 0 = its whole share of the
    # global batch (batch_size / world size). Smaller shares are split into equal micro-batches whose gradients
    # are accumulated, so the optimiser step is the same (see tramoe_ros.training.distributed.plan_batches).
    micro_batch_size: int = 0
    precision: Precision = Precision.AUTO
    seed: int = 0
    device: str = "auto"  # auto = cuda when present, else cpu; under torchrun each process takes cuda:LOCAL_RANK
    out_dir: str = "runs/tracks"
    val_every: int = 1  # epochs
    save_every: int = 10  # epochs
    max_steps_per_epoch: int = 0  # 0 = full epoch; >0 caps steps (smoke runs)
    resume: str = ""  # a run directory or checkpoint to resume from (written with any number of processes)
    # A checkpoint whose weights start a new run with a fresh optimiser and schedule (fine-tuning, e.g. a DAgger
    # round on aggregated data); the architecture must match. A resumed run takes its own weights instead.
    init_weights: str = ""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.micro_batch_size < 0:
            raise ConfigError(f"micro_batch_size must be >= 0 (0 = no accumulation), got {self.micro_batch_size}")


@dataclass
class TrackTrainConfig:
    model: TrackModelConfig = field(default_factory=TrackModelConfig)
    loss: TrackLossConfig = field(default_factory=TrackLossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    language_encoder: str = "minilm"  # see tramoe_ros.models.language.ENCODERS


@dataclass
class PolicyTrainConfig:
    model: PolicyConfig = field(default_factory=PolicyConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=5e-4, weight_decay=1e-4, warmup_epochs=0.0, clip_grad=100.0)
    )
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=120, batch_size=384, out_dir="runs/policy")
    )
    track_model: str = "models/track_moe.safetensors"  # frozen track model checkpoint
    # Its predictions on the training episodes are kept here per (model, episode) and reused; "" = not kept.
    track_cache_dir: str = "runs/track_cache"
    language_encoder: str = "minilm"


# ---------------------------------------------------------------------------------------------------------------
# Loading


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {type(value).__name__}")
        return _build(tp, value, where)
    if isinstance(tp, type) and issubclass(tp, Enum):
        try:
            return tp(value)
        except ValueError:
            allowed = ", ".join(m.value for m in tp)
            raise ConfigError(f"{where}: {value!r} is not one of {allowed}") from None
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        out = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        kt, vt = typing.get_args(tp)
        return {_convert(kt, k, where): _convert(vt, v, f"{where}.{k}") for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in typing.get_args(tp):
            if arg is type(None) and value is None:
                return None
            try:
                return _convert(arg, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError("; ".join(errors))
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _build(cls: type[T], data: dict, where: str) -> T:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} for {cls.__name__}; known: {sorted(names)}")
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{where or cls.__name__}: {e}") from None


def _set_dotted(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key}: {p} is not a mapping")
    node[parts[-1]] = value


def config_from_dict(cls: type[T], data: dict | None, where: str = "") -> T:
    """Build `cls` from a plain mapping (missing keys take the dataclass defaults)."""
    return _build(cls, data or {}, where)


def config_to_dict(cfg: Any) -> dict:
    """Plain, YAML-safe mapping of a config dataclass (enums as their values, tuples as lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, Enum):
            return v.value
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {k: plain(v) for k, v in dataclasses.asdict(cfg).items()}


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Load `cls` from a YAML file, then apply ``key.sub=value`` overrides (values parsed as YAML)."""
    data: dict = {}
    where = ""
    if path is not None:
        path = Path(path)
        where = str(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value")
        key, raw = item.split("=", 1)
        _set_dotted(data, key.strip(), yaml.safe_load(raw))
    return _build(cls, data, where)
