"""The archive format, owned in one place.

Record model, DynamoDB JSON, Arrow schema, key layout, Parquet codec, stores
and readers. Both the archiver and the replayer import it; it imports only the
standard library, pyarrow, orjson, msgspec and (for S3, lazily) fsspec/s3fs.
"""
