"""cozoo: Continual Inference Networks for PyTorch — layers, model zoo and research framework."""

__version__ = "0.1.0"
