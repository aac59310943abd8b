"""Pretraining BERT from scratch (masked LM + next sentence prediction) and predicting with its heads."""

from .config import SIZES, TrainConfig
from .predict import MaskPrediction, fill_mask, load_pretrained, next_sentence_probability, shipped_checkpoint
from .trainer import pretrain

__all__ = ["SIZES", "TrainConfig", "MaskPrediction", "fill_mask", "load_pretrained", "next_sentence_probability",
           "shipped_checkpoint", "pretrain"]
