"""transfercore driver for S3 object stores."""
