"""How every stage opens and feeds a model: :func:`open_model` (any format edgeclf runs) and
the labelled :class:`ImageSet` that parity and eval judge it on."""

from .images import ImageSet, Skipped, digest_images, load_folder_images, load_split_images
from .runner import ModelRunner, detect_format, load_checkpoint, open_model

__all__ = ["ImageSet", "Skipped", "digest_images", "load_folder_images", "load_split_images",
           "ModelRunner", "detect_format", "load_checkpoint", "open_model"]
