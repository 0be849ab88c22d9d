"""The shard worker: one Job index's items, uploaded through a pipeline of bounded queues.

Building blocks, each in its own module: pacing (the request/byte limiter with AIMD),
checkpoint (how far a shard got), results (immutable result parts), accounting (one
transfer record per item), progress (lines or a bar), naming (what is sent with a file),
batcher (stream-batch groups).
"""
