"""pipelinejobs: the SDK, the CLI and the local stack of the pipeline job lifecycle manager."""
