"""SAM-G masking, slow and GPU tests: (d) a BC policy trained through the oracle masking wrapper
keeps its success under video_hard where the unmasked one drops (``-m slow``; fetch_reach: at a
CPU budget e2e_cnn reaches only 0.05 clean success on fetch_push, too little to show a drop); full-size SAM
ViT-B against segment-anything on a GPU (``-m gpu``)."""

from __future__ import annotations

import pytest
import torch

from test_masking import official_decode, segment_anything_modeling


@pytest.mark.slow
def test_oracle_masking_keeps_success_under_video_hard(tmp_path):
    from vfmbench.experiments.demo import demo_config_from, run_demo

    cfg = demo_config_from({
        "task": "fetch_reach", "encoders": ["e2e_cnn"], "encoder_options": {}, "include_installed": False,
        "masks": ["none", "oracle"], "shifts": ["video_hard"], "episodes": 60, "trainable_steps": 1500,
        "eval_episodes": 20, "seeds": [0]})
    doc = run_demo(cfg, tmp_path, progress=False, log=lambda *a: None)
    by_label = {r.encoder_label: r for r in doc.records}
    masked = by_label["e2e_cnn + mask oracle"]
    shifted = {label: r.robustness[-1].success_rate for label, r in by_label.items()}
    assert masked.success_rate >= 0.5
    assert shifted["e2e_cnn + mask oracle"] >= masked.success_rate - 0.2
    assert shifted["e2e_cnn"] < shifted["e2e_cnn + mask oracle"] - 0.2


@pytest.mark.gpu
def test_full_size_sam_vit_b_matches_segment_anything_on_gpu(tmp_path):
    """segment-anything's ViT-B with its own initialisation, written as the official checkpoint and
    loaded whole; embeddings and every prompt kind decoded on the GPU in fp32."""
    from vfmbench.masking.sam_model import build_promptable_sam
    from vfmbench.weights import WeightsLocation, WeightsSpec

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    segment_anything_modeling()
    from segment_anything.build_sam import build_sam_vit_b

    torch.manual_seed(0)
    sam = build_sam_vit_b().eval().cuda()
    path = tmp_path / "sam_vit_b.pth"
    torch.save(sam.state_dict(), path)
    spec = WeightsSpec("sam_vit_b", "file:///nowhere", "sam.pth", None, "Apache-2.0", "segment_anything")
    ours = build_promptable_sam("vit_b", WeightsLocation(spec, path, "t")).cuda()
    frames = torch.randint(0, 256, (2, 84, 84, 3), dtype=torch.uint8, device="cuda")
    x = torch.nn.functional.interpolate(frames.permute(0, 3, 1, 2).float(), (1024, 1024), mode="bilinear",
                                        antialias=True, align_corners=False)
    with torch.no_grad():
        ref = sam.image_encoder(sam.preprocess(x))
    emb = ours.embed(frames)
    assert ((emb - ref).norm() / ref.norm()).item() < 1e-3
    pts = torch.tensor([[[20.0, 30], [60, 50], [5, 70]]] * 2, device="cuda")
    lab = torch.tensor([[1, 0, 1]] * 2, device="cuda")
    box = torch.tensor([[10.0, 12, 70, 80]] * 2, device="cuda")
    mask_in = torch.randn(2, 256, 256, device="cuda")
    for kwargs in ({}, {"box": box}, {"box": box, "mask_input": mask_in}):
        lr, iou, up = official_decode(sam, ref, pts, lab, frame=84, **kwargs)
        out = ours.decode(ref, (84, 84), pts, lab, boxes=kwargs.get("box"), mask_input=kwargs.get("mask_input"))
        torch.testing.assert_close(out.low_res, lr, atol=2e-3, rtol=2e-3)
        torch.testing.assert_close(out.scores, iou, atol=2e-3, rtol=2e-3)


@pytest.mark.gpu
def test_compiled_segmenter_matches_the_uncompiled_one_on_gpu():
    """The segmenter option compile (torch.compile of the SAM and DINOv2 image encoders): the same
    embeddings in float32 as without it, and the same masks on real fetch_push frames."""
    from vfmbench.masking.quality import episode_frames
    from vfmbench.masking.segmenters import build_segmenter

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    frames, _ = episode_frames("fetch_push", "none", episodes=1, every=5)
    options = {"pretrained": False, "device": "cuda", "persam_steps": 50, "batch_size": 8}
    plain = build_segmenter("sam_vit_b", options, task="fetch_push")
    compiled = build_segmenter("sam_vit_b", {**options, "compile": True}, task="fetch_push")
    assert compiled.model.sam.model.vision_encoder._compiled_call_impl is not None
    x = torch.from_numpy(frames[:8]).cuda()
    ref = plain.model.sam.embed(x)
    assert ((compiled.model.sam.embed(x) - ref).norm() / ref.norm()).item() < 1e-3
    ref_d = plain.model.dino(x)
    assert ((compiled.model.dino(x) - ref_d).norm() / ref_d.norm()).item() < 1e-3
    a, b = plain.segment(frames[:8]), compiled.segment(frames[:8])
    assert (a == b).mean() > 0.99
