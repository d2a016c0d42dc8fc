"""Stage 1, the songs: track sources (MUSDB18-HQ, folders of songs, real remixes: ``sources``), the synthetic
multitrack corpus (``synthetic``), the real-singing corpus of ``../shared/data`` (``real_corpus``) and its
augmentations (``augment``)."""
