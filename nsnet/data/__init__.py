"""Datasets: the synthetic benchmark, annotation readers, VideoDataset and caches."""
