"""Network builders, weights loading and the saved model format (lmfusion.models)."""

from __future__ import annotations

import pytest
import torch

from lmfusion.errors import DataError, ParamError
from lmfusion.models import build_heatmap_net, build_regressor, load_model, save_model

UNET = {"arch": "Unet", "encoder": "resnet18", "n_landmarks": 3, "encoder_depth": 3, "decoder_channels": [16, 8, 8]}


def _first_param(model: torch.nn.Module) -> torch.Tensor:
    return next(p for p in model.parameters() if p.ndim == 4)  # the first convolution's weight


@pytest.mark.parametrize("name", ["resnet10t", "legacy_xception"])
def test_regressor_shapes_and_gradient(name):
    torch.manual_seed(0)
    net = build_regressor(name, n_landmarks=3, dropout=0.2)
    out = net(torch.randn(2, 1, 64, 64))
    assert out.shape == (2, 3, 2)
    out.sum().backward()
    grad = _first_param(net.backbone).grad
    assert grad is not None and grad.abs().sum() > 0


def test_regressor_starts_near_the_centre():
    net = build_regressor("resnet10t", n_landmarks=2, dropout=0.0).eval()
    with torch.no_grad():
        out = net(torch.zeros(1, 1, 32, 32))
    assert (out - 0.5).abs().max() < 0.5


@pytest.mark.parametrize("arch", ["Unet", "FPN"])
def test_heatmap_net_shapes_and_gradient(arch):
    net = build_heatmap_net(**{**UNET, "arch": arch})
    out = net(torch.randn(2, 1, 32, 32))
    assert out.shape == (2, 3, 32, 32)
    out.mean().backward()
    grad = _first_param(getattr(net, "net", net).encoder).grad  # FPN at depth 3 is wrapped in a resize
    assert grad is not None and grad.abs().sum() > 0


def test_wrong_names_raise_param_errors_naming_the_key():
    with pytest.raises(ParamError, match=r"train_xception\.model.*legacy_xception"):
        build_regressor("legacy_xceptoin", 3, 0.2)
    with pytest.raises(ParamError, match=r"train_unet\.arch.*Unet"):
        build_heatmap_net(**{**UNET, "arch": "Unett"})
    with pytest.raises(ParamError, match=r"train_unet\.encoder.*resnet18"):
        build_heatmap_net(**{**UNET, "encoder": "resnet19"})


def test_missing_weights_file_is_a_param_error(tmp_path):
    with pytest.raises(ParamError, match="train_xception.weights"):
        build_regressor("resnet10t", 3, 0.2, weights=str(tmp_path / "nope.pt"))


def test_save_load_round_trip_and_weights_from_a_saved_model(tmp_path):
    torch.manual_seed(0)
    net = build_heatmap_net(**UNET).eval()
    x = torch.randn(1, 1, 32, 32)
    meta = {"kind": "heatmap", "builder": UNET, "names": ["a", "b", "c"], "input_size": 32, "mlflow_run_id": None}
    path = tmp_path / "m" / "model.pt"
    save_model(path, net, meta)
    loaded, meta2 = load_model(path)
    assert meta2 == meta and not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    warm = build_heatmap_net(**UNET, weights=str(path)).eval()  # a saved model as starting weights
    with torch.no_grad():
        assert torch.equal(warm(x), net(x))


def test_backbone_weights_load_partially(tmp_path):
    torch.manual_seed(1)
    src = build_regressor("resnet10t", 3, 0.0)
    path = tmp_path / "backbone.pt"
    torch.save(src.backbone.state_dict(), path)
    dst = build_regressor("resnet10t", 5, 0.0, weights=str(path))  # another head: only the backbone loads
    assert torch.equal(_first_param(dst.backbone), _first_param(src.backbone))


def test_load_model_errors(tmp_path):
    with pytest.raises(DataError, match="missing"):
        load_model(tmp_path / "none.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(DataError, match="bad.pt"):
        load_model(bad)
