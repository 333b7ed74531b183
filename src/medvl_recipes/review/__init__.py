# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Expert review of generated reports (`medvl review`), one module per concern:

- `cases`: the cases of one or two `medvl eval` runs (A/B), their images, and each reviewer's seeded, blinded,
  order-randomised queue;
- `store`: reviewer credentials (a file or the environment, never the repository) and the answers, one JSONL
  file per reviewer, rewritten atomically on every answer;
- `app`: the Gradio page (`medvl review`);
- `stats`: `medvl review stats`, expert scores with bootstrap CIs, inter-rater agreement, metric-expert Kendall tau;
- `publish`: `medvl review publish`, the answers as a Hub-ready dataset folder (parquet and card, reviewers
  pseudonymised, free text masked) for `medvl push dataset`.
"""
