"""Stage 5, training, one module per concern: the environment (``environment``), the loss (``losses``), the
learning-rate schedule (``schedule``), the training order and batches (``batches``), checkpoint files and
:func:`~ddsp_demucs.training.checkpoints.load_model` (``checkpoints``), callbacks (``callbacks``) and the CSV logger
(``logger``), the LightningModule (``module``), whether a run may resume (``resume``), the facade and
:func:`~ddsp_demucs.training.trainer.train_from_config` (``trainer``); what a checkpoint records about its training
(``provenance``) and ``hf://`` checkpoints (``hub``)."""
