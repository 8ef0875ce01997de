"""Evaluation: a registry of metrics (plain named functions returning dicts) and one module per metric family.

- `registry`: `register_metric`, `compute_metrics` and `format_table`, the one table formatter of
  evaluation results; image, restoration and clip metrics all register here, each under its task.
- `pixel`: PSNR and SSIM (Wang et al. 2004) in torch, shared by restoration, clips and the trainers.
- `classifier`: the small per-dataset reference CNNs (features for fd / pr, labels for class_acc) and
  the training recipe shared with CAS.
- `reference`: the reference network of any dataset: shipped (MNIST, Fashion-MNIST) or trained on first use
  and cached (a classifier for labelled data, a SimCLR encoder for unlabelled folders).
- `fd`: Fréchet distance in reference-network features (Heusel et al. 2017) with a real-vs-real floor.
- `kid`: kernel distance, the unbiased MMD² with a cubic kernel (Bińkowski et al. 2018), with its floor.
- `pr`: improved precision and recall (Kynkäänniemi et al. 2019, k = 3).
- `class_acc`: reference-classifier accuracy on conditional samples.
- `cas`: Classification Accuracy Score (Ravuri & Vinyals 2019).
- `nn1`: the DCGAN paper's 1-nearest-neighbour test on raw pixels (Radford et al. 2015, §8.1).
- `cache`: real-data statistics cached under ``$GANIMATE_CACHE/stats``; a folder's two halves.
- `inception`: `--fid inception`, the standard Inception FID / KID through torch-fidelity (optional).
- `evaluate`: `ganimate evaluate RUN` (`EvaluateConfig`, `run_evaluate`), the image metrics (`METRICS`)
  and `quick_eval` for training's periodic evaluation.
"""

from ganimate.metrics.classifier import load_reference
from ganimate.metrics.evaluate import METRICS, EvaluateConfig, quick_eval, run_evaluate
from ganimate.metrics.registry import Row, compute_metrics, format_table, metric_rows, metrics_for, register_metric

__all__ = ["METRICS", "EvaluateConfig", "Row", "compute_metrics", "format_table", "load_reference", "metric_rows",
           "metrics_for", "quick_eval", "register_metric", "run_evaluate"]
