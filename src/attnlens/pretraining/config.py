"""Model sizes and the training configuration of a run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..errors import AttnlensError

# name -> (layers, heads, hidden, intermediate, max positions, default seq len, batch, lr, dropout)
SIZES: dict[str, dict] = {
    # measured on a 2-core CPU: learns previous/next-token heads in ~10-15 minutes
    "tiny": dict(layers=2, heads=4, hidden=128, intermediate=512, max_positions=64,
                 seq_len=64, batch_size=64, lr=1e-3, dropout=0.0),
    "mini": dict(layers=4, heads=4, hidden=256, intermediate=1024, max_positions=128,
                 seq_len=128, batch_size=64, lr=5e-4, dropout=0.1),
    "small": dict(layers=4, heads=8, hidden=512, intermediate=2048, max_positions=512,
                  seq_len=128, batch_size=128, lr=3e-4, dropout=0.1),
    "base": dict(layers=12, heads=12, hidden=768, intermediate=3072, max_positions=512,
                 seq_len=128, batch_size=256, lr=1e-4, dropout=0.1),
}


@dataclass
class TrainConfig:
    """Everything that determines a run (saved as run.json; `--resume` must match it)."""

    size: str = "tiny"
    steps: int = 1000
    seq_len: int | None = None  # None: the size's default
    batch_size: int | None = None  # global batch (split across torchrun processes)
    lr: float | None = None
    warmup_steps: int | None = None  # None: 2% of steps
    decay_fraction: float = 0.3  # lr flat after warmup, then linear to 0 over this last fraction
    weight_decay: float = 0.01
    adam_eps: float = 1e-8
    clip_norm: float = 1.0
    mask_prob: float = 0.15
    short_seq_prob: float = 0.1
    vocab_size: int = 8000
    seed: int = 0
    eval_every: int = 250
    save_every: int = 500
    eval_pairs: int = 512
    head_score_pairs: int = 64
    objective: str = "mlm-nsp"  # pretraining/objective.py PRETRAINING_OBJECTIVES: mlm-nsp (BERT) or clm (GPT-2)

    def __post_init__(self):
        from .objective import PRETRAINING_OBJECTIVES  # noqa: PLC0415  (objective.py imports this module)

        if self.objective not in PRETRAINING_OBJECTIVES:
            raise AttnlensError(f"unknown objective {self.objective!r}: choose one of "
                                f"{', '.join(PRETRAINING_OBJECTIVES)}")
        if self.size not in SIZES:
            raise AttnlensError(f"unknown size {self.size!r}: choose one of {', '.join(SIZES)}")
        preset = SIZES[self.size]
        self.seq_len = int(self.seq_len or preset["seq_len"])
        self.batch_size = int(self.batch_size or preset["batch_size"])
        self.lr = float(self.lr or preset["lr"])
        if self.warmup_steps is None:
            self.warmup_steps = max(1, self.steps // 50)
        if self.steps < 1:
            raise AttnlensError(f"--steps must be at least 1, got {self.steps}")
        if self.batch_size < 1:
            raise AttnlensError(f"batch size must be at least 1, got {self.batch_size}")
        if self.seq_len > preset["max_positions"]:
            raise AttnlensError(
                f"sequence length {self.seq_len} is above the {preset['max_positions']} position embeddings "
                f"of size {self.size!r}")
        if self.seq_len < 8:
            raise AttnlensError(f"sequence length {self.seq_len} is too short (need at least 8)")
        if not 0 < self.mask_prob < 1:
            raise AttnlensError(f"mask probability must be in (0, 1), got {self.mask_prob}")
        if self.eval_every < 1 or self.save_every < 1:
            raise AttnlensError("eval/save intervals must be at least 1 step")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def lr_factor(self, step: int) -> float:
        """Multiplier of the peak lr at optimizer step `step` (0-based): warmup, flat, linear decay."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        decay_start = int(self.steps * (1 - self.decay_fraction))
        if step < decay_start:
            return 1.0
        return max(0.0, (self.steps - step) / max(1, self.steps - decay_start))


def bert_config(size: str, vocab_size: int, pad_token_id: int = 0):
    """A transformers BertConfig for one of SIZES."""
    from transformers import BertConfig  # noqa: PLC0415  (heavy: imported on first use)

    p = SIZES[size]
    return BertConfig(
        vocab_size=vocab_size, hidden_size=p["hidden"], num_hidden_layers=p["layers"],
        num_attention_heads=p["heads"], intermediate_size=p["intermediate"],
        max_position_embeddings=p["max_positions"], type_vocab_size=2, pad_token_id=pad_token_id,
        hidden_dropout_prob=p["dropout"], attention_probs_dropout_prob=p["dropout"],
        architectures=["BertForPreTraining"],
    )


def gpt2_config(size: str, vocab_size: int, pad_token_id: int = 0, bos_token_id: int | None = None,
                eos_token_id: int | None = None):
    """A transformers GPT2Config for one of SIZES: the decoder beside bert_config's encoder (same widths,
    depth, positions, dropout and GELU; only the causal mask, pre-LayerNorm and the LM head differ)."""
    from transformers import GPT2Config  # noqa: PLC0415  (heavy: imported on first use)

    p = SIZES[size]
    return GPT2Config(
        vocab_size=vocab_size, n_embd=p["hidden"], n_layer=p["layers"], n_head=p["heads"],
        n_inner=p["intermediate"], n_positions=p["max_positions"], activation_function="gelu",
        resid_pdrop=p["dropout"], embd_pdrop=p["dropout"], attn_pdrop=p["dropout"], pad_token_id=pad_token_id,
        bos_token_id=bos_token_id, eos_token_id=eos_token_id, architectures=["GPT2LMHeadModel"],
    )
