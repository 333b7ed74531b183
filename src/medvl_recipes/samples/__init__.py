# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Tooling for the quickstart and the tests, apart from the adapters that read real data.

- `sample_data`: the embedded sample sources, written in the public datasets' own on-disk formats
  (`medvl sample-data`);
- `phantoms`: the synthetic phantom studies behind them, with known findings and a report grammar;
- `tiny_models`: tiny random SigLIP and Llama-3.2-Vision checkpoints that load like Hub models
  (`medvl tiny-models`).
"""
