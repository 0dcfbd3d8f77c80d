"""Network builders, weights loading and the saved model format (lmfusion.nets.models)."""

from __future__ import annotations

import pytest
import torch
import yaml

from helpers import run_stage, stage_cmd
from lmfusion.errors import DataError, LmfusionError, ParamError
from lmfusion.nets.models import build_unet, build_regressor, load_model, save_model

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


def test_flatten_head_sees_where_a_feature_lies():
    """A spot moved by the backbone's stride (32 px) gives the same pooled features, so the pooled head must answer
    the same for both; the flattened map differs, so the flatten head can tell where the spot is."""
    torch.manual_seed(0)
    both = torch.zeros(2, 1, 128, 128)
    both[0, :, 40:48, 40:48] = 3.0
    both[1, :, 40:48, 72:80] = 3.0
    for head, differ in (("pooled", False), ("flatten", True)):
        net = build_regressor("resnet10t", 2, 0.0, head=head, input_size=128).eval()
        features = net.backbone(both).flatten(1)
        assert net.head.in_features == features.shape[1]
        assert net.scale == (1.0 if head == "pooled" else 1 / 16)  # a 4 x 4 map is averaged, not summed
        assert (not torch.allclose(features[0], features[1], atol=1e-5)) == differ
    with pytest.raises(ParamError, match=r"train_xception\.head"):
        build_regressor("resnet10t", 2, 0.0, head="spatial")


def test_regressor_starts_near_the_centre():
    net = build_regressor("resnet10t", n_landmarks=2, dropout=0.0).eval()
    with torch.no_grad():
        out = net(torch.zeros(1, 1, 32, 32))
    assert (out - 0.5).abs().max() < 0.5


@pytest.mark.parametrize("arch", ["Unet", "FPN"])
def test_unet_shapes_and_gradient(arch):
    net = build_unet(**{**UNET, "arch": arch})
    out = net(torch.randn(2, 1, 32, 32))
    assert out.shape == (2, 3, 32, 32)
    out.mean().backward()
    grad = _first_param(getattr(net, "net", net).encoder).grad  # FPN at depth 3 is wrapped in a resize
    assert grad is not None and grad.abs().sum() > 0


def test_wrong_names_raise_param_errors_naming_the_key():
    with pytest.raises(ParamError, match=r"train_xception\.model.*legacy_xception"):
        build_regressor("legacy_xceptoin", 3, 0.2)
    with pytest.raises(ParamError, match=r"train_unet\.arch.*Unet"):
        build_unet(**{**UNET, "arch": "Unett"})
    with pytest.raises(ParamError, match=r"train_unet\.encoder.*resnet18"):
        build_unet(**{**UNET, "encoder": "resnet19"})


def test_missing_weights_file_is_a_param_error(tmp_path):
    with pytest.raises(ParamError, match="train_xception.weights"):
        build_regressor("resnet10t", 3, 0.2, weights=str(tmp_path / "nope.pt"))


def test_save_load_round_trip_and_weights_from_a_saved_model(tmp_path):
    torch.manual_seed(0)
    net = build_unet(**UNET).eval()
    x = torch.randn(1, 1, 32, 32)
    meta = {"kind": "heatmap", "builder": UNET, "names": ["a", "b", "c"], "input_size": 32, "mlflow_run_id": None}
    path = tmp_path / "m" / "model.pt"
    save_model(path, net, meta)
    loaded, meta2 = load_model(path)
    assert meta2 == meta and not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    warm = build_unet(**UNET, weights=str(path)).eval()  # a saved model as starting weights
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


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network at all: the hub in offline mode, empty caches, and every socket connection refused at once."""
    import socket

    import huggingface_hub.constants as hub

    def refuse(*args, **kwargs):
        raise OSError("network disabled in the tests")

    for key in ("HF_HOME", "TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(key, str(tmp_path / key.lower()))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize("build, key", [
    (lambda: build_regressor("legacy_xception", 3, 0.2, weights="imagenet"), "train_xception.weights"),  # a URL
    (lambda: build_regressor("resnet10t", 3, 0.2, weights="imagenet"), "train_xception.weights"),  # the hub
    (lambda: build_unet(**UNET, weights="imagenet"), "train_unet.weights"),
])
def test_imagenet_offline_is_one_line_saying_how_to_pass_a_local_file(offline, build, key):
    with pytest.raises(LmfusionError) as err:
        build()
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"param {key}: imagenet: could not fetch")
    assert f"set {key} to that local file" in message
    assert ("pretrained=True" if key == "train_xception.weights" else "weights='imagenet'") in message


def test_imagenet_for_a_model_without_pretrained_weights_is_a_param_error():
    import timm

    name = next(m for m in timm.list_models() if not timm.is_model_pretrained(m))
    with pytest.raises(ParamError, match=f"train_xception.weights: timm has no pretrained weights for '{name}'"):
        build_regressor(name, 3, 0.2, weights="imagenet")


def test_colour_first_convolution_loads_summed_to_one_channel(tmp_path):
    """A local ImageNet-style file (3 input channels, a classifier) is what `imagenet` would have given."""
    import timm

    torch.manual_seed(2)
    colour = timm.create_model("resnet10t", pretrained=False, in_chans=3)
    path = tmp_path / "resnet10t.pt"
    torch.save(colour.state_dict(), path)
    net = build_regressor("resnet10t", 3, 0.0, weights=str(path))
    expected = _first_param(colour).sum(1, keepdim=True)
    assert torch.equal(_first_param(net.backbone), expected)
    assert torch.equal(net.backbone.state_dict()["layer1.0.conv1.weight"], colour.state_dict()["layer1.0.conv1.weight"])


def test_imagenet_offline_stops_the_training_stage_with_one_line(stage_inputs, tmp_path):
    params = yaml.safe_load((stage_inputs / "params.yaml").read_text())
    params["train_xception"]["weights"] = "imagenet"  # resnet10t: its weights live on the hub, which is offline
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "TORCH_HOME": str(tmp_path / "torch")}
    cmd = stage_cmd("train_xception", stage_inputs, tmp_path / "out")[:-1] + [str(tmp_path / "params.yaml")]
    proc = run_stage(cmd, env=env, check=False)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert errors[0].startswith("error: param train_xception.weights: imagenet: could not fetch")
    assert not (tmp_path / "out" / "models").exists()


def test_coordinate_channels_and_auxiliary_maps(tmp_path):
    net = build_unet(**UNET, extra_channels=1, coord_channels=True).eval()
    x = torch.zeros(2, 1, 64, 64)
    out = net(x)
    assert out.shape == (2, UNET["n_landmarks"] + 1, 64, 64)
    # the coordinates reach the encoder: a flat input gives maps that differ between left and right
    assert not torch.allclose(out[..., :32], out[..., 32:].flip(-1))
    path = tmp_path / "m.pt"
    save_model(path, net, {"kind": "heatmap", "builder": {**UNET, "extra_channels": 1, "coord_channels": True},
                           "names": ["a", "b", "c"], "input_size": 64})
    loaded, _ = load_model(path)
    torch.testing.assert_close(loaded(x), out)
