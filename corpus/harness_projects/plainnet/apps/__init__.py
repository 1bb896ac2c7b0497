"""The model and its entry point (imports the layers of ``netlib`` absolutely)."""
