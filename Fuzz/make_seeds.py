#!/usr/bin/env python3
"""Writes the seed inputs of Fuzz/Corpus/<target>/ (run from anywhere; needs only the standard
library, the Tests/Fixtures files and /usr/share/datasets/fashion-mnist for the IDX seeds).

Names: valid-* must parse (FuzzTests checks it), invalid-* must be rejected with an error, and
crash-/timeout-/oom- reproducers must return. The reproducers of faults found so far are written
here too, with a comment on the fault; ones a fuzzer finds later can simply be copied in from
.build-fuzz/artifacts/<target>/ under a descriptive name.
"""
import gzip, json, os, shutil, struct, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "Fuzz", "Corpus")
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures")
FASHION = "/usr/share/datasets/fashion-mnist"


def write(target, name, data):
    path = os.path.join(CORPUS, target, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def safetensors(tensors, metadata=None, pad=True):
    """tensors: name -> (dtype, shape, bytes); packed in name order, header padded to 8 bytes."""
    header, offset, payload = {}, 0, b""
    for name in sorted(tensors):
        dtype, shape, data = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        payload += data
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    if pad:
        text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + payload


def zeros(dtype, shape):
    size = {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "F16": 2, "BF16": 2, "I16": 2, "U8": 1, "I8": 1, "BOOL": 1}[dtype]
    n = 1
    for d in shape:
        n *= d
    return (dtype, shape, bytes(n * size))


def raw_header(text, payload=b""):
    return struct.pack("<Q", len(text)) + text + payload


def seeds_safetensors():
    for name in ["linear_regression_sgd", "mlp_sigmoid_mse_sgd_dampening", "cnn_conv_relu_maxpool_sgd"]:
        shutil.copy(os.path.join(FIXTURES, "parity", name + ".safetensors"),
                    os.path.join(CORPUS, "safetensors", "valid-parity-" + name.replace("_", "-") + ".safetensors"))
    shutil.copy(os.path.join(FIXTURES, "interop", "torch_cnn.safetensors"),
                os.path.join(CORPUS, "safetensors", "valid-interop-torch-cnn.safetensors"))
    write("safetensors", "valid-every-dtype.safetensors", safetensors({
        "f64": ("F64", [2], struct.pack("<2d", 1.5, -2.0)),
        "f32": ("F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)),
        "f16": ("F16", [3], struct.pack("<3H", 0x3C00, 0xC500, 0x0001)),
        "bf16": ("BF16", [2], struct.pack("<2H", 0x3F80, 0xC040)),
        "i64": ("I64", [2], struct.pack("<2q", -(1 << 62), 7)),
        "i32": ("I32", [1, 2], struct.pack("<2i", -5, 5)),
        "i16": ("I16", [2], struct.pack("<2h", -300, 300)),
        "i8": ("I8", [2], struct.pack("<2b", -1, 1)),
        "u8": ("U8", [3], bytes([0, 128, 255])),
        "bool": ("BOOL", [2], bytes([0, 1])),
        "scalar": ("F32", [], struct.pack("<f", 3.25)),
        "empty": ("F32", [0, 4], b""),
    }, metadata={"format": "pt", "note": "every dtype"}))
    write("safetensors", "valid-empty-object.safetensors", raw_header(b"{}      "))
    write("safetensors", "valid-metadata-only.safetensors", safetensors({}, metadata={"epoch": "3"}))
    write("safetensors", "valid-unpadded-header.safetensors", safetensors({"w": zeros("F32", [3])}, pad=False))
    # Found by the seeds themselves: integers() of a float tensor holding inf/NaN, or a value
    # beyond Int64, traps in Int64(Float) (SafeTensor.integers(), Sources/Tensor/SafeTensors.swift).
    write("safetensors", "crash-integers-of-infinite-f16.safetensors",
          safetensors({"w": ("F16", [1], struct.pack("<H", 0x7C00))}))
    write("safetensors", "crash-integers-of-f32-beyond-int64.safetensors",
          safetensors({"w": ("F32", [1], struct.pack("<f", 1e30))}))
    write("safetensors", "invalid-truncated-length.safetensors", b"\x10\x00\x00")
    write("safetensors", "invalid-header-past-end.safetensors", struct.pack("<Q", 1 << 40) + b"{}")
    write("safetensors", "invalid-header-not-json.safetensors", raw_header(b"{not json"))
    write("safetensors", "invalid-offsets-past-data.safetensors",
          raw_header(b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', b"\0" * 4))
    write("safetensors", "invalid-overlapping-tensors.safetensors",
          raw_header(b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                     b'"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', b"\0" * 8))
    write("safetensors", "invalid-unknown-dtype.safetensors",
          raw_header(b'{"w":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}', b"\0" * 8))
    write("safetensors", "invalid-negative-shape.safetensors",
          raw_header(b'{"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}'))
    write("safetensors", "invalid-metadata-not-strings.safetensors",
          raw_header(b'{"__metadata__":{"epoch":3}}'))


def idx(dims, payload):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + bytes(payload)


def seeds_idx():
    with gzip.open(os.path.join(FASHION, "t10k-images-idx3-ubyte.gz")) as f:
        images = f.read(16 + 20 * 28 * 28)[16:]
    with gzip.open(os.path.join(FASHION, "t10k-labels-idx1-ubyte.gz")) as f:
        labels = f.read(8 + 20)[8:]
    write("idx", "valid-fashion-20-images-idx3.gz", gzip.compress(idx([20, 28, 28], images), 9, mtime=0))
    write("idx", "valid-fashion-20-labels-idx1", idx([20], labels))
    write("idx", "valid-fashion-20-labels-idx1.gz", gzip.compress(idx([20], labels), 9, mtime=0))
    write("idx", "valid-two-gzip-members.gz",
          gzip.compress(idx([2, 3], range(6))[:7], mtime=0) + gzip.compress(idx([2, 3], range(6))[7:], mtime=0))
    write("idx", "valid-zero-padded-gzip.gz", gzip.compress(idx([4], [1, 2, 3, 4]), mtime=0) + b"\0" * 16)
    write("idx", "valid-empty-axis-idx2", idx([0, 5], []))
    write("idx", "valid-rank-4-idx4", idx([1, 2, 2, 2], range(8)))
    write("idx", "invalid-truncated-data-idx3", idx([2, 2, 2], range(5)))
    write("idx", "invalid-extra-byte-idx1", idx([2], [1, 2, 3]))
    write("idx", "invalid-float-type-idx1", bytes([0, 0, 0x0D, 1]) + struct.pack(">I", 1) + b"\0" * 4)
    write("idx", "invalid-huge-dimensions-idx3", bytes([0, 0, 8, 3]) + struct.pack(">3I", 0xFFFFFFFF, 0xFFFFFFFF, 2))
    write("idx", "invalid-gzip-claims-too-much.gz", gzip.compress(bytes([0, 0, 8, 1]) + struct.pack(">I", 1 << 29), mtime=0))
    good = gzip.compress(idx([8], range(8)), mtime=0)
    write("idx", "invalid-truncated-gzip.gz", good[:-6])
    write("idx", "invalid-corrupt-gzip.gz", good[:12] + bytes([good[12] ^ 0xFF]) + good[13:])
    write("idx", "invalid-garbage-after-gzip.gz", good + b"junk")
    write("idx", "invalid-not-idx", b"P5\n28 28\n255\n")


def seeds_csv():
    # The first byte selects the options (FuzzEntry.CSVOptions): "0" classification on the last
    # column with a header and commas, "1" regression, "2"/"3" target column 0, "4" semicolons,
    # "8" tabs, "<" bars, "@" no header ("L": bars, no header), 0x80 the target by name.
    write("csv", "valid-classification-last-column.csv",
          b"0sepal,petal,species\n5.1,1.4,setosa\n7.0,4.7,versicolor\n6.3,6.0,virginica\n4.9,1.5,setosa\n")
    write("csv", "valid-regression-last-column.csv", b"1x1,x2,y\n1,2,3.5\n-4e-3,  5 ,6\n1e3,2.5,-7\n")
    write("csv", "valid-classification-first-column-numeric-classes.csv", b"2label,a,b\n10,1,2\n2,3,4\n10,5,6\n")
    write("csv", "valid-regression-first-column-semicolons.csv", b"7y;a;b\r\n1.5;2;3\r\n4;5;6\r\n")
    write("csv", "valid-tabs-quoted-fields.csv", b"8a\tb\t\"the, \"\"class\"\"\"\n1\t2\t\"x\ny\"\n3\t4\tz\n")
    write("csv", "valid-bars-no-header.csv", b"L1|2|a\n3|4|b\n\n5|6|a\n")
    write("csv", "valid-bom-blank-lines-no-final-newline.csv", b"0\xef\xbb\xbfa,b,c\n\n1,2,x\n   \n3,4,y")
    write("csv", "valid-target-by-name.csv", bytes([0x80]) + b"f,g,target\n1,2,a\n3,4,b\n")
    write("csv", "valid-regression-target-by-name-first.csv", bytes([0x83]) + b"price,rooms\n100,3\n250.5,5\n")
    write("csv", "invalid-ragged-row.csv", b"0a,b,c\n1,2\n")
    write("csv", "invalid-unclosed-quote.csv", b"0a,b\n1,\"2\n")
    write("csv", "invalid-not-a-number.csv", b"0a,b,c\n1,nan,x\n2,three,y\n")
    write("csv", "invalid-regression-text-target.csv", b"1a,b\n1,x\n")
    write("csv", "invalid-header-only.csv", b"0a,b,c\n")
    write("csv", "invalid-one-column.csv", b"0c\n1\n2\n")
    write("csv", "invalid-empty.csv", b"0")


SMALL_CNN = {"input_shape": [1, 8, 8], "layers": [
    {"type": "Conv2d", "in": 1, "out": 2, "kernel": 3, "padding": 1}, {"type": "BatchNorm2d", "features": 2},
    {"type": "ReLU"}, {"type": "MaxPool2d", "kernel": 2}, {"type": "Dropout2d", "p": 0.1}, {"type": "Flatten"},
    {"type": "Linear", "in": 32, "out": 3}]}


def seeds_metadata():
    shapes = {"0.weight": [2, 1, 3, 3], "0.bias": [2], "1.weight": [2], "1.bias": [2], "1.running_mean": [2],
              "1.running_var": [2], "6.weight": [3, 32], "6.bias": [3]}
    tensors = {name: zeros("F32", shape) for name, shape in shapes.items()}
    tensors["1.num_batches_tracked"] = zeros("I64", [])
    write("metadata", "valid-kiln-model-small-cnn.safetensors",
          safetensors(tensors, {"kiln_model": json.dumps(SMALL_CNN, separators=(",", ":")), "epoch": "2"}))
    write("metadata", "valid-checkpoint-small-cnn.safetensors", safetensors(tensors, {
        "kiln_model": json.dumps(SMALL_CNN, separators=(",", ":")), "epoch": "2", "step": "30", "epoch_batches": "4",
        "rng_seed": "42", "rng_offset": "1234", "learning_rate": "0.005", "base_learning_rate": "0.01", "optimizer": "adam"}))
    mlp = {"activation": "leaky_relu:0.02", "batchNorm": True, "classes": 3, "dropout": 0.25,
           "hidden": [5], "inputs": 4}
    mlp_tensors = {"0.weight": zeros("F32", [5, 4]), "0.bias": zeros("F32", [5]), "4.weight": zeros("F32", [3, 5]),
                   "4.bias": zeros("F32", [3])}
    for key in ["weight", "bias", "running_mean", "running_var"]:
        mlp_tensors["1." + key] = zeros("F32", [5])
    write("metadata", "valid-kiln-architecture-mlp.safetensors",
          safetensors(mlp_tensors, {"kiln_architecture": json.dumps(mlp, separators=(",", ":"))}))
    with open(os.path.join(FIXTURES, "interop", "torch_cnn.json"), "rb") as f:
        torch_cnn = f.read()
    with open(os.path.join(FIXTURES, "interop", "torch_cnn.safetensors"), "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header["__metadata__"] = {"kiln_model": json.dumps(json.loads(torch_cnn), separators=(",", ":"))}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    write("metadata", "valid-torch-cnn-with-kiln-model.safetensors", struct.pack("<Q", len(text)) + text + data[8 + n:])
    write("metadata", "valid-kiln-architecture-mlp-relu.safetensors", safetensors(
        {"0.weight": zeros("F32", [3, 4]), "0.bias": zeros("F32", [3]), "2.weight": zeros("F32", [2, 3]), "2.bias": zeros("F32", [2])},
        {"kiln_architecture": '{"activation":"relu","batchNorm":false,"classes":2,"dropout":0,"hidden":[3],"inputs":4}'}))
    write("metadata", "valid-torch-cnn-architecture.json", torch_cnn)
    write("metadata", "valid-small-cnn-architecture.json", json.dumps(SMALL_CNN, indent=1).encode())
    write("metadata", "valid-every-layer-type.json", json.dumps({"input_shape": [2, 6, 6], "layers": [
        {"type": "Conv2d", "in": 2, "out": 4, "kernel": [3, 1], "stride": [1, 2], "padding": [1, 0], "dilation": 1, "bias": False},
        {"type": "BatchNorm2d", "features": 4, "eps": 0.001, "momentum": 0.2}, {"type": "LeakyReLU", "slope": 0.1},
        {"type": "AvgPool2d", "kernel": 2, "stride": 1, "padding": 1}, {"type": "MaxPool2d", "kernel": [2, 1]},
        {"type": "AdaptiveAvgPool2d", "output_size": 1}, {"type": "Flatten", "start_dim": 1, "end_dim": -1},
        {"type": "Unflatten", "dim": 1, "shape": [2, 2]}, {"type": "Flatten"}, {"type": "GELU"},
        {"type": "Linear", "in": 4, "out": 6}, {"type": "BatchNorm1d", "features": 6}, {"type": "Sigmoid"},
        {"type": "Tanh"}, {"type": "Dropout", "p": 0.5}, {"type": "Identity"}, {"type": "Softmax"},
        {"type": "LogSoftmax"}]}).encode())
    write("metadata", "valid-mlp-layers-for-mnist.json",
          b'[{"type":"Flatten"},{"type":"Linear","in":784,"out":16},{"type":"ReLU"},{"type":"Linear","in":16,"out":10}]')
    # Found reading Sources/Training/Architecture.swift, confirmed by replay (overflow traps):
    # inputShape(for:) multiplies a huge first "in" by 28 * 28; Flatten and Unflatten multiply
    # extents without overflow checks. The .safetensors variant is a forged model file, which
    # `kiln evaluate`/`predict`/`summary` check the same way before building the model.
    conv_in = b'[{"type":"Conv2d","in":9223372036854775807,"out":1,"kernel":1}]'
    write("metadata", "crash-inputshape-conv-in-overflow.json", conv_in)
    write("metadata", "crash-inputshape-conv-in-overflow-model.safetensors",
          safetensors({"w": zeros("F32", [1])}, {"kiln_model": conv_in.decode()}))
    write("metadata", "crash-flatten-extent-product-overflow.json",
          b'{"input_shape":[16777216,16777216,16777216],"layers":[{"type":"Flatten"}]}')
    write("metadata", "crash-unflatten-shape-product-overflow.json",
          b'{"input_shape":[1,4],"layers":[{"type":"Unflatten","dim":2,"shape":[16777216,16777216,16777216,16777216]}]}')
    write("metadata", "invalid-unknown-layer.json", b'[{"type":"Conv3d","in":1,"out":1}]')
    write("metadata", "invalid-linear-misfit.json", b'{"input_shape":[5],"layers":[{"type":"Linear","in":4,"out":2}]}')
    write("metadata", "invalid-kiln-model-not-json.safetensors", safetensors({}, {"kiln_model": "[{"}))
    write("metadata", "invalid-kiln-architecture-wrong-type.safetensors",
          safetensors({}, {"kiln_architecture": '{"inputs":"four"}'}))
    write("metadata", "invalid-no-architecture.safetensors", safetensors({"w": zeros("F32", [1])}, {"format": "pt"}))


if __name__ == "__main__":
    for target in ["safetensors", "idx", "csv", "metadata"]:
        os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    seeds_safetensors(); seeds_idx(); seeds_csv(); seeds_metadata()
    for target in ["safetensors", "idx", "csv", "metadata"]:
        files = os.listdir(os.path.join(CORPUS, target))
        print(target, len(files), "files,", sum(os.path.getsize(os.path.join(CORPUS, target, f)) for f in files), "bytes")
