"""Adapters of the core's ports to AWS services (DynamoDB through PynamoDB; S3, SQS, EventBridge, SSM
through boto3). Clients are created lazily and passed in, never at import time."""
