"""Writes src/proto/tensorflow.desc: TensorFlow's own protobuf schemas (GraphDef, MetaGraphDef,
SavedModel and everything they contain) as a FileDescriptorSet, read off the installed
tensorflow package. tf2torch parses text-format graphs (.pbtxt) with it (prost-reflect), so the
field names and enum values are exactly TensorFlow's.

    .venv/bin/python scripts/proto_descriptors.py   # with tensorflow-cpu==2.21.0 installed
"""

import os

from google.protobuf import descriptor_pb2
from tensorflow.core.protobuf import saved_model_pb2

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "proto", "tensorflow.desc")


def add(fd, out, seen):
    """`fd` after its dependencies, each file once (a FileDescriptorSet must be closed)."""
    if fd.name in seen:
        return
    seen.add(fd.name)
    for dep in fd.dependencies:
        add(dep, out, seen)
    proto = descriptor_pb2.FileDescriptorProto()
    fd.CopyToProto(proto)
    out.file.append(proto)


def main():
    out = descriptor_pb2.FileDescriptorSet()
    add(saved_model_pb2.DESCRIPTOR, out, set())
    with open(OUT, "wb") as f:
        f.write(out.SerializeToString(deterministic=True))
    print(f"wrote {OUT}: {len(out.file)} files")


if __name__ == "__main__":
    main()
