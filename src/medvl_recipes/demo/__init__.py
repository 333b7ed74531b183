# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""What the Gradio demo (`app.py`, which owns the layout) calls, one module per concern:

- `settings`: `DemoConfig` (flags and `MEDVL_DEMO_*` variables), model/data sources, `demo.launch` arguments;
- `models`: loading the report decoder and the SigLIP encoder (`medvl_recipes.modeling`);
- `cases`: the similar-case index (cached on disk) and the example images;
- `uploads`: what an upload is (by content), size and pixel limits, decoding to RGB;
- `session_files`: the files in Gradio's cache each browser session holds, deleted when it ends, and the uploads
  each request holds (`UploadGuard`), deleted once answered or refused;
- `analysis`: one upload analysed step by step (cases, streamed report, image-report agreement).

Nothing here reads, logs or stores a DICOM file's patient-identifying tags: uploads are decoded to pixels by
`medvl_recipes.imaging`, the uploaded file is deleted from Gradio's cache as soon as its last request has read it
(or was refused), and the images a browser session was shown (preview, thumbnails) are deleted when that session
ends.
"""
