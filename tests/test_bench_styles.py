"""benchmarks/bench_styles.py on tiny inputs: a hand-made case scored with the evaluate stage's study-level
definitions, and a tiny untrained pipeline judged on one held-out study per style (cached, decoded as
LandmarkPredictor.predict decodes, one table row per style)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from helpers import TINY_PARAMS, deep_update, load_benchmark
from lmfusion import metrics
from lmfusion.config import LANDMARKS
from lmfusion.synth import generate_study
from lmfusion.decoding import METHODS, LandmarkDecoder
from lmfusion.errors import DataError
from lmfusion.io import write_json
from lmfusion.nets.models import build_unet, build_regressor, save_model
from lmfusion.reporting.styles import styles_section

REPO = Path(__file__).resolve().parents[1]


def _bench():
    return load_benchmark("bench_styles")


def test_seeds_are_one_per_style_and_none_a_training_sets() -> None:
    seeds = _bench().SEEDS
    assert list(seeds) == ["default", "target", "randomized", "unseen"]
    assert len(set(seeds.values())) == 4 and not set(seeds.values()) & {0, 1, 7, 11}


def test_a_hand_made_case_is_scored_as_the_evaluate_stage_scores_it() -> None:
    k = len(LANDMARKS)
    truth = np.stack([np.column_stack([np.full(k, 100.0), 50.0 + 20.0 * np.arange(k)])] * 3)  # (3, K, 2) 10 mm apart
    spacing = np.full((3, 2), 0.5)
    pred = truth.copy()
    pred[0] += 1.0  # 0.7 mm off: identified
    pred[1, :, 1] += 40.0  # every landmark on the truth two places down (20 mm): a whole-level shift
    pred[2, 5, 0] += 20.0  # one landmark 10 mm off: not identified, not shifted
    got = _bench().score(pred, truth, spacing, 8.0)
    assert got == {"identified": 1, "level_shifted": 1, "sdr": round(21 / 33, 4),
                   "mre_mm": round((11 * np.sqrt(0.5) + 11 * 20.0 + 10.0) / 33, 3)}
    errors = metrics.radial_errors(pred, truth, spacing)
    assert got["identified"] == metrics.study_identified(errors, 8.0).sum()
    assert metrics.level_shift(pred, truth, spacing).tolist() == [0, 1, 0]


def _tiny_pipeline(root: Path) -> None:
    """A pipeline folder with untrained tiny networks and a decoder, as the training and evaluate stages leave it."""
    p = deep_update(yaml.safe_load((REPO / "params.yaml").read_text()),
                    deep_update({"train_xception": {"model": "resnet10t"}}, TINY_PARAMS))
    root.mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(p))
    tx, tu, size = p["train_xception"], p["train_unet"], p["prepare"]["unet_size"]
    torch.manual_seed(0)
    nets = {"xception": ("regressor", {"model": tx["model"], "n_landmarks": 11, "dropout": tx["dropout"]}),
            "unet": ("heatmap", {"arch": tu["arch"], "encoder": tu["encoder"], "n_landmarks": 11,
                                 "encoder_depth": tu["encoder_depth"], "decoder_channels": tu["decoder_channels"]})}
    for net, (kind, builder) in nets.items():
        model = build_regressor(**builder) if kind == "regressor" else build_unet(**builder)
        save_model(root / "models" / net / "model.pt", model, {"kind": kind, "builder": builder,
                                                               "names": list(LANDMARKS), "input_size": size})
    write_json(root / "models" / "decoder.json",
               LandmarkDecoder(np.full(11, 2.0), 1e-3, best_method="argmax").to_dict())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A folder with the tiny pipeline (p) and the work folder (work) the held-out sets are cached in."""
    root = tmp_path_factory.mktemp("bench_styles")
    _tiny_pipeline(root / "p")
    return root


def test_a_tiny_pipeline_is_judged_on_every_style_as_predict_decodes(tiny: Path, monkeypatch) -> None:
    bench = _bench()
    work = tiny / "work"
    sets = {s: bench.held_out_set(s, seed, 1, work) for s, seed in bench.SEEDS.items()}
    assert sorted(f.name for f in work.iterdir()) == sorted(f"{s}_{seed}_1.npz" for s, seed in bench.SEEDS.items())
    predictor = bench.LandmarkPredictor.from_pipeline(tiny / "p")
    assert predictor.method == "argmax"  # the decoder's best method
    for style, held in sets.items():
        judged = bench.judge(predictor, held, 8.0)
        assert list(judged) == list(METHODS) and all(0 <= r["identified"] <= 1 for r in judged.values()), style
    held = sets["unseen"]
    one = predictor.predict(held.images[0], tuple(held.spacing[0]))  # the one decode: predict's own
    np.testing.assert_allclose(bench.decode_all(predictor, held)["argmax"][0], one.xy, atol=1e-3)

    monkeypatch.setattr(bench, "_draw", lambda *a: pytest.fail("a cached set was drawn again"))
    again = bench.held_out_set("unseen", bench.SEEDS["unseen"], 1, work)
    assert [a.tobytes() for a in again.images] == [a.tobytes() for a in held.images]
    np.testing.assert_array_equal(again.truth, held.truth)
    st = generate_study(np.random.default_rng([104, 0]), LANDMARKS, "unseen")  # as lmfusion synth draws it
    np.testing.assert_array_equal(held.stored[0], st.image)
    np.testing.assert_array_equal(held.truth[0], st.landmarks)
    with pytest.raises(DataError, match="^--styles: unknown style 'stir'; known: default, target, randomized, "
                                        "unseen$"):
        bench.run_benchmark({"tiny": tiny / "p"}, ["default", "stir"], 1, work)


def test_the_command_writes_the_json_and_a_table_row_per_style(tiny: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_styles.py"), "--pipeline",
                           f"tiny={tiny / 'p'}", "--n", "1", "--work", str(tiny / "work"), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "styles.json").read_text())
    styles = ["default", "target", "randomized", "unseen"]
    assert result["settings"] == {"n": 1, "seeds": dict(zip(styles, (101, 102, 103, 104))), "methods": list(METHODS)}
    tiny = result["pipelines"]["tiny"]
    assert tiny["best_method"] == "argmax" and tiny["radius_mm"] == 8.0 and list(tiny["styles"]) == styles
    text = (tmp_path / "out" / "styles.md").read_text()
    assert text == "\n".join(styles_section(result)) + "\n"
    rows = [line for line in text.splitlines() if line.startswith("| tiny |")]
    assert [row.split(" | ")[1] for row in rows] == styles
