"""digits trainer: MNIST CNN → .h5 → quantized .tflite, with a model card, plots and report."""
