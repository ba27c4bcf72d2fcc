"""Analyses that explain an encoder ranking (paper 000 §6.2, §7.2; paper 001 §III-C, Fig. 5).

One module per analysis; each returns a typed, versioned record (JSON via `to_dict`) and writes a figure:

- `reconstruct`: decoders from cached embeddings back to frames, held-out reconstruction error
- `phid`: persistent-homology intrinsic dimension (PHID0) of embedding trajectories, clean vs shifted
- `vat`: Visual Alignment Testing, the paired one-sided t-test on swapped encoders
- `saliency`: FullGrad saliency of a trained policy's action output
"""
