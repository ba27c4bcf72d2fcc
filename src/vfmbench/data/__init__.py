"""Episode datasets on disk (zarr arrays + a JSON manifest) and their collection."""

from vfmbench.data.episodes import EpisodeDataset, EpisodeWriter
from vfmbench.data.collection import CollectConfig, collect

__all__ = ["CollectConfig", "EpisodeDataset", "EpisodeWriter", "collect"]
