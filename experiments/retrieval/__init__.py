"""Music retrieval on the corpus: metrics, theme retrieval, audio matching, shingle search.

Modules (one job each):
  metrics:   P@k, MAP, Top-k accuracy, recall@k on device (JAX, chunked).
  theme:     symbolic theme queries vs audio with subsequence DTW (Zalkow & Müller 2021).
  matching:  audio matching with CENS and tempo-scaled queries (Müller, Kurth, Clausen 2005).
  shingles:  CENS shingles and version identification (Grosche & Müller 2012; Zalkow & Müller 2020).
  index:     nearest-neighbour indexes: brute force (jnp), KD-tree (scipy), HNSW (hnswlib).
"""
