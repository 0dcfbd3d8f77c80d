"""Every picture the pipeline draws, named by what it draws. Images are BGR uint8 (OpenCV); charts use matplotlib.

    drawing      primitives: colours, points, montages, PNG writing (OpenCV only)
    charts       result charts with matplotlib (imported inside the functions)
    evaluation   the evaluate stage's overlays, worst cases, fusion example and charts

Nothing is imported here, so `import lmfusion.figures.drawing` loads neither matplotlib nor torch.
"""
