"""Fine-tuning (BERT's second stage): tasks, a classification objective on the pretraining loop, predictions."""

from .config import FinetuneConfig
from .predict import Classification, classify, load_classifier
from .tasks import BUILTIN_TASKS, KINDS, Example, Task, load_task
from .trainer import finetune

__all__ = ["BUILTIN_TASKS", "KINDS", "Classification", "Example", "FinetuneConfig", "Task", "classify", "finetune",
           "load_classifier", "load_task"]
