"""Random shift and random crop: the exact images their definitions give."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vfmbench.encoders.augment import RandomCrop, RandomShift


def _reference_shift(x: torch.Tensor, pad: int, top: torch.Tensor, left: torch.Tensor) -> torch.Tensor:
    """DrQ's definition: pad by replicating the borders, crop back at (top, left)."""
    padded = F.pad(x.permute(0, 3, 1, 2).float(), (pad,) * 4, mode="replicate").permute(0, 2, 3, 1)
    h, w = x.shape[1:3]
    return torch.stack([padded[i, t:t + h, l:l + w] for i, (t, l) in enumerate(zip(top.tolist(), left.tolist()))]
                       ).to(torch.uint8)


def test_random_shift_is_a_crop_of_the_replicate_padded_frame():
    x = torch.randint(0, 256, (64, 12, 10, 9), dtype=torch.uint8)  # 9 channels: a stack of 3 frames
    channels_first = x.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1)  # as the replay buffer hands out
    for pad, x in ((1, x), (4, x), (3, channels_first)):
        torch.manual_seed(3)
        out = RandomShift(pad).train()(x)
        torch.manual_seed(3)  # the same draws, in the same order
        top, left = torch.randint(0, 2 * pad + 1, (64,)), torch.randint(0, 2 * pad + 1, (64,))
        assert out.dtype == torch.uint8 and out.shape == x.shape
        assert torch.equal(out, _reference_shift(x, pad, top, left))
        assert len(set(zip(top.tolist(), left.tolist()))) >= min(20, (2 * pad + 1) ** 2)  # offsets vary per image
    assert RandomShift(4).eval()(x) is x


def test_random_crop_is_random_in_training_and_central_in_evaluation():
    x = torch.arange(2 * 8 * 8 * 3, dtype=torch.int64).reshape(2, 8, 8, 3).to(torch.uint8)
    crop = RandomCrop(6)
    assert torch.equal(crop.eval()(x), x[:, 1:7, 1:7])
    torch.manual_seed(0)
    out = crop.train()(x)
    torch.manual_seed(0)
    top, left = torch.randint(0, 3, (2,)), torch.randint(0, 3, (2,))
    for i in range(2):
        assert torch.equal(out[i], x[i, top[i]:top[i] + 6, left[i]:left[i] + 6])
