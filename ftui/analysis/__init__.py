"""The analysis of evaluated runs: family matrices from eval.json, normalisation, predictions and their
scores, the terminal grid and exported figures. numpy only; Matplotlib is imported by `export.figure_bytes`.

Modules: `matrix` (reading eval.json into per-seed matrices), `normalise` (the two schemes), `predict`
(models, leave-one-out, scores, interference), `view` (what a heatmap shows), `render` (Rich), `export`
(files), `study` (adapters from a Registry and a runs folder), `colours` (the shared colour scales).
"""
