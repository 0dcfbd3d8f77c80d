"""The report's heatmap models table (lmfusion.reporting.architectures): this pipeline's row from its tracked
metrics, the collected experiments' rows from experiments/architectures.csv, nothing from an MLflow store."""

from __future__ import annotations

import csv
import io

from helpers import REPO
from lmfusion.reporting import architectures

EVALUATE = {"test": {"argmax": {"sdr": {"4mm": 0.5, "8mm": 0.631}}, "fused": {"sdr": {"4mm": 0.7, "8mm": 0.871}}}}
TRAIN = {"best_val_loss": 0.013184, "seconds_per_epoch": 5.44, "parameters": 12456332, "peak_memory_mb": 2168.8,
         "train_seconds": 128.49}


def _rows(lines: list[str]) -> list[list[str]]:
    """The Markdown table's body rows as cells."""
    return [[c.strip() for c in line.strip("|").split("|")] for line in "\n".join(lines).splitlines()
            if line.startswith("| ") and not line.startswith("| experiment |")]


def test_this_pipelines_row_comes_from_its_metrics():
    row = architectures.model_row(arch="Unet", encoder="resnet18", input_size=192, evaluate=EVALUATE, train=TRAIN,
                                  radius=8.0)
    assert row == {"arch": "Unet", "encoder": "resnet18", "input_size": 192, "argmax_sdr": 0.631, "fused_sdr": 0.871,
                   "best_val_loss": 0.013184, "seconds_per_epoch": 5.44, "parameters": 12456332,
                   "peak_memory_mb": 2168.8}
    assert tuple(row) == architectures.FIELDS
    lines = architectures.architectures_section(row, None, 8.0)
    assert _rows(lines) == [["this pipeline", "Unet", "resnet18", "192", "63.1%", "87.1%", "0.0132", "5.4", "12.46",
                             "2169"]]
    assert "No other architecture has been collected yet." in "\n".join(lines)
    assert "MLflow" not in "\n".join(lines)


def test_collected_rows_follow_from_the_csv_and_empty_cells_read_na():
    current = architectures.model_row(arch="Unet", encoder="resnet18", input_size=192, evaluate=EVALUATE,
                                      train=TRAIN, radius=4.0)
    text = ("experiment,change,arch,encoder,input_size,argmax_sdr,fused_sdr,best_val_loss,seconds_per_epoch,"
            "parameters,peak_memory_mb\r\nfpn,FPN,FPN,resnet18,192,0.6,0.9,0.0141,6.02,13042380,\r\n")
    collected = list(csv.DictReader(io.StringIO(text)))
    lines = architectures.architectures_section(current, collected, 4.0)
    assert _rows(lines) == [["this pipeline", "Unet", "resnet18", "192", "50.0%", "70.0%", "0.0132", "5.4", "12.46",
                             "2169"],
                            ["fpn", "FPN", "resnet18", "192", "60.0%", "90.0%", "0.0141", "6.0", "13.04", "n/a"]]
    assert "argmax SDR 4 mm" in lines[4] and "No other architecture" not in "\n".join(lines)


def test_the_committed_csv_has_the_columns_the_collector_writes():
    with open(REPO / "experiments" / "architectures.csv", newline="") as f:
        header = next(csv.reader(f))
    assert tuple(header) == ("experiment", "change", *architectures.FIELDS)

