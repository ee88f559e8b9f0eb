"""Re-score the convex head, exactly as `edgeclf train` fits it now, on a finished
time_to_model.py run's cached features and split (mirrored rows included).

    python benchmarks/convex_rescore.py WORK/models/DATASET WORK/cache-DATASET/features/KEY
"""
import json
import sys
from pathlib import Path
import numpy as np
from edgeclf.train.convex import fit_convex_head
from edgeclf.metrics import split_metrics
run, feat = Path(sys.argv[1]), Path(sys.argv[2])
split = json.loads((run / "split.json").read_text()); classes = split["classes"]
y = {s: np.array([classes.index(p.split("/")[0]) for p in split[s]]) for s in ("train", "val", "test")}
every = np.load(feat / "features.npy"); mir = np.load(Path(str(feat) + "-mirrored") / "features.npy")
n_tr, n_va = len(y["train"]), len(y["val"])
x = {"train": every[:n_tr], "val": every[n_tr:n_tr + n_va], "test": every[n_tr + n_va:]}
fit = fit_convex_head(np.concatenate([x["train"], mir]), np.tile(y["train"], 2), x["val"], y["val"], num_classes=len(classes))
m = split_metrics(y["test"], fit.predict_proba(x["test"]), classes)
print(json.dumps({"val": fit.val_accuracy, "l2": fit.l2, "grid": fit.grid, **{k: m[k] for k in ("accuracy", "macro_f1", "min_recall", "mean_recall")}}), flush=True)
