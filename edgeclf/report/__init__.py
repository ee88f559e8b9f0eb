"""The per-run HTML report (``edgeclf report RUN``): see :mod:`edgeclf.report.html`."""
