"""Stage 5, training: the LightningModule, its facade and :func:`~ddsp_demucs.training.trainer.load_model`
(``trainer``), what a checkpoint records about its training (``provenance``) and ``hf://`` checkpoints (``hub``)."""
