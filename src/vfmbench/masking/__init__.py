"""SAM-G masking (paper 002 §4): segmenters (`SEGMENTERS`), references, point features,
correspondence prompts, refinement, PerSAM, the ``samg`` observation wrapper and mask quality.
Importing the package imports neither torch nor transformers; see docs/masking.md."""
