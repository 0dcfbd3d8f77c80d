"""Every picture the pipeline draws, one module per thing drawn. Images are BGR uint8 (OpenCV); charts use matplotlib.

    drawing      primitives: role colours, points on an image, montages, PNG writing (OpenCV only)
    charts       result charts with matplotlib (imported inside the functions)
    evaluation   the evaluate stage's overlays, worst cases, shifted studies and fusion example
    prepared     the prepare stage's montage of U-Net inputs, the hardest fields of view first
    heatmaps     the heatmaps stage's preview of a study's Gaussian targets
    augment      the training stages' preview of augmented samples
    synth        a synthetic dataset read back (the challenge's layout), the gallery of hard cases
    rsna2024     a dataset in the RSNA 2024 layout read back by its reader
    predict      `lmfusion predict`'s overlay of one image's landmarks

Nothing is imported here, so `import lmfusion.figures.drawing` loads neither matplotlib nor torch, and a stage
depends only on the modules of the pictures it draws.
"""
