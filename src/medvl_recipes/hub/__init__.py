# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Everything that is published to the Hugging Face Hub, in one place.

- `model_card`: model cards (`README.md` with model-index metadata) of encoder and decoder checkpoints;
- `dataset_card`: the dataset card of a prepared dataset;
- `push`: `medvl push model|dataset|space`, staging, the token scan and the upload.
"""
