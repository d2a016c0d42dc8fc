"""Stage 6, refinement of whole songs with a trained model (``refine``) and the non-learned comb filter baseline
(``comb``)."""
