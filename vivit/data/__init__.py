"""Video decoding, datasets and annotation lists, clip transforms, the image processor, the synthetic task."""
