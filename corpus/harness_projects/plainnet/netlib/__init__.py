"""Layers of the plain PyTorch fixture (no detectron2)."""
