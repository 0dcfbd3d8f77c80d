"""The decoding room: raw network outputs -> landmarks, for every method, and the fit of the decoder on data.

- `decoder`: LandmarkDecoder, the one decode every path uses (evaluate, report, LandmarkPredictor, predict);
- `peaks`: argmax and sub-pixel peaks, local maxima, and the one rule for reading a heatmap at a point;
- `fusion`: the paper's fusion (Gaussian prior around the regressed point x heatmap, argmax);
- `chain`: the chain decode (the landmarks chosen jointly by dynamic programming), with its optional end node;
- `chain_model`: the chain's displacement model (each step's Gaussian, and the end step to the S1 body) and its fit;
- `fit`: the fusion sigma, the chain's model and weights and the level flag, fitted on the train / val splits.

Heatmap *encoding* (the training targets) is `lmfusion.heatmaps`. Numpy (OpenCV only for the chain's end check).
"""

from lmfusion.decoding.decoder import DECODER_FILE, METHODS, Decoded, LandmarkDecoder, decoder_path

__all__ = ["DECODER_FILE", "METHODS", "Decoded", "LandmarkDecoder", "decoder_path"]
