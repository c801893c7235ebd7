"""Pure views (no Gradio, no network): ``result`` (one run: gallery, captions, tables, markdown), ``plots``
(the saliency chart), ``compare`` (two checkpoints), ``dataset_table`` and ``dataset_summary`` (dataset
mode), ``banner`` (what the model knows) and ``exports`` (CSV, JSON, preview JPEGs)."""
