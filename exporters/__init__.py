"""prunegate's artifact side: load models, compress them, export to ONNX, verify the export."""
