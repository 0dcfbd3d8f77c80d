"""The decoding room: raw network outputs -> landmarks, for every method, and the fit of the decoder on data.

- `decoder`: LandmarkDecoder, the one decode every path uses (evaluate, report, LandmarkPredictor, predict);
- `methods`: the table of decode methods (name, the report's label, the figures' colour), in their order;
- `peaks`: argmax and sub-pixel peaks, local maxima, and the one rule for reading a heatmap at a point;
- `fusion`: the paper's fusion (Gaussian prior around the regressed point x heatmap, argmax);
- `chain`: the chain decode (the landmarks chosen jointly by dynamic programming), with its optional end node;
- `chain_candidates`: what the chain chooses from (each landmark's peaks, the regressed point, lent peaks, end node);
- `chain_model`: the chain's displacement model (each step's Gaussian, and the end step to the S1 body) and its fit;
- `chain_fit`: the chain's weights and candidate set, and the level flag's threshold, fitted on the val split;
- `fit`: the fusion sigma and the gate fitted on the val split, and the whole decoder (`fit_decoder`);
- `outputs`: SplitOutputs, one split's raw network outputs with its ground truth (what the fit reads);
- `evidence`: which slice of a series shows the spine best, from the decoded landmarks (`lmfusion predict`).

Every length here is in heatmap pixels; the params give them at heatmap.reference_size (lmfusion.config.geometry).

Heatmap *encoding* (the training targets) is `lmfusion.heatmaps`. Numpy (OpenCV only for the chain's end check).
"""

from lmfusion.decoding.decoder import DECODER_FILE, Decoded, LandmarkDecoder, decoder_path
from lmfusion.decoding.methods import DECODE_METHODS, METHODS, Method

__all__ = ["DECODER_FILE", "DECODE_METHODS", "METHODS", "Method", "Decoded", "LandmarkDecoder", "decoder_path"]
