"""A trained run, packaged for others: a Hugging Face Hub folder (``chestclip export --format
hf``, ``chestclip push``) and ONNX graphs for fast CPU inference (``--format onnx``).

Typical use::

    folder = export_hub_folder("runs/paper", "runs/paper/hub")  # Hub-ready, and a valid --run
    push_run("runs/paper", "my-org/chestclip-iu-xray", private=True)
"""

from chestclip.export.hub import export_hub_folder, push_run

__all__ = ["export_hub_folder", "push_run"]
