"""Stage 2, clip features: the extractors (`extractors`: S3D, ResNet, the course's own S3D-style
network in `course_s3d`, trained by `course_training`), batch extraction into shards (`extract`, the
"extract" stage) and the folder format that holds them (`store`).
"""
