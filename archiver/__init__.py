"""Archive DynamoDB Streams changes as Hive-partitioned Parquet."""

__version__ = "0.1.0"
