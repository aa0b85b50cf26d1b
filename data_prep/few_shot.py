"""Few-shot examples for new questions, as Math-LLaVA chose them: each source's questions embedded
with TF-IDF and clustered by K-Means into 5 groups; a prompt shows one question from each group,
so the examples cover the kinds of question the source asks rather than its most common one.

Clusters are fitted once per source (seeded); each image then draws its examples from (seed,
image), one per cluster, never its own questions when the cluster has others.
"""

from __future__ import annotations

import zlib

import numpy as np

CLUSTERS = 5


def cluster(questions: list[str], k: int = CLUSTERS, seed: int = 0) -> list[np.ndarray]:
  """Indices of `questions` per cluster: k K-Means clusters of their TF-IDF vectors (fewer when
  there are fewer distinct vectors; one when there are no words to embed)."""
  from sklearn.cluster import KMeans
  from sklearn.feature_extraction.text import TfidfVectorizer
  n = len(questions)
  if len(set(questions)) <= 1:
    return [np.arange(n)] if n else []
  try:
    x = TfidfVectorizer().fit_transform(questions)
  except ValueError:  # no word of two letters or more in any question: nothing to embed
    return [np.arange(n)]
  x = x.tocsr()
  x.sort_indices()
  rows = {(tuple(x.indices[a:b]), tuple(np.round(x.data[a:b], 6)))
          for a, b in zip(x.indptr[:-1], x.indptr[1:])}
  k = min(k, len(rows))  # questions differing only in numbers embed alike: fewer clusters
  if k <= 1:
    return [np.arange(n)]
  labels = KMeans(n_clusters=k, random_state=seed, n_init=10).fit_predict(x)
  return [np.flatnonzero(labels == c) for c in range(k) if (labels == c).any()]


class FewShot:
  """Per source: its (question, answer) pairs, their clusters, and a seeded draw per image."""

  def __init__(self, pairs_by_source: dict[str, list[tuple[str, str, str]]], seed: int = 0,
               k: int = CLUSTERS):
    """pairs_by_source: {source: [(image, question, answer)]}."""
    self.seed = seed
    self.pairs = pairs_by_source
    self.clusters = {s: cluster([q for _, q, _ in pairs], k, seed)
                     for s, pairs in pairs_by_source.items()}

  def examples(self, source: str, image: str) -> list[tuple[str, str]]:
    """One (question, answer) from each of the source's clusters, not of `image` if possible."""
    pairs = self.pairs.get(source, [])
    rng = np.random.default_rng([self.seed, zlib.crc32(image.encode())])
    out = []
    for members in self.clusters.get(source, []):
      others = [i for i in members if pairs[i][0] != image]
      if others:
        i = others[int(rng.integers(len(others)))]
        out.append(pairs[i][1:])
    return out
