"""Entry points of torchvision detection models for the harness (``--entry detect_entry.maskrcnn:build``)."""
