"""CPU cost per image of the training loader, cached vs streamed, one thread (so the figure
does not depend on the shared machine's load): what streaming adds is the decode.

    EDGECLF_CACHE_DIR=... python benchmarks/stream_cpu_cost.py   # flowers at 224, 12 batches
"""
import time, numpy as np
from edgeclf.data import load_or_build, scan_dataset
from edgeclf.data.augment import AugmentConfig
from edgeclf.data.loader import BatchLoader
from edgeclf.runtime.contract import Contract
ds = scan_dataset("/work/shared/data/flowers"); C = Contract(size=(224, 224))
cached = load_or_build(ds, C); streamed = load_or_build(ds, C, budget=0)
rows = np.flatnonzero(cached.ok)[:3670]; labels = np.zeros(len(rows), np.int32)
for name, c in (("cached", cached), ("streamed", streamed), ("cached", cached), ("streamed", streamed)):
    ld = BatchLoader(c.images, rows, labels, batch_size=16, shuffle=True, drop_remainder=True,
                     augment=AugmentConfig(), workers=1, prefetch=1, seed=0, max_batches=12)
    t = time.process_time(); n = sum(b.n for b in ld.epoch(0)); cpu = time.process_time() - t
    print(f"{name:9s} {cpu / n * 1000:.2f} ms CPU per image (read{'+decode' if name == 'streamed' else ''} + augment, 1 thread, {n} images)")
