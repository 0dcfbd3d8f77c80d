"""The networks: builders and saved-model format (models), starting weights (weights), a pretrained start across landmark sets (finetune), both trained networks' raw outputs (infer)."""
