"""SAM-G masking: parity of SAM's prompt encoder and mask decoder with segment-anything (a),
correspondence and refinement on a feature map built from ground truth (b), PerSAM weights (c),
the oracle wrapper (d, fast part; the training comparison is in test_masking_slow.py), references,
mask quality and the CLI."""

from __future__ import annotations

import functools
import importlib.util
import json
import sys
import types
from dataclasses import replace

import numpy as np
import pytest
import torch

from vfmbench.encoders.sam import SAM_ARCHS
from vfmbench.masking.persam import fit_mixing_weights, mix
from vfmbench.masking.reference import Reference, read_reference, reference_from_task, write_reference
from vfmbench.masking.sam_model import DecoderArch, PromptableSam, build_promptable_sam
from vfmbench.masking.samg import SamG, SamGOptions, bounding_boxes, grid_mask
from vfmbench.utils.errors import ConfigError, WeightsError
from vfmbench.weights import WeightsLocation, WeightsSpec

SPEC = WeightsSpec("sam_vit_b", "file:///nowhere", "sam.pth", None, "Apache-2.0", "segment_anything")


# ------------------------------------------------------------------------------ (a) parity


def segment_anything_modeling():
    """segment-anything's model definitions (its package __init__ imports torchvision for the
    predictor; the modeling modules need torch only, so the package is entered without it)."""
    if "segment_anything" not in sys.modules:
        spec = importlib.util.find_spec("segment_anything")
        assert spec is not None, "the parity reference is missing: pip install 'vfmbench[dev]' (segment-anything==1.0)"
        pkg = types.ModuleType("segment_anything")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["segment_anything"] = pkg
    return importlib.import_module("segment_anything.modeling")


def official_sam(decoder_heads: int = 8):
    """A toy SAM in segment-anything's own modules (the official code path), tiny sizes with the
    official head counts, and weights far from the std-0.02 init: N(0, 0.5) matrices, N(0, 0.2)
    vectors, LayerNorm scales around 1, so attention is peaked and a wrong head count, a swapped
    key or a missing term shows."""
    m = segment_anything_modeling()
    arch = SAM_ARCHS["vit_b"].tiny()
    sam = m.Sam(
        m.ImageEncoderViT(depth=2, embed_dim=48, img_size=64, mlp_ratio=4, num_heads=12, patch_size=16, qkv_bias=True,
                          norm_layer=functools.partial(torch.nn.LayerNorm, eps=1e-6), use_rel_pos=True,
                          global_attn_indexes=arch.global_attn_indexes, window_size=2, out_chans=16),
        m.PromptEncoder(embed_dim=16, image_embedding_size=(4, 4), input_image_size=(64, 64), mask_in_chans=4),
        m.MaskDecoder(num_multimask_outputs=3, transformer=m.TwoWayTransformer(depth=2, embedding_dim=16, mlp_dim=32,
                                                                             num_heads=decoder_heads),
                      transformer_dim=16, iou_head_depth=3, iou_head_hidden_dim=16),
        pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375]).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in sam.named_parameters():
            scale = 0.5 if p.ndim > 1 else 0.2
            base = 1.0 if "norm" in name and name.endswith("weight") else 0.0
            p.copy_(torch.randn(p.shape, generator=g) * scale + base)
    return sam


def official_decode(sam, emb, points, labels, box=None, mask_input=None, frame=40, multimask=True):
    """segment-anything's own prompt encoder + mask decoder, one image at a time (as SamPredictor)."""
    size = sam.image_encoder.img_size
    s = size / frame
    out_lr, out_iou = [], []
    with torch.no_grad():
        for i in range(len(emb)):
            sp, de = sam.prompt_encoder(points=(points[i:i + 1] * s, labels[i:i + 1]),
                                        boxes=None if box is None else box[i:i + 1] * s,
                                        masks=None if mask_input is None else mask_input[i:i + 1, None])
            lr, iou = sam.mask_decoder(image_embeddings=emb[i:i + 1], image_pe=sam.prompt_encoder.get_dense_pe(),
                                       sparse_prompt_embeddings=sp, dense_prompt_embeddings=de,
                                       multimask_output=multimask)
            out_lr.append(lr)
            out_iou.append(iou)
        lr = torch.cat(out_lr)
        return lr, torch.cat(out_iou), sam.postprocess_masks(lr, (size, size), (frame, frame))


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    sam = official_sam()
    path = tmp_path_factory.mktemp("sam") / "sam.pth"
    torch.save(sam.state_dict(), path)
    ours = build_promptable_sam("vit_b", WeightsLocation(SPEC, path, "test"), tiny=True)
    return sam, ours, path


def test_sam_image_encoder_matches_segment_anything(official):
    sam, ours, _ = official
    frames = torch.randint(0, 256, (2, 40, 40, 3), dtype=torch.uint8)
    x = torch.nn.functional.interpolate(frames.permute(0, 3, 1, 2).float(), (64, 64), mode="bilinear",
                                        antialias=True, align_corners=False)
    with torch.no_grad():
        ref = sam.image_encoder(sam.preprocess(x))
    torch.testing.assert_close(ours.embed(frames), ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("prompts", ["points", "negatives", "box", "box_and_mask", "single_mask"])
def test_prompt_encoder_and_mask_decoder_match_segment_anything(official, prompts):
    sam, ours, _ = official
    g = torch.Generator().manual_seed(1)
    emb = torch.randn(3, 16, 4, 4, generator=g)
    points = torch.rand(3, 4, 2, generator=g) * 39
    labels = torch.ones(3, 4, dtype=torch.long) if prompts == "points" else torch.tensor([[1, 0, 1, 0], [1, 1, 0, 0], [0, 1, 1, 1]])
    box = torch.tensor([[3.0, 4, 30, 33], [0, 0, 39, 39], [10, 2, 20, 12]]) if "box" in prompts else None
    mask_input = torch.randn(3, 16, 16, generator=g) * 4 if prompts == "box_and_mask" else None
    multimask = prompts != "single_mask"
    lr, iou, up = official_decode(sam, emb, points, labels, box, mask_input, multimask=multimask)
    out = ours.decode(emb, (40, 40), points, labels, boxes=box, mask_input=mask_input, multimask=multimask)
    assert out.low_res.shape == lr.shape and out.logits.shape == up.shape == (3, 3 if multimask else 1, 40, 40)
    torch.testing.assert_close(out.low_res, lr, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.scores, iou, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.logits, up, atol=1e-4, rtol=1e-4)
    assert lr.std() > 1e-2  # not a degenerate (constant) output


def test_peaked_weights_expose_a_wrong_decoder_head_count(tmp_path):
    """The same weights decoded with 4 heads instead of segment-anything's 8: a parity test with
    these weights fails by far (so the head count is really tested above)."""
    path = tmp_path / "sam.pth"
    torch.save(official_sam().state_dict(), path)
    arch = replace(SAM_ARCHS["vit_b"].tiny(), out_channels=16)
    right = PromptableSam(arch, DecoderArch().tiny(), weights=WeightsLocation(SPEC, path, "t"))
    wrong = PromptableSam(arch, replace(DecoderArch().tiny(), num_heads=4), weights=WeightsLocation(SPEC, path, "t"))
    emb = torch.randn(2, 16, 4, 4, generator=torch.Generator().manual_seed(2))
    pts, lab = torch.tensor([[[5.0, 6], [30, 20]]] * 2), torch.tensor([[1, 0]] * 2)
    a, b = right.decode(emb, (40, 40), pts, lab).low_res, wrong.decode(emb, (40, 40), pts, lab).low_res
    assert ((a - b).norm() / a.norm()).item() > 0.1


def test_an_image_encoder_alone_is_refused_naming_the_layout(tmp_path, official):
    sam, _, _ = official
    path = tmp_path / "encoder_only.pth"
    torch.save({k: v for k, v in sam.state_dict().items() if k.startswith("image_encoder.")}, path)
    with pytest.raises(WeightsError, match="whole segment-anything checkpoint"):
        build_promptable_sam("vit_b", WeightsLocation(SPEC, path, "t"), tiny=True)


# ------------------------------------------------------------------ (b) correspondence and refinement


class TruthFeatures(SamG):
    """SAM-G whose feature model is a deterministic map built from ground-truth segmentation: a
    grid cell of object k holds the unit vector e_k, background e_0 (all frames, one grid). The
    prompt logic, similarity maps, refinement and SAM decoding are the real ones."""

    truth: np.ndarray  # [B, K, H, W] object masks of the frames being segmented

    def features(self, frames):
        masks = torch.as_tensor(self.truth)
        g = self.sam.grid
        cells = grid_mask(masks, g)  # [B, K, g, g], the rule the type-1 features use
        feat = torch.zeros(len(masks), self.sam.decoder_arch.hidden_size, g, g)
        feat[:, 0] = 1.0
        for k in range(masks.shape[1]):
            feat[:, 0][cells[:, k]] = 0.0
            feat[:, k + 1][cells[:, k]] = 1.0
        return feat, None


@pytest.fixture(scope="module")
def fetch_frames():
    """fetch_push frames (clean and video_hard) with their object masks, and a reference."""
    from vfmbench.tasks import make_task

    ref = reference_from_task("fetch_push", seed=0)
    frames, truth = [], []
    for shift in ("none", "video_hard"):
        with make_task("fetch_push", shift=shift) as env:
            for seed in (1000, 1001, 1002):
                frames.append(env.reset(seed)["pixels"])
                truth.append(np.stack([env.mask([n]) for n in ref.names]))
    return ref, np.stack(frames), np.stack(truth)


def truth_samg(ref: Reference, refine: bool = True) -> TruthFeatures:
    # SAM grid 42 on the 84-pixel frames (2 x 2 pixels a cell); random decoder weights
    arch = replace(SAM_ARCHS["vit_b"].tiny(), image_size=672, out_channels=16)
    sam = PromptableSam(arch, DecoderArch().tiny(), seed=3)
    TruthFeatures.truth = ref.masks[None]
    model = TruthFeatures(sam, None, ref, SamGOptions(dino=False, refine=refine, persam=False))
    return model


def _near(mask: np.ndarray, xy, radius: int = 1) -> bool:
    x, y = int(xy[0]), int(xy[1])
    return bool(mask[max(0, y - radius):y + radius + 1, max(0, x - radius):x + radius + 1].any())


def test_prompts_land_on_their_objects_and_negatives_off_them(fetch_frames):
    ref, frames, truth = fetch_frames
    model = truth_samg(ref)
    model.truth = truth
    seg = model.segment(torch.from_numpy(frames), trace=True)
    k = len(ref.names)
    p = ref.points.shape[1]
    first = seg.rounds[0]
    assert first.points.shape[1] == 2 + k + k * p  # union pos + neg, one per object, one per extra point
    checked = 0
    for b in range(len(frames)):
        union = truth[b].any(0)
        pts = first.points[b].numpy()
        assert first.labels[b].tolist() == [1, 0] + [1] * (k + k * p)
        assert _near(union, pts[0]), "the union's type-1 positive is on a task-relevant object"
        assert not _near(union, pts[1], 0), "the union's type-1 negative is off every object"
        for obj in range(k):
            if truth[b, obj].sum() < 8:  # hidden in this frame
                continue
            assert _near(truth[b, obj], pts[2 + obj]), f"type-1 positive of {ref.names[obj]}"
            for j in range(p):
                assert _near(truth[b, obj], pts[2 + k + obj * p + j]), f"type-2 positive of {ref.names[obj]}"
            checked += 1
        # refinement: each round adds the least-similar point of the union's map inside the last mask's box
        for r in (1, 2):
            box = bounding_boxes(seg.round_masks[r - 1][b:b + 1])[0]
            assert torch.equal(seg.rounds[r].box[b], box)
            neg = seg.rounds[r].points[b, -1]
            assert seg.rounds[r].labels[b, -1] == 0 and seg.rounds[r].points.shape[1] == first.points.shape[1] + r
            x0, y0, x1, y1 = box.tolist()
            assert x0 <= neg[0] <= x1 and y0 <= neg[1] <= y1
            inside = seg.sim1[b, 0, y0:y1 + 1, x0:x1 + 1]
            assert seg.sim1[b, 0, neg[1], neg[0]] == inside.min()
    assert checked >= 10


def test_batched_segmentation_equals_the_frame_by_frame_loop(fetch_frames):
    ref, frames, truth = fetch_frames
    model = truth_samg(ref)
    model.truth = truth
    batched = model.segment(torch.from_numpy(frames)).masks
    single = []
    for b in range(len(frames)):
        model.truth = truth[b:b + 1]
        single.append(model.segment(torch.from_numpy(frames[b:b + 1])).masks)
    single = torch.cat(single)
    assert batched.any() and torch.equal(batched, single)


def test_bounding_boxes_and_grid_masks():
    m = torch.zeros(2, 10, 12, dtype=torch.bool)
    m[0, 2:5, 3:9] = True
    assert bounding_boxes(m).tolist() == [[3, 2, 8, 4], [0, 0, 11, 9]]  # empty: the whole frame
    tiny = torch.zeros(1, 84, 84, dtype=torch.bool)
    tiny[0, 40, 40] = True  # smaller than a cell: kept where its area falls
    assert grid_mask(tiny, 4).sum() == 1


# ------------------------------------------------------------------------------ (c) PerSAM


def test_persam_recovers_known_mixing_weights():
    g = torch.Generator().manual_seed(0)
    base = torch.nn.functional.interpolate(torch.randn(4, 3, 8, 8, generator=g), (48, 48), mode="bilinear") * 4
    true = torch.tensor([0.6, 0.3, 0.1])  # the target is the sign of this mixture of the three logit maps
    target = mix(base, true) > 0
    w = fit_mixing_weights(base, target)  # the authors' settings: AdamW lr 1e-3, 1000 steps, from 1/3 each
    assert w.sum().item() == pytest.approx(1.0)
    assert (w - true).abs().max().item() < 0.1, w
    start = torch.full((3,), 1 / 3)
    err_fit = ((mix(base, w) > 0) != target).float().mean()
    err_start = ((mix(base, start) > 0) != target).float().mean()
    assert err_fit < 0.05 and err_start > 0.15


# ---------------------------------------------------------------------------------- references


def test_reference_roundtrip_and_hand_edits(tmp_path, fetch_frames):
    ref = fetch_frames[0]
    assert ref.names == ["object", "gripper", "goal"] and ref.points.shape == (3, 3, 2)
    for k in range(3):  # default extra points lie on their object
        for x, y in ref.points[k]:
            assert ref.masks[k][int(y), int(x)]
    path = write_reference(ref, tmp_path / "push.json")
    back = read_reference(path)
    assert np.array_equal(back.image, ref.image) and np.array_equal(back.masks, ref.masks)
    np.testing.assert_allclose(back.points, ref.points, atol=0.01)
    doc = json.loads(path.read_text())
    doc["objects"][0]["points"] = [[10, 12]]
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="same number of points"):
        read_reference(path)
    doc["objects"][0]["points"] = [[10, 12], [1, 2], [500, 3]]
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="push.json: reference points must lie inside"):
        read_reference(path)
    with pytest.raises(ConfigError, match="no such reference"):
        read_reference(tmp_path / "missing.json")


# ------------------------------------------------------------------ (d) the oracle, the wrapper


def test_oracle_wrapper_masks_like_ground_truth_under_shifts():
    from vfmbench.tasks import make_task

    w = [{"name": "samg", "options": {"segmenter": "oracle"}}]
    with make_task("fetch_push", wrappers=w, shift="video_hard", masks=True) as env:
        obs = env.reset(1000)
        assert np.array_equal(obs["segmentation"], obs["mask"])
        assert (obs["pixels"][~obs["mask"]] == 0).all() and obs["pixels"][obs["mask"]].any()
        step = env.step(np.zeros(env.action_dim, np.float32))
        assert np.array_equal(step.observation["segmentation"], step.observation["mask"])


@pytest.mark.parametrize("wrapper", [{"name": "gt_mask"}, {"name": "samg", "options": {"segmenter": "oracle"}}])
def test_masks_dilate_by_whole_pixels(wrapper):
    """``dilate: k`` keeps every pixel within k (Chebyshev distance) of the ground truth."""
    from scipy.ndimage import distance_transform_cdt

    from vfmbench.tasks import make_task
    from vfmbench.tasks.wrappers import dilate_masks

    one = np.zeros((2, 7, 7), bool)
    one[1, 3, 3] = True
    assert dilate_masks(one, 2)[1].sum() == 25 and not dilate_masks(one, 2)[0].any()
    grown = {**wrapper, "options": {**wrapper.get("options", {}), "dilate": 2}}
    with make_task("dmc_cartpole_swingup", wrappers=[grown], masks=True) as env:
        obs = env.reset(3)
    distance = distance_transform_cdt(~obs["mask"], metric="chessboard")  # pixels to the nearest masked one
    kept = obs["pixels"].any(-1)
    assert kept[distance == 2].mean() > 0.9 and not kept[distance > 2].any()
    with pytest.raises(ConfigError, match="dilate must be 0 or more"):
        make_task("dmc_cartpole_swingup", wrappers=[{**wrapper, "options": {**wrapper.get("options", {}), "dilate": -1}}])


def test_wrapper_options_are_checked():
    from vfmbench.tasks import make_task
    from vfmbench.utils.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="sam_vit_b"):
        make_task("fetch_push", wrappers=[{"name": "samg", "options": {"segmenter": "sam_vit_x"}}])
    with pytest.raises(ConfigError, match="unknown segmenter options"):
        make_task("fetch_push", wrappers=[{"name": "samg", "options": {"options": {"colour": 1}}}])
    from vfmbench.masking.segmenters import SegmenterConfig

    with pytest.raises(ConfigError, match="SAM attention must be one of auto, eager, flex, concat; got 'fast'"):
        SegmenterConfig(attention="fast").validate()


def test_samg_wrapper_segments_with_a_tiny_sam(tmp_path, fetch_frames):
    """The real pipeline through the wrapper: tiny random SAM + DINOv2, PerSAM fitted."""
    from vfmbench.tasks import make_task

    path = write_reference(fetch_frames[0], tmp_path / "ref.json")
    w = [{"name": "samg", "options": {"segmenter": "sam_vit_b", "reference": str(path),
                                      "options": {"pretrained": False, "tiny": True, "persam_steps": 30}}}]
    with make_task("fetch_push", wrappers=w) as env:
        obs = env.reset(1000)
    seg = obs["segmentation"]
    assert seg.dtype == bool and seg.shape == (84, 84)
    assert (obs["pixels"][~seg] == 0).all()
    model = env.segmenter.model
    assert model.weights.sum().item() == pytest.approx(1.0) and not torch.equal(model.weights, torch.full((3,), 1 / 3))


def test_lockstep_environments_segment_their_frames_in_one_call():
    """reset_all / step_all (what evaluation uses) segment every environment's frame in one
    segmenter call per step and give exactly what stepping each environment alone gives, with
    frame stacks after the mask and each environment's own ground truth (the oracle reads it from
    its task). SAM-G itself is exact only up to float ties: its batched and single similarity maps
    differ by ~1e-7, which can move a prompt between two equally similar cells."""
    from vfmbench.tasks import make_task
    from vfmbench.tasks.wrappers import reset_all, step_all

    w = [{"name": "samg", "options": {"segmenter": "oracle"}}, {"name": "frame_stack", "options": {"frames": 2}}]
    seeds, steps = [1000, 1001, 1002], 3
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, len(seeds), 4)).astype(np.float32)
    envs = [make_task("fetch_push", wrappers=w) for _ in seeds]
    alone = [make_task("fetch_push", wrappers=w) for _ in seeds]
    segmenter = envs[0].task.segmenter
    calls = []
    segment = segmenter.segment
    segmenter.segment = lambda frames, truth=None: calls.append(len(frames)) or segment(frames, truth)
    try:
        batched = [reset_all(envs, seeds)] + [[r.observation for r in step_all(envs, a)] for a in actions]
        assert calls == [3] * (steps + 1)
        single = [[e.reset(s) for e, s in zip(alone, seeds)]]
        single += [[e.step(x).observation for e, x in zip(alone, a)] for a in actions]
    finally:
        segmenter.segment = segment
        for e in envs + alone:
            e.close()
    for t, (b_obs, s_obs) in enumerate(zip(batched, single)):
        for b, s, env in zip(b_obs, s_obs, envs):
            assert b["pixels"].shape == (84, 84, 6)
            assert np.array_equal(b["pixels"], s["pixels"]) and np.array_equal(b["segmentation"], s["segmentation"])
        assert not np.array_equal(b_obs[0]["segmentation"], b_obs[1]["segmentation"])  # each its own truth


def test_mask_quality_metrics():
    from vfmbench.masking.quality import boundary_f, iou

    t = np.zeros((1, 20, 20), bool)
    t[0, 5:15, 5:15] = True
    shifted = np.roll(t, 1, axis=2)
    assert iou(t, t)[0] == 1.0 and boundary_f(t, t)[0] == 1.0
    assert iou(t, shifted)[0] == pytest.approx(90 / 110)
    assert boundary_f(t, shifted, tolerance=1)[0] == 1.0 and boundary_f(t, shifted, tolerance=0)[0] < 0.8
    assert iou(np.zeros_like(t), np.zeros_like(t))[0] == 1.0 and boundary_f(t, np.zeros_like(t))[0] == 0.0


def test_cli_segmenters_reference_and_oracle_eval(tmp_path, capsys):
    from vfmbench.cli import app

    assert app(["segmenters", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["oracle", "sam_vit_b", "sam_vit_l", "sam_vit_h", "sam2_hiera_t", "sam2_hiera_s",
                                        "sam2_hiera_bp", "sam2_hiera_l"]
    assert app(["mask", "reference", "--task", "fetch_reach", "--out", str(tmp_path / "r.json")]) == 0
    assert read_reference(tmp_path / "r.json").names == ["gripper", "goal"]
    out = tmp_path / "q.json"
    assert app(["mask", "eval", "--task", "fetch_reach", "--segmenter", "oracle", "--shifts", "none,color_hard",
                "--episodes", "1", "--every", "20", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert [r["shift"] for r in doc["rows"]] == ["none", "color_hard"] and all(r["iou"] == 1.0 for r in doc["rows"])
    assert app(["mask", "reference", "--out", str(tmp_path / "x.json")]) == 2


def test_with_mask_replaces_the_masking_wrapper():
    from vfmbench.masking.wiring import with_mask

    cfg = {"wrappers": [{"name": "gt_mask"}, {"name": "frame_stack", "options": {"frames": 3}}]}
    out = with_mask(cfg, "oracle")
    assert [w["name"] for w in out["wrappers"]] == ["samg", "frame_stack"]
    assert [w["name"] for w in with_mask(out, "none")["wrappers"]] == ["frame_stack"]
    with pytest.raises(ConfigError, match="takes no --mask-reference"):
        with_mask(cfg, "oracle", "ref.json")


def test_segmenters_build_inside_inference_mode():
    """Evaluations build their environments (and so the segmenter, whose PerSAM weights are fitted
    by gradient descent) inside torch.inference_mode: the fit must run there too, and give the same
    weights as outside it."""
    from vfmbench.masking.segmenters import build_segmenter

    for name in ("sam_vit_b", "sam2_hiera_t"):
        options = {"pretrained": False, "tiny": True, "persam_steps": 20, "device": "cpu"}
        outside = build_segmenter(name, options, task="fetch_reach")
        with torch.inference_mode():
            inside = build_segmenter(name, options, task="fetch_reach")
        torch.testing.assert_close(inside.model.weights, outside.model.weights)
        assert not torch.equal(inside.model.weights, torch.full((3,), 1 / 3))


def test_segmenter_options_that_conflict_or_do_not_apply_are_refused(tmp_path, capsys):
    from vfmbench.cli import app
    from vfmbench.masking.segmenters import build_segmenter

    with pytest.raises(ConfigError, match="sam_weights name weights files, but pretrained=false"):
        build_segmenter("sam_vit_b", {"pretrained": False, "tiny": True, "sam_weights": str(tmp_path / "w.pth")},
                        task="fetch_reach")
    with pytest.raises(ConfigError, match="oracle segmenter .* takes no model options; got sam_weights, compile"):
        build_segmenter("oracle", {"compile": True, "sam_weights": "w.pth"})
    build_segmenter("oracle", {"device": "cpu", "dtype": "bfloat16"})  # where it runs is free
    base = ["mask", "eval", "--task", "fetch_reach", "--segmenter", "oracle", "--episodes", "1"]
    with pytest.raises(ConfigError, match="device must be auto, cpu, cuda or cuda:N, got 'banana'"):
        build_segmenter("oracle", {"device": "banana"})
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device=cuda:0, but this machine has no such CUDA device"):
            build_segmenter("sam2_hiera_t", {"pretrained": False, "tiny": True, "device": "cuda:0"}, task="fetch_reach")
    capsys.readouterr()
    assert app(base + ["--dtype", "bfloat16", "--set", "dtype=float32"]) == 2
    assert "--dtype and --set dtype=float32 disagree" in capsys.readouterr().err
    assert app(base + ["--set", "dtype=float16"]) == 2
    assert "dtype must be float32 or bfloat16, got 'float16'" in capsys.readouterr().err


def test_mask_show_draws_sam_and_sam2(tmp_path):
    """The figure of one frame through SAM-G, for a SAM and a SAM 2 segmenter (toy sizes, random)."""
    from vfmbench.cli import app

    for name in ("sam_vit_b", "sam2_hiera_t"):
        out = tmp_path / f"{name}.png"
        assert app(["mask", "show", "--task", "fetch_reach", "--segmenter", name, "--random-weights", "--set",
                    "tiny=true", "--set", "persam_steps=10", "--device", "cpu", "--out", str(out)]) == 0
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_mask_and_a_masking_wrapper_in_one_command_are_refused(tmp_path, capsys):
    """--mask beside a masking wrapper of the command's own task_config (collect), or beside
    mask_options naming another segmenter (rl train): refused instead of one silently winning."""
    from vfmbench.cli import app
    from vfmbench.rl.build import mask_wrappers
    from vfmbench.rl.config import RLRunSpec
    from vfmbench.utils.config import from_dict

    wrapper = "task_config.wrappers=[{name: samg, options: {segmenter: sam2_hiera_t}}]"
    assert app(["collect", "--task", "fetch_reach", "--episodes", "1", "--mask", "oracle", "--set", wrapper,
                "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "--mask oracle and a masking wrapper in task_config.wrappers (samg) were both given" in err
    assert not (tmp_path / "d").exists()
    with pytest.raises(ConfigError, match="--mask sam2_hiera_t and mask_options.segmenter=sam_vit_b disagree"):
        mask_wrappers("sam2_hiera_t", {"segmenter": "sam_vit_b"})
    with pytest.raises(ConfigError, match="give masking either as mask or as task_config.wrappers, not both"):
        from_dict(RLRunSpec, {"task": "dmc_cartpole_swingup", "agent": "drqv2", "mask": "oracle",
                              "task_config": {"wrappers": [{"name": "gt_mask"}]}}, source="test")


def test_the_default_dino_weights_list_every_samg_segmenter_as_a_user():
    """The zoo names the SAM-G segmenters among dinov2_vitb14's users (it cannot import the masking
    registry); the two lists must not drift apart."""
    import vfmbench.encoders  # noqa: F401  (registers the weight sets)
    from vfmbench.masking.segmenters import SEGMENTERS, SegmenterConfig
    from vfmbench.weights import WEIGHTS

    samg = {spec.name for spec in SEGMENTERS if spec.family == "samg"}
    users = {u.split(" ", 1)[1] for u in WEIGHTS.get(SegmenterConfig.dino).used_by if u.startswith("segmenter ")}
    assert len(samg) == 7 and users == samg
