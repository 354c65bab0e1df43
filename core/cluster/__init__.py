"""Beyond one machine (the ``cluster`` extra: Ray Data, pyarrow): embed an archive on a Ray cluster into
Parquet shards (``ray_scan``, ``shards``) and pair and group millions of embeddings out of core (``pairs``,
``large``). Nothing in the local scan or the desktop app imports this package."""
