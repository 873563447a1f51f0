"""The model layer: the frozen CLIP backbone, the ``Method`` contract, shared prompt/adapter/loss mechanics, the training loop."""
