"""The archive format, owned in one place.

Record model, DynamoDB JSON, Arrow schema, key layout, Parquet codec, stores
and readers, and the one place that makes AWS clients (``aws``: the region).
Both the archiver and the replayer import it; it imports only the standard
library, pyarrow, orjson, msgspec and, lazily, fsspec/s3fs and boto3 (the two
S3 stores ``store.open_store`` makes, and the clients ``aws`` makes) and pyiceberg (``icebergfiles``: an Iceberg
snapshot's files, for replay; the optional extra ``iceberg``).
"""
