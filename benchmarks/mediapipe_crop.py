"""What the README's MediaPipe advice is worth on a real model: MediaPipe Tasks'
ImageClassifier given the whole photo, the centre square as region of interest, or the
contract's preprocessed image, against edgeclf's predictor on the same model and photos.

    python benchmarks/mediapipe_crop.py --out benchmarks/results/mediapipe-crop-DATE

The model is Coral's ImageNet MobileNetV2 (``../shared/reference-models/coral``, standard
TFLite metadata, uint8 input) predicted by edgeclf with the contract of an edgeclf model
(centre crop, bilinear; a foreign model would default to squash);
the photos are the flowers dataset's (non-square, 1.3-2x larger than the input). Needs
``mediapipe``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"
CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=SHARED / "reference-models" / "coral" /
                    "mobilenet_v2_1.0_224_quant.tflite")
    ap.add_argument("--labels", type=Path, default=SHARED / "reference-models" / "coral" /
                    "imagenet_labels.txt")
    ap.add_argument("--data", type=Path, default=SHARED / "data" / "flowers")
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision
    from mediapipe.tasks.python.components.containers.rect import RectF
    from PIL import Image

    from edgeclf.runtime import Contract, Predictor
    from edgeclf.runtime.preprocess import preprocess

    per_class = max(1, args.images // len(CLASSES))
    photos = [p for c in CLASSES for p in sorted((args.data / c).glob("*.jpg"))[:per_class]]
    # an edgeclf model's contract (centre crop, bilinear); a foreign model defaults to squash
    size = Predictor.from_path(args.model, labels=args.labels).contract.size
    contract = Contract(size=size, resize="crop", interpolation="bilinear")
    predictor = Predictor.from_path(args.model, labels=args.labels, contract=contract)
    ref = predictor.predict_proba(photos)
    labels = predictor.labels
    options = vision.ImageClassifierOptions(
        base_options=BaseOptions(model_asset_path=str(args.model)), max_results=-1)
    ways = {"whole photo": [], "centre square as ROI": [], "contract's preprocessed image": []}
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for photo in photos:
            arr = np.asarray(Image.open(photo).convert("RGB"))
            h, w = arr.shape[:2]
            s = min(w, h)
            left, top = (w - s) / 2 / w, (h - s) / 2 / h
            roi = vision.ImageProcessingOptions(region_of_interest=RectF(
                left=left, top=top, right=1 - left, bottom=1 - top))
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(arr))
            pre = mp.Image(image_format=mp.ImageFormat.SRGB,
                           data=np.ascontiguousarray(preprocess(photo, contract)))
            for way, result in zip(ways, (classifier.classify(image),
                                          classifier.classify(image, roi),
                                          classifier.classify(pre))):
                scores = {c.category_name: c.score for c in result.classifications[0].categories}
                ways[way].append([scores.get(name, 0.0) for name in labels])
    rows = {}
    for way, probs in ways.items():
        probs = np.asarray(probs)
        rows[way] = {"top1_agreement": float((probs.argmax(1) == ref.argmax(1)).mean()),
                     "max_abs_diff": float(np.abs(probs - ref).max()),
                     "mean_abs_diff_top1": float(np.abs(
                         probs[np.arange(len(ref)), ref.argmax(1)] - ref.max(1)).mean())}
    data = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
            "model": args.model.name, "contract": contract.to_dict(), "photos": len(photos),
            "mediapipe": mp.__version__, "nproc": os.cpu_count(),
            "loadavg": list(os.getloadavg()), "results": rows}
    print(json.dumps(data, indent=2))
    if args.out:
        args.out.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
        lines = ["# MediaPipe ImageClassifier vs edgeclf predict: what the crop does", "",
                 f"- date: {data['date']}", f"- command: `{data['command']}`",
                 f"- model: {data['model']} (edgeclf contract: centre crop, "
                 f"{contract.interpolation}, {contract.width}x{contract.height}); "
                 f"{len(photos)} flower photos; mediapipe {data['mediapipe']}",
                 f"- machine: {data['nproc']} cores, load average {data['loadavg']} "
                 "(accuracy figures, not timings)", "",
                 "| MediaPipe input | top-1 = edgeclf | max abs(dp) | mean abs(d top score) |",
                 "|---|---|---|---|"]
        for way, r in rows.items():
            lines.append(f"| {way} | {r['top1_agreement']:.0%} | {r['max_abs_diff']:.3f} | "
                         f"{r['mean_abs_diff_top1']:.3f} |")
        args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
