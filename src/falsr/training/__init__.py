"""Training a network (``train.py``, and every search candidate).

- :mod:`falsr.training.curves`       learning curves (training loss windows, held-out PSNR points) in metrics.json
- :mod:`falsr.training.data`         HR patch sampling, LR by the protocol's bicubic, held-out and benchmark
  validation sets
- :mod:`falsr.training.module`       the LightningModule (L1 loss, validation PSNR/SSIM, costs) and the schedules
- :mod:`falsr.training.train`        the task: compose, train, validate, ``metrics.json``; a failure as a result
- :mod:`falsr.training.wandb_utils`  W&B run identity and config (search groups, decomposed genome)
"""
