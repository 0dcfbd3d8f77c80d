"""The synthetic generator writes the same bytes on every x86-64 CPU and thread count.

Each setting below runs the generator in a fresh process with some of the CPU's instruction sets hidden from numpy
(its AVX2 / AVX-512 dispatch) or OpenCV (its dispatched SIMD, or its optimized paths altogether), or with another
thread count; every style's studies must give the digests committed here. A change that moves the generator's
output on purpose updates DIGESTS (the failing test prints the new ones) and data.dvc.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from lmfusion.synth import STYLES, generate_study
from lmfusion.synth.common import digest
from lmfusion.synth.randomize_mri import upsample

SEED, STUDIES = 0, 2  # studies 0 and 1 of every style

# lmfusion.synth.common.digest of studies 0 and 1 of each style (np.random.default_rng([0, i]))
DIGESTS = {
    "default": [
        "b37eefa6c6a177156e04ee1aaf9fcc71e7ae77fc310d75a0258990fa96215f1e",
        "104d0e5e6bdb61c64c948695f592dde4c28f4e1411240ca3e398e8555b378af5",
    ],
    "target": [
        "fbf90c70ab9fec47a8d1a11917f05aabd5bd4905735c192d4aa44b0b34e41c04",
        "b47f3b1542cf1e2684488a7e9aa7a9c62b67c4143c9e0cdc0f213e5a08e4592e",
    ],
    "randomized": [
        "6b0106c4c97835aa5f53b10fdd3e4339a95bb1e65e277f353de8df1ba661cf10",
        "a3c289ff2759de464e0a19a6c11eb7da20c72cdfc18b513847418fbd31a08fa1",
    ],
    "unseen": [
        "9804a3e88eb6a2be5bef31bcdb3c5f5f36174116bb20a0229171017d73083048",
        "79987ede5afe9e60f74517df512857ae12e7341c129e9e19ee629b33db46fee2",
    ],
    "clinical": [
        "d0c26f2e2e2ca7fab76f667a7fde6169e53e319cc9e3a7cee0a9689649f938ba",
        "cd458ee08d7c0336b5c12320353c9e3c65782b868775d0532f0e821f9f3c2a4d",
    ],
}

_SCRIPT = """
import json, os, sys
import cv2, numpy as np
if os.environ.get("LMFUSION_TEST_CV_UNOPTIMIZED"):
    cv2.setUseOptimized(False)
if os.environ.get("LMFUSION_TEST_CV_THREADS"):
    cv2.setNumThreads(int(os.environ["LMFUSION_TEST_CV_THREADS"]))
from lmfusion.synth import STYLES, generate_study
from lmfusion.synth.common import digest
seed, n = int(sys.argv[1]), int(sys.argv[2])
print(json.dumps({s: [digest(generate_study(np.random.default_rng([seed, i]), style=s)) for i in range(n)]
                  for s in STYLES}))
"""


def _numpy_dispatch() -> str:
    """numpy's dispatched instruction-set groups this CPU has (hiding them all leaves numpy's baseline code)."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    return " ".join(f for f in __cpu_dispatch__ if __cpu_features__.get(f))


def _opencv_dispatch() -> str:
    """OpenCV's dispatched features this CPU has (marked * in its feature line)."""
    return ",".join(f.strip("*?") for f in cv2.getCPUFeaturesLine().split() if f.startswith("*"))


SETTINGS = {
    "as installed": {},
    "numpy without AVX2 and AVX-512": {"NPY_DISABLE_CPU_FEATURES": _numpy_dispatch()},
    "OpenCV without its dispatched SIMD": {"OPENCV_CPU_DISABLE": _opencv_dispatch()},
    "OpenCV without its optimized paths": {"LMFUSION_TEST_CV_UNOPTIMIZED": "1"},
    "one thread": {"LMFUSION_TEST_CV_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
    "two threads": {"LMFUSION_TEST_CV_THREADS": "2", "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"},
}


def _digests(env: dict[str, str]) -> dict[str, list[str]]:
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(SEED), str(STUDIES)], env={**os.environ, **env},
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def digests() -> dict[str, dict[str, list[str]]]:
    return {name: _digests(env) for name, env in SETTINGS.items()}


def test_every_setting_writes_the_same_bytes(digests: dict) -> None:
    assert set(digests["as installed"]) == set(STYLES)
    different = [name for name, d in digests.items() if d != digests["as installed"]]
    assert different == []


def test_the_bytes_are_the_committed_ones(digests: dict) -> None:
    got = digests["as installed"]
    assert got == DIGESTS, f"the generator's output moved; if on purpose, DIGESTS = {json.dumps(got, indent=4)}"


def test_a_digest_sees_one_stored_value() -> None:
    study = generate_study(np.random.default_rng([SEED, 0]))
    before = digest(study)
    study.images[0].pixels[5, 7] += 1
    assert digest(study) != before


@pytest.mark.parametrize("size", [(100, 80), (53, 37), (20, 15), (7, 9)])
def test_bilinear_upsampling_places_its_taps_as_opencv_does(size: tuple[int, int]) -> None:
    img = np.random.default_rng(0).random((37, 53)) * 1000
    ours = upsample(img, size, cv2.INTER_LINEAR)
    assert ours.shape == (size[1], size[0])
    np.testing.assert_allclose(ours, cv2.resize(img, size, interpolation=cv2.INTER_LINEAR), rtol=0, atol=1e-9)
