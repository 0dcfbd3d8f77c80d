"""The `lmfusion` command (main: `lmfusion synth`; predict: `lmfusion predict`)."""
