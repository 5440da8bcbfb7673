#!/usr/bin/env python3
"""Reads a folder of TensorBoard event files with TensorBoard's own EventAccumulator and prints
what it found as one JSON object, for TensorBoardTests:

    {"scalars": {TAG: [[STEP, VALUE], ...]},
     "images": {TAG: [{"step", "width", "height", "png": {"width", "height", "channels", "pixels"}}]}}

Each image's PNG is decoded here from its bytes (signature, chunk CRCs, IHDR, zlib-inflated IDAT,
every row filter), with only the standard library; "pixels" is the raw 8-bit data, base64.

Run:  python3 Tests/Fixtures/tools/read_tfevents.py FOLDER
"""
import base64
import json
import struct
import sys
import zlib

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def decode_png(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    offset, chunks = 8, []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind, body = data[offset + 4:offset + 8], data[offset + 8:offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length:offset + 12 + length])
        assert crc == zlib.crc32(kind + body), f"bad CRC in the {kind} chunk"
        chunks.append((kind, body))
        offset += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND", "IHDR must come first and IEND last"
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert depth == 8 and interlace == 0 and colour in (0, 2), (depth, colour, interlace)
    channels = 1 if colour == 0 else 3
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = width * channels
    assert len(raw) == height * (stride + 1), "IDAT holds the wrong number of bytes"
    pixels, previous = bytearray(), bytearray(stride)
    for row in range(height):
        kind, line = raw[row * (stride + 1)], bytearray(raw[row * (stride + 1) + 1:(row + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
            else:
                assert kind == 0, f"unknown row filter {kind}"
        pixels += line
        previous = line
    return {"width": width, "height": height, "channels": channels,
            "pixels": base64.b64encode(bytes(pixels)).decode()}


def main(folder):
    accumulator = EventAccumulator(folder, size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    result = {
        "scalars": {tag: [[e.step, e.value] for e in accumulator.Scalars(tag)] for tag in tags["scalars"]},
        "images": {tag: [{"step": e.step, "width": e.width, "height": e.height,
                          "png": decode_png(e.encoded_image_string)} for e in accumulator.Images(tag)]
                   for tag in tags["images"]},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
