"""Data: readers for the challenge and CSV formats, the synthetic generator, preprocessing, splits, augmentation."""
