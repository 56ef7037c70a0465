"""The evaluation behind docs/model-card.md, one module per part (`python -m scripts.evaluate`).

- cli: the arguments, main, and where the outputs go; run: the chosen parts into one frame,
  and the report's sections in part order;
- common: names, the network's settings, a split, fitting on a training fold only; records: the
  tidy rows, per fold and pooled per repeat; tables: the frame, its CSV, the Markdown tables and
  the corrected t-test; peers: the scikit-learn models beside the network;
- the parts: cv (and the validation loop grouped and temporal share), grouped, temporal,
  conformal and scaling (whose fits carved shares), regularize.
"""
