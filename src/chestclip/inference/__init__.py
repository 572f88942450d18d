"""Inference on new files: ``chestclip predict`` and the model card."""
