"""Evaluation of trained generators: one module per metric family, each a plain function returning a dict.

- `classifier`: the small per-dataset reference CNNs (features for fd / pr, labels for class_acc) and
  the training recipe shared with CAS.
- `fd`: Fréchet distance in reference-classifier features (Heusel et al. 2017) with a real-vs-real floor.
- `pr`: improved precision and recall (Kynkäänniemi et al. 2019, k = 3).
- `class_acc`: reference-classifier accuracy on conditional samples.
- `cas`: Classification Accuracy Score (Ravuri & Vinyals 2019).
- `nn1`: the DCGAN paper's 1-nearest-neighbour test on raw pixels (Radford et al. 2015, §8.1).
- `cache`: real-data statistics cached under ``$GANIMATE_CACHE/stats``.
- `evaluate`: `ganimate evaluate RUN` (`EvaluateConfig`, `run_evaluate`), the `METRICS` registry, and
  `quick_eval` for training's periodic evaluation.
"""

from ganimate.metrics.classifier import load_reference
from ganimate.metrics.evaluate import METRICS, EvaluateConfig, quick_eval, run_evaluate

__all__ = ["METRICS", "EvaluateConfig", "load_reference", "quick_eval", "run_evaluate"]
