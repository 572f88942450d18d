"""Synthetic chest X-ray studies ("phantoms") in the real IU X-Ray layouts, with lesion masks.

Hand-written because no library generates chest radiograph phantoms together with matching report
text and pixel-exact lesion masks: image-side behaviour (training, Grad-CAM, ROI analysis) must be
testable without the real images, and explanations must be checked against known lesions.

``generate_phantoms`` writes a dataset that the real-data loader reads unchanged (``openi`` or
``kaggle`` layout) plus ``phantom_truth.csv``, ``masks/`` and ``phantom_studies.csv``.
Radiological convention throughout: the patient's right is on the image's left (PA view).
"""

from chestclip.phantom.generate import PhantomSummary, generate_phantoms

__all__ = ["PhantomSummary", "generate_phantoms"]
