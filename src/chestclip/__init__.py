"""chestclip: multimodal chest X-ray classification with CLIP, MLP heads and Grad-CAM ROIs."""

__version__ = "0.1.0"
