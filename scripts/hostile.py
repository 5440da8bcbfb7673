#!/usr/bin/env python3
"""Hostile-input checks for the `kiln` command-line tool (Python 3 standard library only).

Mutates real model files, checkpoints, data folders, architecture files and command-line flags,
runs `kiln` on each, and reports crashes, hangs, peak memory and invalid input that was accepted.

    python3 scripts/hostile.py --kiln .build/release/kiln [--seed N] [--cases N]
                               [--budget-seconds S] [--out DIR] [--json report.json]

The cases are a deterministic function of --seed: the same seed gives the same inputs, the same
commands and, for a given binary, the same report (apart from timings and memory figures).
The run stops starting cases after --budget-seconds; cases are interleaved across categories,
so a short budget still samples every category.

Categories: model (safetensors model files and checkpoints), data (MNIST-format folders and IDX
files), arch (architecture JSON files), cli (flags and environment), signals (SIGINT, SIGTERM,
double SIGINT, kill -9 during checkpoint writes).

Outcomes, most severe first:
  trap            killed by SIGILL/SIGSEGV/SIGABRT/SIGTRAP/SIGBUS/SIGFPE, or crash text in the output
  hang            ran past its per-case timeout (then killed)
  memory          peak RSS above what the input justifies (--rss-mb, or killed at --rss-cap-mb)
  garbage         exit 0 for a must-reject input
  signal          a signal scenario check failed (exit status, lost log, no resumable checkpoint,
                  a half-written *.safetensors, --resume failing afterwards)
  rejected-valid  non-zero exit for an input that is valid (a must-accept case)
  unclear         non-zero exit, but the message is not one clean line (see message_problems)
  note            worth knowing, not a failure (stale temporary files after kill -9)
  ok              non-zero exit with a clean one-line error, or exit 0 where accepting is allowed

Each case is "must-reject" (the input is invalid: exit 0 is garbage), "may-accept" (the mutation
may leave the input valid, e.g. a flipped float byte: exit 0 is fine) or "must-accept" (a valid
input, e.g. a re-encoded header: it must load).

Exit status: 1 if any trap, hang, memory, garbage, signal or rejected-valid case was found,
2 if the fixtures could not be made, 0 otherwise.
"""

import argparse
import gzip
import io
import json
import math
import os
import random
import re
import shlex
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
import zlib

FASHION = "/usr/share/datasets/fashion-mnist"
FILES = {
    "train-images": "train-images-idx3-ubyte.gz",
    "train-labels": "train-labels-idx1-ubyte.gz",
    "test-images": "t10k-images-idx3-ubyte.gz",
    "test-labels": "t10k-labels-idx1-ubyte.gz",
}
OUTCOMES = ["trap", "hang", "memory", "garbage", "signal", "rejected-valid", "unclear", "note", "ok"]
FAILING = {"trap", "hang", "memory", "garbage", "signal", "rejected-valid"}
TRAP_SIGNALS = {signal.SIGILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGTRAP, signal.SIGBUS,
                signal.SIGFPE, signal.SIGSYS}
CRASH_TEXT = ["Fatal error", "Swift runtime failure", "Illegal instruction", "Segmentation fault",
              "Stack dump", "Program crashed", "Thread 0 crashed", "Current stack trace",
              "Bus error", "Aborted (core dumped)", "core dumped", "Backtrace took"]
BAD_TEXT = ["NSCocoaErrorDomain", "Error Domain=", "The operation could not be completed",
            "_GenericObjCError", "Swift.DecodingError", "DecodingError.", "dataCorrupted(",
            "typeMismatch(", "keyNotFound(", "valueNotFound(", "Optional(", "(null)"]


# --------------------------------------------------------------------------------------------
# Running one process

class Result:
    def __init__(self):
        self.rc = None          # exit status, or None when killed by a signal
        self.sig = None         # the signal that ended it
        self.timed_out = False
        self.mem_killed = False
        self.wall = 0.0
        self.maxrss_kb = 0
        self.stdout = b""
        self.stderr = b""

    @property
    def status(self):
        if self.timed_out:
            return "timeout (killed)"
        if self.mem_killed:
            return "killed at the RSS cap"
        if self.sig is not None:
            try:
                return "signal %s" % signal.Signals(self.sig).name
            except ValueError:
                return "signal %d" % self.sig
        return "exit %d" % self.rc


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def spawn(argv, env=None, cwd=None, stdout_path=None, stderr_path=None):
    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    err = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd,
                                start_new_session=True)
    finally:
        if stdout_path:
            out.close()
        if stderr_path:
            err.close()


def reap(proc, res, timeout, cap_kb, started, on_tick=None, max_delay=0.02):
    """Waits for proc with os.wait4 (its own rusage), killing it past timeout or the RSS cap."""
    delay = 0.001
    last_rss = 0.0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        now = time.monotonic()
        if on_tick is not None:
            on_tick(now - started)
        if now - started > timeout:
            res.timed_out = True
            kill_group(proc)
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        if cap_kb and now - last_rss > 0.05:
            last_rss = now
            if rss_kb(proc.pid) > cap_kb:
                res.mem_killed = True
                kill_group(proc)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
        time.sleep(delay)
        delay = min(delay * 1.5, max_delay)
    proc.returncode = os.waitstatus_to_exitcode(status)
    res.wall = time.monotonic() - started
    res.maxrss_kb = usage.ru_maxrss
    if os.WIFSIGNALED(status):
        res.sig = os.WTERMSIG(status)
    else:
        res.rc = os.WEXITSTATUS(status)
    return res


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        try:
            proc.kill()
        except OSError:
            pass


def run(argv, env=None, timeout=60, cwd=None, cap_kb=None, scratch=None):
    cwd = cwd or scratch
    res = Result()
    fd, out_path = tempfile.mkstemp(prefix="out.", dir=scratch)
    os.close(fd)
    fd, err_path = tempfile.mkstemp(prefix="err.", dir=scratch)
    os.close(fd)
    try:
        started = time.monotonic()
        try:
            proc = spawn(argv, env=env, cwd=cwd, stdout_path=out_path, stderr_path=err_path)
        except OSError as e:
            res.rc = 127
            res.stderr = ("cannot start: %s" % e).encode()
            return res
        reap(proc, res, timeout, cap_kb, started)
        with open(out_path, "rb") as f:
            res.stdout = f.read(1 << 20)
        with open(err_path, "rb") as f:
            res.stderr = f.read(1 << 20)
    finally:
        os.unlink(out_path)
        os.unlink(err_path)
    return res


# --------------------------------------------------------------------------------------------
# Safetensors: a strict reader (the specification's checks) and a writer with raw JSON tokens

ST_SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
            "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "F64": 8, "I64": 8, "U64": 8}


class STError(Exception):
    pass


class NotApplicable(Exception):
    """The mutation does not apply to this file (e.g. no two tensors of the same size)."""


def st_parse(blob):
    """Parses safetensors bytes as the reference implementation does; raises STError."""
    if len(blob) < 8:
        raise STError("shorter than the 8-byte header length")
    n = struct.unpack("<Q", blob[:8])[0]
    if n == 0 or n > len(blob) - 8:
        raise STError("header length %d does not fit the %d-byte file" % (n, len(blob)))
    try:
        text = blob[8:8 + n].decode("utf-8")
    except UnicodeDecodeError:
        raise STError("header is not UTF-8")

    def pairs(items):
        keys = [k for k, _ in items]
        if len(set(keys)) != len(keys):
            raise STError("duplicate keys in the header")
        return dict(items)

    def bad_constant(c):
        raise STError("non-JSON constant %s" % c)

    try:
        header = json.loads(text, object_pairs_hook=pairs, parse_constant=bad_constant)
    except (ValueError, RecursionError) as e:
        raise STError("header is not JSON: %s" % e)
    if not isinstance(header, dict):
        raise STError("header is not an object")
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise STError("__metadata__ is not an object of strings")
    spans = []
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise STError("%s: not {dtype, shape, data_offsets}" % name)
        dtype, shape, offs = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in ST_SIZES:
            raise STError("%s: unknown dtype %r" % (name, dtype))
        if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
            raise STError("%s: bad shape %r" % (name, shape))
        if not isinstance(offs, list) or len(offs) != 2 or not all(type(o) is int and o >= 0 for o in offs):
            raise STError("%s: bad data_offsets %r" % (name, offs))
        if offs[1] < offs[0] or offs[1] - offs[0] != math.prod(shape) * ST_SIZES[dtype]:
            raise STError("%s: data_offsets %r do not hold shape %r of %s" % (name, offs, shape, dtype))
        spans.append((offs[0], offs[1], name))
    spans.sort()
    end = 0
    for b, e, name in spans:
        if b != end:
            raise STError("%s: data_offsets start at %d, expected %d (gap or overlap)" % (name, b, end))
        end = e
    if end != len(blob) - 8 - n:
        raise STError("tensors cover %d data bytes, the file has %d" % (end, len(blob) - 8 - n))
    return header, meta


class Raw(str):
    """A JSON token written as is (1.5, 1e20, -1, NaN, or any text)."""


class Pairs(list):
    """A JSON object as (key, value) pairs, so keys may repeat."""


def enc(v):
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, Pairs):
        return "{" + ",".join(json.dumps(k) + ":" + enc(x) for k, x in v) + "}"
    if isinstance(v, dict):
        return "{" + ",".join(json.dumps(k) + ":" + enc(x) for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(enc(x) for x in v) + "]"
    return json.dumps(v, ensure_ascii=False)


class ST:
    """A parsed safetensors file: ordered header entries, metadata, and each tensor's bytes."""

    def __init__(self, blob):
        header, meta = st_parse(blob)
        n = struct.unpack("<Q", blob[:8])[0]
        data = blob[8 + n:]
        self.meta = dict(meta)
        self.entries = {}   # name -> {"dtype", "shape", "data"} in file order of the header
        for name, e in header.items():
            b, end = e["data_offsets"]
            self.entries[name] = {"dtype": e["dtype"], "shape": list(e["shape"]), "data": data[b:end]}

    def copy(self):
        c = ST.__new__(ST)
        c.meta = dict(self.meta)
        c.entries = {k: dict(v) for k, v in self.entries.items()}
        return c

    def build(self, order=None, pad=8, header_extra=None, meta_first=True, raw_header=None):
        """Bytes of the file: data laid out in `order` (default sorted names), header padded."""
        names = order or sorted(self.entries)
        data = io.BytesIO()
        head = Pairs()
        offsets = {}
        for name in names:
            blob = self.entries[name]["data"]
            offsets[name] = [data.tell(), data.tell() + len(blob)]
            data.write(blob)
        if self.meta and meta_first:
            head.append(("__metadata__", self.meta))
        for name in self.entries:
            e = self.entries[name]
            head.append((name, Pairs([("dtype", e["dtype"]), ("shape", e["shape"]),
                                      ("data_offsets", e.get("offsets", offsets.get(name, [0, 0])))])))
        if self.meta and not meta_first:
            head.append(("__metadata__", self.meta))
        for item in header_extra or []:
            head.append(item)
        text = (raw_header if raw_header is not None else enc(head)).encode("utf-8", "surrogateescape")
        if pad:
            text += b" " * (-len(text) % pad)
        return struct.pack("<Q", len(text)) + text + data.getvalue()


def st_split(blob):
    n = struct.unpack("<Q", blob[:8])[0]
    return n, blob[8:8 + n], blob[8 + n:]


# --------------------------------------------------------------------------------------------
# IDX and gzip

def idx_decode(blob):
    if blob[:2] == b"\x1f\x8b":
        blob = gzip.decompress(blob)
    rank = blob[3]
    dims = list(struct.unpack(">%dI" % rank, blob[4:4 + 4 * rank]))
    return dims, blob[4 + 4 * rank:]


def idx_encode(dims, body, type_byte=0x08, rank=None, magic=b"\x00\x00"):
    rank = len(dims) if rank is None else rank
    return magic + bytes([type_byte, rank & 0xFF]) + b"".join(struct.pack(">I", d & 0xFFFFFFFF) for d in dims) + body


def gz(blob, level=6):
    return gzip.compress(blob, compresslevel=level, mtime=0)


def gz_zeros_member(header, zero_count):
    """A gzip member of `header` then `zero_count` zero bytes, compressed as it goes (a bomb)."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    crc = zlib.crc32(header)
    parts = [b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff", co.compress(header)]
    chunk = bytes(1 << 20)
    left = zero_count
    while left:
        take = min(left, len(chunk))
        piece = chunk if take == len(chunk) else bytes(take)
        parts.append(co.compress(piece))
        crc = zlib.crc32(piece, crc)
        left -= take
    parts.append(co.flush())
    parts.append(struct.pack("<II", crc & 0xFFFFFFFF, (len(header) + zero_count) & 0xFFFFFFFF))
    return b"".join(parts)


# --------------------------------------------------------------------------------------------
# Cases

class Case:
    """One hostile input: `prepare(ctx, dir, rng)` writes its files and returns the argv."""

    def __init__(self, category, kind, desc, policy, prepare, command=None, timeout=None, rss_mb=None,
                 env=None, check=None):
        self.category = category
        self.kind = kind            # the mutation or flag family, used to deduplicate findings
        self.desc = desc
        self.policy = policy        # must-reject, may-accept, must-accept
        self.prepare = prepare      # (ctx, dir, rng) -> dict(argv=[...], env={...}, inputs=[...])
        self.command = command      # the subcommand, for the usage-line check
        self.timeout = timeout
        self.rss_mb = rss_mb
        self.env = env
        self.check = check          # a scenario: (ctx, dir, rng) -> CaseReport fields
        self.id = None


class Ctx:
    def __init__(self, args, work):
        self.args = args
        self.kiln = os.path.abspath(args.kiln)
        self.work = work
        self.fx = os.path.join(work, "fixtures")
        self.scratch = os.path.join(work, "scratch")
        os.makedirs(self.fx, exist_ok=True)
        os.makedirs(self.scratch, exist_ok=True)
        self.env = dict(os.environ)
        if not args.keep_env:
            self.env.pop("KILN_DEVICE", None)
        self.bombs = {}
        self.blobs = {}

    def path(self, *parts):
        return os.path.join(self.fx, *parts)

    def blob(self, name):
        if name not in self.blobs:
            with open(self.path(name), "rb") as f:
                self.blobs[name] = f.read()
        return self.blobs[name]

    def kiln_argv(self, *args):
        return [self.kiln] + [str(a) for a in args]


def small_data(ctx, train=1000, test=300):
    """A small MNIST-format folder re-encoded from the real files (our own IDX + gzip)."""
    folder = ctx.path("data-small")
    os.makedirs(folder, exist_ok=True)
    for key, name in FILES.items():
        with open(os.path.join(ctx.args.data, name), "rb") as f:
            dims, body = idx_decode(f.read())
        count = train if key.startswith("train") else test
        per = math.prod(dims[1:])
        dims = [count] + dims[1:]
        with open(os.path.join(folder, name), "wb") as f:
            f.write(gz(idx_encode(dims, body[:count * per])))
    return folder


def make_fixtures(ctx):
    data = small_data(ctx)
    ctx.data = data
    base = ["--data", data, "--limit", "600", "--test-limit", "200", "--epochs", "2"]
    for name, extra in [("mlp", []), ("cnn", ["--model", "cnn"])]:
        out = ctx.path(name)
        res = run(ctx.kiln_argv("train", *base, "--out", out, *extra), env=ctx.env, timeout=300,
                  scratch=ctx.scratch)
        if res.rc != 0 or not os.path.exists(os.path.join(out, "last.safetensors")):
            raise SystemExit("hostile.py: could not make the %s fixture (%s): %s" % (
                name, res.status, res.stderr.decode("utf-8", "replace")[-2000:]))
        shutil.copy(os.path.join(out, "model.safetensors"), ctx.path(name + "-model.safetensors"))
        shutil.copy(os.path.join(out, "last.safetensors"), ctx.path(name + "-last.safetensors"))
    # Ten test images, gzipped and plain, and one labels file, for predict --images.
    with open(os.path.join(data, FILES["test-images"]), "rb") as f:
        dims, body = idx_decode(f.read())
    ctx.images10 = ctx.path("images10.idx")
    with open(ctx.images10, "wb") as f:
        f.write(idx_encode([10, 28, 28], body[:7840]))
    with open(ctx.path("images10.idx.gz"), "wb") as f:
        f.write(gz(idx_encode([10, 28, 28], body[:7840])))
    ctx.fifo = ctx.path("fifo")
    if not os.path.exists(ctx.fifo):
        os.mkfifo(ctx.fifo)
    ctx.textfile = ctx.path("text.txt")
    with open(ctx.textfile, "w") as f:
        f.write("not a model\n")
    ctx.dir = ctx.path("a-directory")
    os.makedirs(ctx.dir, exist_ok=True)
    for name in ["mlp", "cnn"]:
        for kind in ["model", "last"]:
            ST(ctx.blob("%s-%s.safetensors" % (name, kind)))   # our strict reader accepts Kiln's files


def write(path, blob):
    with open(path, "wb") as f:
        f.write(blob)
    return path


# ---- model files and checkpoints ------------------------------------------------------------

def model_commands(ctx, target, f):
    """The commands run on a mutated file of `target` (mlp-model, cnn-model, mlp-last, cnn-last)."""
    arch, kind = target.split("-")
    data = ["--data", ctx.data]
    if kind == "model":
        return [("evaluate", ["evaluate", "--model", f, *data, "--limit", "100"]),
                ("summary", ["summary", "--model", f]),
                ("predict", ["predict", "--model", f, *data, "--index", "0,1"])]
    extra = ["--model", "cnn"] if arch == "cnn" else []
    # A checkpoint is for --resume (evaluate rejects its optimizer.* tensors by design).
    return [("resume", ["train", "--resume", f, "--epochs", "3", *data, "--limit", "600", "--test-limit", "200",
                        *extra])]


def tensor_names(st, prefix=None, optimizer=None):
    names = sorted(st.entries)
    if optimizer is True:
        names = [n for n in names if n.startswith("optimizer.")]
    elif optimizer is False:
        names = [n for n in names if not n.startswith("optimizer.")]
    return names


def header_mutations():
    """(kind, desc, reject_for, fn(st, blob, rng) -> bytes). reject_for: 'all', 'resume', 'none'
    (may-accept), or 'accept' (must-accept). Checkpoint-only mutations have reject_for 'resume'."""
    M = []

    def add(kind, desc, reject_for, fn, only=None):
        M.append((kind, desc, reject_for, fn, only))

    # Valid re-encodings: must load.
    add("valid-reencode", "header re-serialized, data laid out in reverse name order", "accept",
        lambda st, b, r: st.build(order=sorted(st.entries, reverse=True)))
    add("valid-reencode", "header without padding, metadata last", "accept",
        lambda st, b, r: st.build(pad=0, meta_first=False))
    add("valid-reencode", "header padded with 4096 spaces", "accept",
        lambda st, b, r: (lambda x: struct.pack("<Q", len(x[1]) + 4096) + x[1] + b" " * 4096 + x[2])(st_split(b)))

    # Header length.
    for delta in [-1, 1, -8, 8, -3, 64]:
        add("header-length%+d" % delta, "header length %+d" % delta, "all",
            lambda st, b, r, d=delta: struct.pack("<Q", (st_split(b)[0] + d) % (1 << 64)) + b[8:])
    for value, name in [(0, "0"), (2 ** 63, "2**63"), (2 ** 64 - 1, "2**64-1"), (2 ** 32, "2**32"),
                        (None, "file size"), (None, "file size - 7")]:
        def fn(st, b, r, v=value, name=name):
            if v is None:
                v = len(b) if name == "file size" else len(b) - 7
            return struct.pack("<Q", v) + b[8:]
        add("header-length-forged", "header length = %s" % name, "all", fn)
    add("truncate-header", "file truncated inside the header", "all",
        lambda st, b, r: b[:r.randrange(0, 8 + st_split(b)[0])])
    add("truncate-data", "file truncated inside the data", "all",
        lambda st, b, r: b[:r.randrange(8 + st_split(b)[0], len(b))])
    add("truncate-data", "file missing its last byte", "all", lambda st, b, r: b[:-1])
    add("extra-data", "data section with 1 extra byte", "all", lambda st, b, r: b + b"\x00")
    add("extra-data", "data section with 4096 extra bytes", "all", lambda st, b, r: b + bytes(4096))
    add("empty-file", "empty file", "all", lambda st, b, r: b"")
    add("empty-file", "8 zero bytes", "all", lambda st, b, r: bytes(8))

    # Dtypes.
    for dtype in ["F16", "BF16", "F64", "I64", "U8", "F33", "", "f32", "BOOL"]:
        add("dtype", "a weight's dtype F32 -> %r (offsets unchanged)" % dtype, "all",
            lambda st, b, r, d=dtype: rewrite_entry(st, r, "dtype", d))
    add("dtype-same-size", "a weight's dtype F32 -> I32 (same size)", "none",
        lambda st, b, r: rewrite_entry(st, r, "dtype", "I32"))
    add("dtype-same-size", "a weight's dtype F32 -> U32 (same size)", "none",
        lambda st, b, r: rewrite_entry(st, r, "dtype", "U32"))
    add("dtype-type", "a weight's dtype is the number 7", "all",
        lambda st, b, r: rewrite_entry(st, r, "dtype", Raw("7")))
    add("dtype-type", "a weight's dtype is null", "all",
        lambda st, b, r: rewrite_entry(st, r, "dtype", Raw("null")))

    # Shapes.
    for token in ["1.5", "-1", "1e20", str(2 ** 62), str(2 ** 64), "\"3\"", "null", "true", "NaN", "-0", "1.0"]:
        add("shape-element", "a weight's first dimension is %s" % token, "all",
            lambda st, b, r, t=token: rewrite_shape(st, r, t))
    add("shape-overflow", "shape [2**32, 2**32] (product overflows 64 bits)", "all",
        lambda st, b, r: rewrite_entry(st, r, "shape", [2 ** 32, 2 ** 32]))
    add("shape-overflow", "shape [2**31, 2**31, 4] (offsets unchanged)", "all",
        lambda st, b, r: rewrite_entry(st, r, "shape", [2 ** 31, 2 ** 31, 4]))
    add("shape-rank", "shape of rank 9", "all",
        lambda st, b, r: rewrite_entry(st, r, "shape", [1] * 9))
    add("shape-rank", "shape of rank 300 (all ones)", "all",
        lambda st, b, r: rewrite_entry(st, r, "shape", [1] * 300))
    add("shape-transposed", "a 2-D weight's shape transposed (same size)", "all",
        lambda st, b, r: transpose_weight(st, r))
    add("shape-zero", "a weight's shape [0] with empty data", "all", lambda st, b, r: zero_tensor(st, r))
    add("shape-type", "a weight's shape is a string", "all",
        lambda st, b, r: rewrite_entry(st, r, "shape", "[32]"))
    add("shape-type", "a weight's shape is nested [[32]]", "all",
        lambda st, b, r: rewrite_entry(st, r, "shape", [[32]]))

    # Offsets.
    for token in ["[0.5, 128]", "[-1, 127]", "[0, 1e20]", "[0, %d]" % 2 ** 62, "[0]", "[0, 128, 256]",
                  "[128, 0]", "\"0,128\"", "null", "[0, %d]" % 2 ** 64]:
        add("offsets-forged", "a tensor's data_offsets = %s" % token, "all",
            lambda st, b, r, t=token: rewrite_offsets(st, r, lambda o: Raw(t)))
    add("offsets-overlap", "a tensor's data_offsets shifted 4 bytes back (overlap)", "all",
        lambda st, b, r: rewrite_offsets(st, r, lambda o: [o[0] - 4, o[1] - 4] if o[0] >= 4 else [o[0] + 4, o[1] + 4]))
    add("offsets-gap", "a tensor's data_offsets shifted 4 bytes on (gap)", "all",
        lambda st, b, r: rewrite_offsets(st, r, lambda o: [o[0] + 4, o[1] + 4]))
    add("offsets-beyond", "the last tensor's end moved past the data", "all", lambda st, b, r: offsets_beyond(st))
    add("offsets-swap-same-size", "two same-size tensors' offsets swapped", "none",
        lambda st, b, r: swap_offsets(st, r, same=True))
    add("offsets-swap-other-size", "two different-size tensors' offsets swapped", "all",
        lambda st, b, r: swap_offsets(st, r, same=False))
    add("offsets-all-zero", "every tensor at data_offsets [0, size] (all overlap)", "all",
        lambda st, b, r: all_zero_offsets(st))

    # Header bytes and JSON.
    add("header-utf8", "invalid UTF-8 (0xff 0xfe) in a metadata string", "all",
        lambda st, b, r: header_text_edit(b, lambda t: t.replace(b'"seed":"', b'"seed":"\xff\xfe', 1)))
    add("header-utf8", "overlong UTF-8 (0xc0 0xaf) in a tensor name", "all",
        lambda st, b, r: header_text_edit(b, lambda t: t.replace(b'.weight"', b'.weight\xc0\xaf"', 1)))
    add("header-nul", "NUL byte inside the header JSON", "all",
        lambda st, b, r: header_text_edit(b, lambda t: t.replace(b'{', b'{\x00', 1)))
    add("header-bom", "UTF-8 byte order mark before the header JSON", "all",
        lambda st, b, r: header_text_edit(b, lambda t: b"\xef\xbb\xbf" + t))
    add("header-not-object", "header is a JSON array", "all",
        lambda st, b, r: st.build(raw_header="[" + enc_entries(st) + "]"))
    add("header-not-object", "header is the JSON string \"x\"", "all", lambda st, b, r: st.build(raw_header='"x"'))
    add("header-trailing", "header JSON followed by a second object", "all",
        lambda st, b, r: header_text_edit(b, lambda t: t.rstrip() + b"{}"))
    add("header-deep", "100000-deep nested array in an extra header key", "all",
        lambda st, b, r: st.build(header_extra=[("deep", Raw("[" * 100000 + "]" * 100000))]))
    add("header-deep", "100000-deep nested object in __metadata__", "all",
        lambda st, b, r: st.build(raw_header='{"__metadata__":' + '{"a":' * 100000 + '"x"' + "}" * 100000 + "}"))
    add("header-deep", "unterminated 1000000-deep array as the header", "all",
        lambda st, b, r: st.build(raw_header="[" * 1000000))
    add("duplicate-key-different", "a tensor name repeated with other offsets", "all",
        lambda st, b, r: duplicate_key(st, r, same=False))
    add("duplicate-key-same", "a tensor entry repeated identically", "none",
        lambda st, b, r: duplicate_key(st, r, same=True))
    add("duplicate-metadata", "__metadata__ given twice", "none",
        lambda st, b, r: st.build(header_extra=[("__metadata__", st.meta)]))
    add("entry-extra-field", "a tensor entry with an extra field", "none",
        lambda st, b, r: rewrite_entry(st, r, "extra", 1))
    add("entry-missing-field", "a tensor entry without dtype", "all", lambda st, b, r: drop_field(st, r, "dtype"))
    add("entry-missing-field", "a tensor entry without shape", "all", lambda st, b, r: drop_field(st, r, "shape"))
    add("entry-missing-field", "a tensor entry without data_offsets", "all",
        lambda st, b, r: drop_field(st, r, "data_offsets"))
    add("metadata-type", "__metadata__ is a number", "all",
        lambda st, b, r: st.build(raw_header=enc(Pairs([("__metadata__", Raw("5"))])) [:-1] + "," + enc_entries(st) + "}"))
    add("metadata-type", "a metadata value is a number, not a string", "all",
        lambda st, b, r: meta_raw(st, "seed", Raw("0")))
    add("tensor-unexpected", "an extra tensor 'bogus.weight'", "all", lambda st, b, r: extra_tensor(st))
    add("tensor-missing", "a model tensor removed", "all", lambda st, b, r: remove_tensor(st, r, optimizer=False))
    add("tensor-missing-nbt", "a BatchNorm num_batches_tracked removed (PyTorch tolerates this)", "none",
        lambda st, b, r: remove_tensor(st, r, optimizer=False, nbt=True), only="cnn-model")
    add("tensor-renamed", "a model tensor renamed (\"0.weight\" -> \"0.Weight\")", "all",
        lambda st, b, r: rename_tensor(st, r))
    add("header-flip", "random bytes of the header flipped", "classify", None)
    add("data-flip", "random bytes of the data flipped", "none", None)
    add("data-nan", "a weight filled with NaN", "none", lambda st, b, r: fill(st, r, float("nan")))
    add("data-inf", "a weight filled with +inf", "none", lambda st, b, r: fill(st, r, float("inf")))
    add("metadata-removed", "__metadata__ removed", "none", lambda st, b, r: drop_meta(st, None))

    # The architecture in the metadata.
    for desc, arch in KILN_MODEL_BAD:
        add("kiln_model", "kiln_model " + desc, "all", lambda st, b, r, a=arch: meta_set(st, "kiln_model", a))
    add("kiln_model-huge", "kiln_model with Linear(784, 30000), Linear(30000, 30000), Linear(30000, 10)", "all",
        lambda st, b, r: meta_set(st, "kiln_model", json.dumps({"input_shape": [784], "layers": [
            {"type": "Linear", "in": 784, "out": 30000}, {"type": "ReLU"},
            {"type": "Linear", "in": 30000, "out": 30000}, {"type": "ReLU"},
            {"type": "Linear", "in": 30000, "out": 10}]})))

    # Checkpoint state: only resuming must reject these.
    for key in ["epoch", "step"]:
        for value in ["-1", "NaN", "1e30", str(2 ** 63), "9223372036854775807", "abc", "", "1.5", " 2", "0x2"]:
            add("ckpt-" + key, "%s = %r" % (key, value), "resume",
                lambda st, b, r, k=key, v=value: meta_set(st, k, v), only="last")
        add("ckpt-" + key, "%s removed" % key, "resume", lambda st, b, r, k=key: drop_meta(st, k), only="last")
    for value in ["-1", "NaN", "inf", "-inf", "0", "abc", "", "1e39"]:
        add("ckpt-learning_rate", "learning_rate = %r" % value, "resume" if value != "0" else "none",
            lambda st, b, r, v=value: meta_set(st, "learning_rate", v), only="last")
    for key in ["rng_seed", "rng_offset"]:
        for value in ["-1", "abc", "1.5", "1e30", "18446744073709551616", "", "NaN"]:
            add("ckpt-rng", "%s = %r" % (key, value), "resume",
                lambda st, b, r, k=key, v=value: meta_set(st, k, v), only="last")
    for value in ["NaN", "abc", "", "inf"]:
        add("ckpt-best", "model_checkpoint_best = %r" % value, "resume",
            lambda st, b, r, v=value: meta_set(st, "model_checkpoint_best", v), only="last")
    add("ckpt-optimizer-missing", "every optimizer.* tensor removed", "resume",
        lambda st, b, r: remove_optimizer(st, r, everything=True), only="last")
    add("ckpt-optimizer-partial", "one optimizer.* tensor removed", "resume",
        lambda st, b, r: remove_tensor(st, r, optimizer=True), only="last")
    add("ckpt-optimizer-partial", "one parameter's optimizer state removed", "resume",
        lambda st, b, r: remove_optimizer(st, r, everything=False), only="last")
    add("ckpt-optimizer-shape", "an optimizer.*.exp_avg with another shape", "resume",
        lambda st, b, r: reshape_optimizer(st, r), only="last")
    add("ckpt-optimizer-extra", "an extra optimizer.state.999.exp_avg", "resume",
        lambda st, b, r: extra_tensor(st, "optimizer.state.999.exp_avg"), only="last")
    add("ckpt-optimizer-step", "an optimizer step = -5", "resume",
        lambda st, b, r: fill(st, r, -5.0, suffix=".step"), only="last")
    add("ckpt-optimizer-step", "an optimizer step = NaN", "resume",
        lambda st, b, r: fill(st, r, float("nan"), suffix=".step"), only="last")
    return M


KILN_MODEL_BAD = [
    ("not JSON", "{not json"),
    ("empty string", ""),
    ("JSON null", "null"),
    ("empty layer list", json.dumps({"input_shape": [784], "layers": []})),
    ("an unknown layer type", json.dumps({"input_shape": [784], "layers": [{"type": "Bogus"}]})),
    ("Linear in=-1", json.dumps({"input_shape": [784], "layers": [{"type": "Linear", "in": -1, "out": 10}]})),
    ("Linear in=1.5", '{"input_shape":[784],"layers":[{"type":"Linear","in":1.5,"out":10}]}'),
    ("Linear in=1e20", '{"input_shape":[784],"layers":[{"type":"Linear","in":1e20,"out":10}]}'),
    ("input_shape [0]", json.dumps({"input_shape": [0], "layers": [{"type": "Linear", "in": 784, "out": 10}]})),
    ("input_shape [-784]", json.dumps({"input_shape": [-784], "layers": [{"type": "Linear", "in": 784, "out": 10}]})),
    ("another architecture (Linear 784-10)", json.dumps({"input_shape": [784], "layers": [
        {"type": "Linear", "in": 784, "out": 10}]})),
    ("100000-deep nesting", '{"layers":' + "[" * 100000 + "]" * 100000 + "}"),
    ("Conv2d kernel 0", json.dumps({"input_shape": [1, 28, 28], "layers": [
        {"type": "Conv2d", "in": 1, "out": 4, "kernel": 0}]})),
]


def rewrite_entry(st, r, field, value, optimizer=False):
    st = st.copy()
    name = r.choice(tensor_names(st, optimizer=optimizer))
    layout = {n: None for n in st.entries}
    names = sorted(st.entries)
    offs = {}
    pos = 0
    for n in names:
        offs[n] = [pos, pos + len(st.entries[n]["data"])]
        pos += len(st.entries[n]["data"])
    for n in st.entries:
        st.entries[n]["offsets"] = offs[n]
    if field == "extra":
        st.entries[name]["extra"] = value
        head = Pairs()
        if st.meta:
            head.append(("__metadata__", st.meta))
        for n, e in st.entries.items():
            fields = [("dtype", e["dtype"]), ("shape", e["shape"]), ("data_offsets", e["offsets"])]
            if "extra" in e:
                fields.append(("extra", e["extra"]))
            head.append((n, Pairs(fields)))
        return st.build(raw_header=enc(head))
    st.entries[name][field] = value
    return st.build()


def rewrite_shape(st, r, token):
    st = st.copy()
    name = r.choice([n for n in tensor_names(st, optimizer=False) if st.entries[n]["shape"]])
    st.entries[name]["shape"] = [Raw(token)] + st.entries[name]["shape"][1:]
    return with_offsets(st)


def with_offsets(st, order=None):
    pos = 0
    for n in order or sorted(st.entries):
        if "offsets" not in st.entries[n]:
            st.entries[n]["offsets"] = [pos, pos + len(st.entries[n]["data"])]
        pos += len(st.entries[n]["data"])
    return st.build()


def transpose_weight(st, r):
    st = st.copy()
    names = [n for n in tensor_names(st, optimizer=False)
             if len(st.entries[n]["shape"]) == 2 and st.entries[n]["shape"][0] != st.entries[n]["shape"][1]]
    name = r.choice(names)
    st.entries[name]["shape"] = st.entries[name]["shape"][::-1]
    return st.build()


def zero_tensor(st, r):
    st = st.copy()
    name = r.choice(tensor_names(st, optimizer=False))
    st.entries[name]["shape"] = [0]
    st.entries[name]["data"] = b""
    return st.build()


def packed(st):
    """A copy of `st` whose tensors are laid out back to back in name order, and those names."""
    st = st.copy()
    names = sorted(st.entries)
    pos = 0
    for n in names:
        st.entries[n]["offsets"] = [pos, pos + len(st.entries[n]["data"])]
        pos += len(st.entries[n]["data"])
    return st, names


def rewrite_offsets(st, r, change):
    st, names = packed(st)
    name = r.choice(names[1:])
    st.entries[name]["offsets"] = change(st.entries[name]["offsets"])
    return st.build()


def offsets_beyond(st):
    st, names = packed(st)
    last = names[-1]
    b, e = st.entries[last]["offsets"]
    st.entries[last]["offsets"] = [b + 1024, e + 1024]
    return st.build()


def swap_offsets(st, r, same):
    st, names = packed(st)
    size = {n: len(st.entries[n]["data"]) for n in names}
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]
             if (size[a] == size[b]) == same and st.entries[a]["dtype"] == st.entries[b]["dtype"] and a != b]
    if not pairs:
        raise NotApplicable("no two tensors fit")
    a, b = r.choice(pairs)
    st.entries[a]["offsets"], st.entries[b]["offsets"] = st.entries[b]["offsets"], st.entries[a]["offsets"]
    return st.build()


def all_zero_offsets(st):
    st = st.copy()
    for n, e in st.entries.items():
        e["offsets"] = [0, len(e["data"])]
    return st.build()


def header_text_edit(blob, edit):
    n, head, data = st_split(blob)
    head = edit(head.rstrip(b" "))
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + data


def enc_entries(st):
    items = []
    pos = 0
    for n in sorted(st.entries):
        e = st.entries[n]
        items.append(json.dumps(n) + ":" + enc(Pairs([("dtype", e["dtype"]), ("shape", e["shape"]),
                                                       ("data_offsets", [pos, pos + len(e["data"])])])))
        pos += len(e["data"])
    return ",".join(items)


def duplicate_key(st, r, same):
    st, names = packed(st)
    name = r.choice(tensor_names(st, optimizer=False))
    e = st.entries[name]
    if same:
        offs = e["offsets"]
    else:
        other = r.choice([n for n in names if len(st.entries[n]["data"]) == len(e["data"]) and n != name] or
                         [names[0]])
        offs = st.entries[other]["offsets"]
    extra = [(name, Pairs([("dtype", e["dtype"]), ("shape", e["shape"]), ("data_offsets", offs)]))]
    return st.build(header_extra=extra)


def drop_field(st, r, field):
    st = st.copy()
    names = sorted(st.entries)
    pos = 0
    head = Pairs()
    if st.meta:
        head.append(("__metadata__", st.meta))
    victim = r.choice(tensor_names(st, optimizer=False))
    for n in names:
        e = st.entries[n]
        fields = [("dtype", e["dtype"]), ("shape", e["shape"]), ("data_offsets", [pos, pos + len(e["data"])])]
        pos += len(e["data"])
        if n == victim:
            fields = [f for f in fields if f[0] != field]
        head.append((n, Pairs(fields)))
    return st.build(raw_header=enc(head))


def meta_raw(st, key, token):
    st = st.copy()
    meta = Pairs((k, (token if k == key else v)) for k, v in st.meta.items())
    st.meta = {}
    return st.build(header_extra=[("__metadata__", meta)])


def meta_set(st, key, value):
    st = st.copy()
    st.meta[key] = value
    return st.build()


def drop_meta(st, key):
    st = st.copy()
    if key is None:
        st.meta = {}
    else:
        st.meta.pop(key, None)
    return st.build()


def extra_tensor(st, name="bogus.weight"):
    st = st.copy()
    st.entries[name] = {"dtype": "F32", "shape": [4], "data": struct.pack("<4f", 1, 2, 3, 4)}
    return st.build()


def remove_tensor(st, r, optimizer, nbt=False):
    st = st.copy()
    names = [n for n in tensor_names(st, optimizer=optimizer) if n.endswith("num_batches_tracked") == nbt]
    if not names:
        raise ValueError("no such tensor in this file")
    del st.entries[r.choice(names)]
    return st.build()


def rename_tensor(st, r):
    st = st.copy()
    name = r.choice([n for n in tensor_names(st, optimizer=False) if n.endswith(".weight")])
    e = st.entries.pop(name)
    st.entries[name[:-len("weight")] + "Weight"] = e
    return st.build()


def remove_optimizer(st, r, everything):
    st = st.copy()
    names = tensor_names(st, optimizer=True)
    if everything:
        for n in names:
            del st.entries[n]
    else:
        index = r.choice(sorted({n.split(".")[2] for n in names}))
        for n in names:
            if n.split(".")[2] == index:
                del st.entries[n]
    return st.build()


def reshape_optimizer(st, r):
    st = st.copy()
    name = r.choice([n for n in tensor_names(st, optimizer=True) if n.endswith(".exp_avg")])
    e = st.entries[name]
    e["shape"] = [len(e["data"]) // 4 + 1]
    e["data"] = e["data"] + bytes(4)
    return st.build()


def fill(st, r, value, suffix=None):
    st = st.copy()
    names = [n for n in tensor_names(st, optimizer=suffix is not None)
             if st.entries[n]["dtype"] == "F32" and (suffix is None or n.endswith(suffix))]
    name = r.choice(names)
    e = st.entries[name]
    e["data"] = struct.pack("<f", value) * (len(e["data"]) // 4)
    return st.build()


def flip_bytes(blob, lo, hi, r, count):
    b = bytearray(blob)
    for _ in range(count):
        if hi <= lo:
            break
        i = r.randrange(lo, hi)
        b[i] ^= 1 << r.randrange(8) if r.random() < 0.7 else r.randrange(1, 256)
    return bytes(b)


def classify_header(orig, blob):
    """'all' when the flipped header no longer parses or changes a tensor entry, else 'none'."""
    try:
        h1, _ = st_parse(orig)
        h2, _ = st_parse(blob)
    except STError:
        return "all"
    return "none" if h1 == h2 else "all"


def model_cases(ctx, rng):
    cases = []
    targets = ["mlp-model", "cnn-model", "mlp-last", "cnn-last"]
    for kind, desc, reject_for, fn, only in header_mutations():
        for target in targets:
            arch, tkind = target.split("-")
            if only and only not in (tkind, target):
                continue
            if tkind == "last" and arch == "cnn" and kind not in (
                    "valid-reencode", "header-length-1", "truncate-data", "extra-data", "offsets-gap",
                    "ckpt-optimizer-partial", "ckpt-optimizer-shape", "ckpt-optimizer-missing"):
                continue   # CNN resumes are slow: the MLP checkpoint gets everything, the CNN a sample
            if arch == "cnn" and tkind == "model" and kind.startswith(("shape-element", "offsets-forged", "dtype")):
                continue   # the MLP covers these; the CNN file adds the conv and batch-norm tensors
            repeats = 3 if kind in ("header-flip", "data-flip", "truncate-header", "truncate-data") else 1
            if tkind == "last" and arch == "cnn":
                repeats = 1
            for rep in range(repeats):
                commands = model_commands(ctx, target, "@FILE")
                # One command per mutation and target (rotating), plus resume for checkpoints.
                pick = [commands[(len(cases) + rep) % len(commands)]]
                for cmd, argv in pick:
                    rf = reject_for
                    if rf == "resume":
                        rf = "all" if cmd == "resume" else "none"
                    if kind.startswith("kiln_model") and tkind == "last":
                        rf = "none"   # --resume takes the architecture from the flags, not the file
                    cases.append(make_model_case(ctx, kind, "%s: %s" % (target, desc), rf, fn, target, cmd, argv))
    return cases


def make_model_case(ctx, kind, desc, reject_for, fn, target, cmd, argv):
    def prepare(ctx, d, r):
        orig = ctx.blob(target + ".safetensors")
        st = ST(orig)
        policy = {"all": "must-reject", "none": "may-accept", "accept": "must-accept"}.get(reject_for)
        if kind == "header-flip":
            n = struct.unpack("<Q", orig[:8])[0]
            blob = flip_bytes(orig, 8, 8 + n, r, r.choice([1, 1, 2, 4]))
            policy = "must-reject" if classify_header(orig, blob) == "all" else "may-accept"
        elif kind == "data-flip":
            n = struct.unpack("<Q", orig[:8])[0]
            blob = flip_bytes(orig, 8 + n, len(orig), r, r.choice([1, 8, 64]))
        else:
            blob = fn(st, orig, r)
        f = write(os.path.join(d, os.path.basename(target) + ".safetensors"), blob)
        out = os.path.join(d, "run")
        a = [x if x != "@FILE" else f for x in argv]
        if cmd == "resume":
            a += ["--out", out]
        return {"argv": ctx.kiln_argv(*a), "inputs": [f], "policy": policy}
    command = "train" if cmd == "resume" else cmd
    return Case("model", kind + " [" + cmd + "]", desc, reject_for, prepare, command=command)


# ---- data folders -----------------------------------------------------------------------------

def data_mutations():
    """(kind, desc, target file key or None, fn(dims, body, rng) -> bytes or special)."""
    M = []

    def add(kind, desc, target, fn, policy="must-reject", timeout=None):
        M.append((kind, desc, target, fn, policy, timeout))

    for target in ["train-images", "train-labels", "test-images", "test-labels"]:
        add("bad-magic", "magic 01 02", target, lambda d, b, r: gz(b"\x01\x02" + idx_encode(d, b)[2:]))
        add("bad-magic", "magic ff ff", target, lambda d, b, r: gz(b"\xff\xff" + idx_encode(d, b)[2:]))
        for t in [0x09, 0x0B, 0x0D, 0x0E, 0xFF, 0x00]:
            add("type-byte", "type byte 0x%02X" % t, target, lambda d, b, r, t=t: gz(idx_encode(d, b, type_byte=t)))
        for rank in [0, 255, 1 if len_is_images(target) else 2, 4]:
            add("rank", "rank byte %d (dimensions unchanged)" % rank, target,
                lambda d, b, r, k=rank: gz(idx_encode(d, b, rank=k)))
        add("count+1", "first dimension + 1 (data one sample short)", target,
            lambda d, b, r: gz(idx_encode([d[0] + 1] + d[1:], b)))
        add("count-1", "first dimension - 1 (one sample of trailing data)", target,
            lambda d, b, r: gz(idx_encode([d[0] - 1] + d[1:], b)))
        add("count-0", "first dimension 0 (all data trailing)", target,
            lambda d, b, r: gz(idx_encode([0] + d[1:], b)))
        add("count-huge", "first dimension 4294967295", target,
            lambda d, b, r: gz(idx_encode([0xFFFFFFFF] + d[1:], b)))
        add("truncated-gzip", "gzip cut at a random point", target, lambda d, b, r: cut(gz(idx_encode(d, b)), r))
        add("truncated-gzip", "gzip missing its 8-byte trailer", target, lambda d, b, r: gz(idx_encode(d, b))[:-8])
        add("gzip-crc", "gzip trailer CRC wrong", target, lambda d, b, r: bad_crc(gz(idx_encode(d, b))))
        add("gzip-isize", "gzip trailer length wrong", target, lambda d, b, r: bad_isize(gz(idx_encode(d, b))))
        add("garbage-gzip", "gzip magic then random bytes", target,
            lambda d, b, r: b"\x1f\x8b\x08\x00" + bytes(r.randrange(256) for _ in range(4096)))
        add("garbage-gzip", "deflate stream with flipped bytes", target,
            lambda d, b, r: flip_bytes(gz(idx_encode(d, b)), 10, len(gz(idx_encode(d, b))) - 8, r, 3))
        add("concatenated-members", "IDX split over two gzip members", target,
            lambda d, b, r: (lambda x: gz(x[:len(x) // 2]) + gz(x[len(x) // 2:]))(idx_encode(d, b)),
            policy="must-accept")
        add("concatenated-members", "a second gzip member of 100 extra bytes", target,
            lambda d, b, r: gz(idx_encode(d, b)) + gz(bytes(100)))
        add("concatenated-members", "garbage after the gzip member", target,
            lambda d, b, r: gz(idx_encode(d, b)) + b"garbage!" * 8)
        add("plain-idx", "plain (not gzipped) IDX under the .gz name", target,
            lambda d, b, r: idx_encode(d, b), policy="may-accept")
        add("empty-file", "empty file", target, lambda d, b, r: b"")
        add("empty-file", "a gzip of nothing", target, lambda d, b, r: gz(b""))
        add("header-only", "the IDX header only", target, lambda d, b, r: gz(idx_encode(d, b"")))
        add("truncated-idx", "decompressed IDX cut inside the header", target,
            lambda d, b, r: gz(idx_encode(d, b)[:r.randrange(1, 4 + 4 * len(d))]))
        add("directory", "a directory in place of the file", target, "DIR")
        add("fifo", "a FIFO in place of the file", target, "FIFO", timeout=20)
        add("dev-zero", "a symlink to /dev/zero in place of the file", target, "/dev/zero", timeout=20)
        add("dev-null", "a symlink to /dev/null in place of the file", target, "/dev/null")
        add("dangling-symlink", "a dangling symlink in place of the file", target, "DANGLING")
        add("missing", "the file removed", target, "MISSING")
    for target in ["train-labels", "test-labels"]:
        for v in [10, 11, 255]:
            add("label-range", "one label = %d" % v, target,
                lambda d, b, r, v=v: gz(idx_encode(d, set_byte(b, r.randrange(len(b)), v))))
        add("label-range", "every label = 255", target, lambda d, b, r: gz(idx_encode(d, bytes([255]) * len(b))))
    for target in ["train-images", "test-images"]:
        add("dims-forged", "dimensions [N, 29, 27] (data short)", target,
            lambda d, b, r: gz(idx_encode([d[0], 29, 27], b)))
        add("dims-reshaped", "dimensions [N, 14, 56] (same bytes, other image shape)", target,
            lambda d, b, r: gz(idx_encode([d[0], 14, 56], b)), policy="may-accept")
        add("dims-forged", "dimensions [N, 65536, 65536] with the real data", target,
            lambda d, b, r: gz(idx_encode([d[0], 65536, 65536], b)))
        add("dims-forged", "dimensions [2**31, 2**31, 2**31] (product overflows)", target,
            lambda d, b, r: gz(idx_encode([2 ** 31, 2 ** 31, 2 ** 31], b)))
        add("zip-bomb", "one 32768x32768 image of zeros (1 GiB) in a ~1 MB gzip member", target,
            lambda d, b, r: gz_zeros_member(idx_encode([1, 32768, 32768], b""), 32768 * 32768))
        add("zip-bomb", "N 28x28 images followed by 1 GiB of zeros in the gzip stream", target,
            lambda d, b, r: gz_zeros_member(idx_encode(d, b), 1 << 30))
        add("pixels-random", "random pixel values", target,
            lambda d, b, r: gz(idx_encode(d, bytes(r.randrange(256) for _ in range(len(b))))), policy="may-accept")
    add("count-mismatch", "train labels hold one fewer than the images (labels file)", "train-labels",
        lambda d, b, r: gz(idx_encode([d[0] - 1], b[:-1])))
    add("count-mismatch", "test images hold one fewer than the labels (images file)", "test-images",
        lambda d, b, r: gz(idx_encode([d[0] - 1] + d[1:], b[:-784])))
    add("labels-as-images", "the labels file in place of the images", "train-images", "SWAP")
    add("valid-copy", "unmodified re-encoded data", None, lambda d, b, r: None, policy="must-accept")
    add("valid-plain", "all four files plain IDX (not gzipped) under names without .gz", None, "PLAIN",
        policy="must-accept")
    return M


def len_is_images(target):
    return target.endswith("images")


def set_byte(b, i, v):
    b = bytearray(b)
    b[i] = v
    return bytes(b)


def cut(blob, r):
    return blob[:r.randrange(10, len(blob) - 1)]


def bad_crc(blob):
    b = bytearray(blob)
    b[-8] ^= 0xFF
    return bytes(b)


def bad_isize(blob):
    b = bytearray(blob)
    b[-4] ^= 0x01
    return bytes(b)


def data_cases(ctx, rng):
    cases = []
    for kind, desc, target, fn, policy, timeout in data_mutations():
        commands = []
        if target is None or target.startswith("train"):
            commands.append("train")
        if target is None or target.startswith("test"):
            commands.append("evaluate")   # train reads the test files the same way
        if target == "test-images" and kind in ("zip-bomb", "dims-forged", "fifo", "dev-zero", "type-byte",
                                                "truncated-gzip", "count+1", "empty-file", "directory"):
            commands.append("predict-images")
        for cmd in dict.fromkeys(commands):
            cases.append(make_data_case(ctx, kind, desc, target, fn, policy, timeout, cmd))
    return cases


def make_data_case(ctx, kind, desc, target, fn, policy, timeout, cmd):
    def prepare(ctx, d, r):
        folder = os.path.join(d, "data")
        os.makedirs(folder)
        for key, name in FILES.items():
            shutil.copy(os.path.join(ctx.data, name), os.path.join(folder, name))
        inputs = [folder]
        if fn == "PLAIN":
            for key, name in FILES.items():
                p = os.path.join(folder, name)
                with open(p, "rb") as f:
                    blob = gzip.decompress(f.read())
                os.unlink(p)
                write(p[:-3], blob)
        elif target is not None:
            p = os.path.join(folder, FILES[target])
            os.unlink(p)
            if fn == "DIR":
                os.mkdir(p)
            elif fn == "FIFO":
                os.mkfifo(p)
            elif fn == "DANGLING":
                os.symlink(os.path.join(d, "nowhere"), p)
            elif fn == "MISSING":
                pass
            elif fn == "SWAP":
                shutil.copy(os.path.join(ctx.data, FILES["train-labels"]), p)
            elif isinstance(fn, str):
                os.symlink(fn, p)
            else:
                with open(os.path.join(ctx.data, FILES[target]), "rb") as f:
                    dims, body = idx_decode(f.read())
                write(p, fn(dims, body, r))
        out = os.path.join(d, "run")
        if cmd == "train":
            argv = ["train", "--data", folder, "--epochs", "1", "--limit", "600", "--test-limit", "200", "--out", out]
        elif cmd == "evaluate":
            argv = ["evaluate", "--model", ctx.path("mlp-model.safetensors"), "--data", folder, "--limit", "100"]
        else:
            argv = ["predict", "--model", ctx.path("mlp-model.safetensors"), "--images",
                    os.path.join(folder, FILES[target])]
        return {"argv": ctx.kiln_argv(*argv), "inputs": inputs}
    command = "predict" if cmd == "predict-images" else cmd
    return Case("data", kind + " [" + cmd + "]", "%s: %s" % (target or "all files", desc), policy, prepare,
                command=command, timeout=timeout)


# ---- architecture files ------------------------------------------------------------------------

README_CNN = [{"type": "Conv2d", "in": 1, "out": 12, "kernel": 5, "stride": 2, "padding": 2}, {"type": "ReLU"},
              {"type": "Flatten"}, {"type": "Linear", "in": 2352, "out": 10}]


def L(**kw):
    return kw


def arch_inputs():
    """(kind, desc, JSON text, policy, train too?)."""
    A = []

    def add(kind, desc, text, policy="must-reject", train=True):
        A.append((kind, desc, text if isinstance(text, str) else json.dumps(text), policy, train))

    add("valid", "README example (Conv2d 5x5 stride 2, Linear 2352-10)", README_CNN, "must-accept")
    add("valid", "object with layers, a single Linear", {"layers": [L(type="Linear", **{"in": 784, "out": 10})]},
        "must-accept")
    add("valid", "BOM before the JSON", "\ufeff" + json.dumps(README_CNN), "may-accept")
    add("empty", "[]", "[]")
    add("empty", "{}", "{}")
    add("empty", "{\"layers\": []}", "{\"layers\": []}")
    add("empty", "empty file", "")
    add("type", "null", "null")
    add("type", "[null]", "[null]")
    add("type", "a string", "\"Linear\"")
    add("type", "layers is a string", {"layers": "Linear"})
    add("type", "a layer without type", [L(**{"in": 784, "out": 10})])
    add("type", "type is a number", [L(type=5)])
    add("type", "an unknown type", [L(type="Transformer")])
    add("type", "type \"linear\" (lower case)", [L(type="linear", **{"in": 784, "out": 10})], "may-accept")
    for field, token in [("in", "-1"), ("in", "0"), ("in", "1.5"), ("in", "1e20"), ("in", "\"784\""),
                         ("in", str(2 ** 62)), ("in", str(2 ** 64)), ("out", "0"), ("out", "-10"),
                         ("in", "null"), ("in", "true"), ("in", "NaN")]:
        text = '[{"type":"Linear","in":%s,"out":10}]' % token if field == "in" else \
            '[{"type":"Linear","in":784,"out":%s}]' % token
        add("linear-" + field, "Linear %s=%s" % (field, token), text)
    add("chain", "Linear(100, 10) on 784 inputs", [L(type="Linear", **{"in": 100, "out": 10})])
    add("chain", "Linear 784-64 then Linear 32-10", [L(type="Linear", **{"in": 784, "out": 64}),
                                                    L(type="Linear", **{"in": 32, "out": 10})])
    add("chain", "output of 7 classes for 10-class data", [L(type="Linear", **{"in": 784, "out": 7})])
    add("huge", "Linear 784-30000, 30000-30000, 30000-10 (900M parameters)",
        [L(type="Linear", **{"in": 784, "out": 30000}), L(type="Linear", **{"in": 30000, "out": 30000}),
         L(type="Linear", **{"in": 30000, "out": 10})], "may-accept", train=False)
    add("huge", "Linear 784 -> 2**31 -> 10", [L(type="Linear", **{"in": 784, "out": 2 ** 31}),
                                               L(type="Linear", **{"in": 2 ** 31, "out": 10})], "must-reject")
    conv = lambda **kw: [dict({"type": "Conv2d", "in": 1, "out": 4, "kernel": 3}, **kw), L(type="Flatten")]
    for field, value in [("kernel", 0), ("kernel", -3), ("kernel", 29), ("kernel", 100000), ("stride", 0),
                         ("stride", -1), ("padding", -1), ("padding", 100000), ("dilation", 0), ("dilation", 20),
                         ("kernel", [3]), ("kernel", [3, 3, 3]), ("kernel", "3"), ("in", 3), ("out", 0),
                         ("kernel", 1.5)]:
        add("conv2d-" + field, "Conv2d %s=%s" % (field, json.dumps(value)), conv(**{field: value}))
    add("conv2d", "Conv2d first with no Flatten, then Linear", [dict(type="Conv2d", **{"in": 1, "out": 4, "kernel": 3}),
                                                              L(type="Linear", **{"in": 2704, "out": 10})])
    add("pool", "MaxPool2d kernel 0", [L(type="MaxPool2d", kernel=0), L(type="Flatten")])
    add("pool", "MaxPool2d kernel 29", [L(type="MaxPool2d", kernel=29), L(type="Flatten")])
    add("pool", "AvgPool2d stride 0", [L(type="AvgPool2d", kernel=2, stride=0), L(type="Flatten")])
    add("pool", "AdaptiveAvgPool2d output_size 0", [L(type="AdaptiveAvgPool2d", output_size=0), L(type="Flatten")])
    add("batchnorm", "BatchNorm2d features 3 on 1 channel", [L(type="BatchNorm2d", features=3), L(type="Flatten")])
    add("batchnorm", "BatchNorm1d eps -1", [L(type="BatchNorm1d", features=784, eps=-1),
                                            L(type="Linear", **{"in": 784, "out": 10})])
    add("batchnorm", "BatchNorm1d features 0", [L(type="BatchNorm1d", features=0)])
    add("dropout", "Dropout p=1.5", [L(type="Dropout", p=1.5), L(type="Linear", **{"in": 784, "out": 10})])
    add("dropout", "Dropout p=-1", [L(type="Dropout", p=-1), L(type="Linear", **{"in": 784, "out": 10})])
    add("flatten", "Flatten start_dim 5", [L(type="Conv2d", **{"in": 1, "out": 1, "kernel": 1}),
                                           L(type="Flatten", start_dim=5)])
    add("flatten", "Flatten end_dim -9", [L(type="Conv2d", **{"in": 1, "out": 1, "kernel": 1}),
                                          L(type="Flatten", end_dim=-9)])
    add("unflatten", "Unflatten to [7, 7] from 784", [L(type="Unflatten", dim=1, shape=[7, 7]), L(type="Flatten")])
    add("unflatten", "Unflatten to [0, 784]", [L(type="Unflatten", dim=1, shape=[0, 784]), L(type="Flatten")])
    add("unflatten", "Unflatten dim 9", [L(type="Unflatten", dim=9, shape=[1, 784]), L(type="Flatten")])
    add("leaky", "LeakyReLU slope \"x\"", [L(type="LeakyReLU", slope="x"), L(type="Linear", **{"in": 784, "out": 10})])
    add("json", "trailing garbage after the array", json.dumps(README_CNN) + "xyz")
    add("json", "invalid UTF-8 in a type name", '[{"type":"Lin\xff\xfeear"}]')
    add("json", "NUL byte", '[{"type":"ReLU"}\x00]')
    add("json", "duplicate key \"in\"", '[{"type":"Linear","in":784,"in":5,"out":10}]', "may-accept")
    add("deep", "100000-deep nested arrays", "[" * 100000 + "]" * 100000)
    add("deep", "100000-deep nested objects in a layer field",
        '[{"type":"ReLU","x":' + '{"a":' * 100000 + '1' + '}' * 100000 + '}]')
    add("deep", "unterminated 1000000-deep array", "[" * 1000000)
    add("many-layers", "200000 Identity layers then Linear",
        json.dumps([L(type="Identity")] * 200000 + [L(type="Linear", **{"in": 784, "out": 10})]), "may-accept",
        train=False)
    add("extra-field", "a layer with an unknown field", [L(type="Linear", bogus=1, **{"in": 784, "out": 10})],
        "may-accept")
    add("input_shape", "object with input_shape [0]", {"input_shape": [0], "layers": [L(type="Flatten")]})
    add("input_shape", "object with input_shape [1, -28, 28]", {"input_shape": [1, -28, 28], "layers": [L(type="Flatten")]})
    return A


def arch_cases(ctx, rng):
    cases = []
    for kind, desc, text, policy, train in arch_inputs():
        for cmd in (["summary", "train"] if train else ["summary"]):
            cases.append(make_arch_case(kind, desc, text, policy, cmd))
    # Special files as the architecture.
    for desc, special, timeout in [("a FIFO", "FIFO", 20), ("/dev/zero", "/dev/zero", 20), ("a directory", "DIR", None),
                                   ("/dev/null", "/dev/null", None), ("a model file", "MODEL", None)]:
        for cmd in ["summary", "train"]:
            cases.append(make_arch_case("special-file", desc + " as FILE.json", special, "must-reject", cmd,
                                        timeout=timeout))
    return cases


def make_arch_case(kind, desc, text, policy, cmd, timeout=None):
    def prepare(ctx, d, r):
        f = os.path.join(d, "arch.json")
        if text == "FIFO":
            os.mkfifo(f)
        elif text == "DIR":
            os.mkdir(f)
        elif text == "MODEL":
            shutil.copy(ctx.path("mlp-model.safetensors"), f)
        elif text.startswith("/dev/"):
            os.symlink(text, f)
        else:
            write(f, text.encode("utf-8", "surrogateescape") if "\xff" not in text else
                  text.encode("latin-1", "replace"))
        if cmd == "summary":
            argv = ["summary", "--architecture", f]
        else:
            argv = ["train", "--model", f, "--data", ctx.data, "--epochs", "1", "--limit", "600", "--test-limit", "200",
                    "--out", os.path.join(d, "run")]
        return {"argv": ctx.kiln_argv(*argv), "inputs": [f]}
    return Case("arch", kind + " [" + cmd + "]", desc, policy, prepare, command=cmd, timeout=timeout)


# ---- command-line misuse ------------------------------------------------------------------------

R, M, A = "must-reject", "may-accept", "must-accept"


def cli_table():
    """(subcommand, flag, value, policy). '@...' values are replaced by fixture paths."""
    T = []

    def add(cmd, flag, values, policy):
        for v in values:
            T.append((cmd, flag, v, policy))

    add("train", "--epochs", ["-1", "0", "1.5", "", "nan", "1e3", "99999999999999999999", " 1", "0x10", "-0"], R)
    add("train", "--epochs", ["+1", "2"], M)
    add("train", "--batch-size", ["0", "-1", "-128", "", "nan", "1.5", "99999999999999999999"], R)
    add("train", "--batch-size", ["1000000000", "9223372036854775807", "7"], M)
    add("train", "--lr", ["-1", "0", "nan", "NaN", "inf", "-inf", "", "1e-50", "1e39", "abc", "-0"], R)
    add("train", "--lr", ["0x1p-10", "1e-3", "1e30"], M)
    add("train", "--momentum", ["-1", "nan", "inf", ""], R)
    add("train", "--momentum", ["0.9", "1.5"], M)
    add("train", "--weight-decay", ["-1", "nan", "inf", "-inf", ""], R)
    add("train", "--weight-decay", ["1e30", "0"], M)
    add("train", "--dropout", ["-0.1", "1.5", "nan", "inf", "", "2"], R)
    add("train", "--dropout", ["1", "0.5"], M)
    add("train", "--val-fraction", ["-0.1", "1", "nan", "inf", "", "1.5"], R)
    add("train", "--val-fraction", ["0.999", "1e-9", "0.5"], M)
    add("train", "--seed", ["-1", "18446744073709551616", "", "1.5", "nan"], R)
    add("train", "--seed", ["18446744073709551615", "42", "-0"], M)
    add("train", "--limit", ["0", "1", "-1", "", "1.5"], R)
    add("train", "--limit", ["99999999999", "9223372036854775807", "2"], M)
    add("train", "--test-limit", ["0", "-1", "", "-5"], R)
    add("train", "--test-limit", ["9223372036854775807", "1"], M)
    add("train", "--log-every", ["0", "-1", ""], R)
    add("train", "--log-every", ["9223372036854775807", "1"], M)
    add("train", "--hidden", [",", "256,,128", "", "0", "-1", "256,-1", "1.5", "256,", ",256", "1000000000",
                              "9223372036854775807", "a,b", "256;128", "256 128", "0x100"], R)
    add("train", "--hidden", ["1", " 64", "64,32,16,8,4,2"], M)
    add("train", "--activation", ["", "softmax", "nan", "relu ", "re lu"], R)
    add("train", "--activation", ["RELU", "tanh"], M)
    add("train", "--optimizer", ["", "lbfgs", "adam ", "ad\x01am"], R)
    add("train", "--optimizer", ["SGD", "rmsprop"], M)
    add("train", "--schedule", ["", "cos", "STEP "], R)
    add("train", "--schedule", ["STEP", "cosine", "warmup"], M)
    add("train", "--model", ["", "/nonexistent.json", "@DIR", "/dev/null", "@TEXT", "@MODEL", "mlp ", "../../etc/passwd",
                             "@FIFO", "/dev/zero", "cnn.json"], R)
    add("train", "--model", ["CNN"], M)
    add("train", "--out", ["", "/proc/x", "@TEXT", "@TEXT/sub", "/dev/null", "/proc/self/status", "@LONGNAME"], R)
    add("train", "--out", ["@CTRL"], M)
    add("train", "--resume", ["", "/nonexistent", "@DIR", "/dev/zero", "@FIFO", "@MODEL", "@CNNLAST", "@TEXT",
                              "@HISTORY"], R)
    add("train", "--resume", ["@MLPLAST"], A)
    add("train", "--data", ["", "/nonexistent", "@TEXT", "/dev/null", "/proc", "@DIR"], R)
    add("train", "--device", ["", "gpu:99", "cpu:99", "cpu:-1", "-1:0", "0:-1", "99999999999999999999:0", ":", "cpu:",
                              "%s%n%x", "zz-no-such-device", "0:99"], R)
    add("train", "--device", ["cpu", "0:0", "cpu:0", "pocl"], M)
    add("evaluate", "--limit", ["0", "-1", "", "1.5"], R)
    add("evaluate", "--limit", ["999999999", "1"], M)
    add("evaluate", "--model", ["", "/nonexistent", "@DIR", "/dev/zero", "@FIFO", "@TEXT", "@HISTORY", "/dev/null"], R)
    add("evaluate", "--model", ["@MLPLAST"], M)
    add("evaluate", "--architecture", ["garbage", "", "cnn"], R)
    add("evaluate", "--hidden", [",", "", "-5"], R)
    add("evaluate", "--data", ["", "/nonexistent", "@TEXT"], R)
    add("evaluate", "--device", ["", "gpu:99", "%n"], R)
    add("predict", "--index", ["-1", "300", "", ",", "1,,2", "a", "5.0", "0x5", "99999999999999999999",
                               "9223372036854775807", "1,-1", "1 2"], R)
    add("predict", "--index", ["299", " 5", "+5", "0,0,0"], M)
    add("predict", "--images", ["@IMAGES", "@IMAGESGZ"], A)
    add("predict", "--images", ["", "/nonexistent", "@DIR", "/dev/zero", "@FIFO", "@LABELS", "@TEXT", "@MODEL",
                                "@SMALLIMG", "@ZEROIMG", "/dev/null"], R)
    add("summary", "--input", ["", "0,28,28", "1,-28,28", ",", "1,28,28,1,1,1,1,1,1", "a", "1,,28", "99999,99999,99999",
                               "9223372036854775807"], R)
    add("summary", "--classes", ["0", "-1", "", "1.5"], R)
    add("summary", "--classes", ["1", "100000000"], M)
    add("summary", "--architecture", ["", "garbage", "@TEXT", "@FIFO"], R)
    add("summary", "--architecture", ["cnn", "mlp"], A)
    add("summary", "--hidden", [",", "", "-1", "256,,128"], R)
    return T


def cli_extra():
    """(desc, subcommand, argv after 'kiln', policy, env, timeout)."""
    E = []

    def add(desc, cmd, argv, policy, env=None, timeout=None):
        E.append((desc, cmd, argv, policy, env, timeout))

    add("unknown flag", "train", ["train", "--bogus", "@T"], R)
    add("flag without its value at the end", "train", ["train", "@T", "--epochs"], R)
    add("--epochs=1 form", "train", ["train", "@T", "--epochs=1"], M)
    add("short flag -e", "train", ["train", "-e", "1", "@T"], R)
    add("positional argument", "train", ["train", "extra", "@T"], R)
    add("--json twice", "train", ["train", "@T", "--json", "--json"], M)
    add("--augment with the MLP", "train", ["train", "@T", "--augment"], R)
    add("--hidden with --model cnn (ignored MLP flag)", "train", ["train", "@T", "--model", "cnn", "--hidden", "64"], M)
    add("--epochs given twice", "train", ["train", "@T", "--epochs", "1", "--epochs", "2"], M)
    add("unknown subcommand", None, ["trian"], R)
    add("no subcommand", None, [], M)
    add("help of an unknown subcommand", None, ["help", "bogus"], R)
    add("--images with --index 5 (10-image file)", "predict",
        ["predict", "--model", "@MODEL", "--images", "@IMAGES", "--index", "5"], M)
    add("--images with --index 50 (10-image file, index out of range)", "predict",
        ["predict", "--model", "@MODEL", "--images", "@IMAGES", "--index", "50"], R)
    add("--images with --index -1", "predict",
        ["predict", "--model", "@MODEL", "--images", "@IMAGES", "--index", "-1"], R)
    add("summary with no model or architecture", "summary", ["summary"], M)
    add("summary --model and --architecture cnn on an MLP file", "summary",
        ["summary", "--model", "@MODEL", "--architecture", "cnn"], R)
    add("evaluate without --model", "evaluate", ["evaluate"], R)
    add("--arch cnn on an MLP file", "evaluate", ["evaluate", "--model", "@MODEL", "--arch", "cnn", "--data", "@DATA"], R)
    add("MLP checkpoint resumed with --hidden 128", "train", ["train", "@T", "--resume", "@MLPLAST", "--hidden", "128",
                                                              "--epochs", "3"], R)
    add("MLP checkpoint resumed with --model cnn", "train", ["train", "@T", "--resume", "@MLPLAST", "--model", "cnn",
                                                             "--epochs", "3"], R)
    add("checkpoint resumed with --epochs 1 (already past)", "train",
        ["train", "@T", "--resume", "@MLPLAST", "--epochs", "1"], M)
    add("evaluate with the environment's XDG_CACHE_HOME a file", "evaluate", ["evaluate", "@E"], M,
        {"XDG_CACHE_HOME": "@TEXT"})
    add("XDG_CACHE_HOME=/proc/x", "evaluate", ["evaluate", "@E"], M, {"XDG_CACHE_HOME": "/proc/x"})
    add("XDG_CACHE_HOME empty", "evaluate", ["evaluate", "@E"], M, {"XDG_CACHE_HOME": ""})
    add("HOME=/nonexistent, no XDG_CACHE_HOME", "evaluate", ["evaluate", "@E"], M,
        {"HOME": "/nonexistent", "XDG_CACHE_HOME": None})
    add("XDG_CACHE_HOME a directory whose kiln entry is a file", "evaluate", ["evaluate", "@E"], M,
        {"XDG_CACHE_HOME": "@CACHEFILE"})
    add("KILN_DEVICE garbage", "evaluate", ["evaluate", "@E"], R, {"KILN_DEVICE": "zz-no-such-device"})
    add("KILN_DEVICE empty", "evaluate", ["evaluate", "@E"], M, {"KILN_DEVICE": ""})
    add("KILN_CACHE garbage", "evaluate", ["evaluate", "@E"], M, {"KILN_CACHE": "maybe"})
    add("KILN_CACHE=0", "evaluate", ["evaluate", "@E"], A, {"KILN_CACHE": "0"})
    for how in ["truncate", "flip"]:   # each takes ~20 s: Kiln rebuilds every program from source
        add("program cache: every cached binary %s" % how, "evaluate", ["evaluate", "@E"], M,
            {"XDG_CACHE_HOME": "@CACHE-" + how}, timeout=180)
    add("stdout closed early (| head -c 1)", "evaluate", ["evaluate", "@E"], M, {"@PIPE": "1"})
    return E


def resolve(ctx, d, v):
    if not isinstance(v, str) or not v.startswith("@"):
        return v
    fixed = {
        "@DIR": ctx.dir, "@TEXT": ctx.textfile, "@FIFO": ctx.fifo, "@MODEL": ctx.path("mlp-model.safetensors"),
        "@MLPLAST": ctx.path("mlp-last.safetensors"), "@CNNLAST": ctx.path("cnn-last.safetensors"),
        "@HISTORY": ctx.path("mlp", "history.json"), "@IMAGES": ctx.images10, "@IMAGESGZ": ctx.path("images10.idx.gz"),
        "@LABELS": os.path.join(ctx.data, FILES["test-labels"]), "@DATA": ctx.data,
        "@TEXT/sub": ctx.textfile + "/sub", "@LONGNAME": os.path.join(d, "x" * 5000),
        "@CTRL": os.path.join(d, "a\x01b"),
    }
    if v in fixed:
        return fixed[v]
    if v == "@SMALLIMG":
        return write(os.path.join(d, "small.idx"), idx_encode([3, 5, 5], bytes(75)))
    if v == "@ZEROIMG":
        return write(os.path.join(d, "none.idx"), idx_encode([0, 28, 28], b""))
    raise KeyError(v)


def cache_copy(ctx, d, how, r):
    """A copy of the kiln program cache with every cached binary damaged."""
    src = None
    for base in [os.environ.get("XDG_CACHE_HOME"), os.path.expanduser("~/.cache")]:
        if base and os.path.isdir(os.path.join(base, "kiln")):
            src = os.path.join(base, "kiln")
            break
    home = os.path.join(d, "cache")
    dst = os.path.join(home, "kiln")
    if src is None:
        os.makedirs(dst)
        return home
    shutil.copytree(src, dst)
    for root, _, files in os.walk(dst):
        for name in files:
            p = os.path.join(root, name)
            with open(p, "rb") as f:
                blob = f.read()
            if how == "truncate":
                blob = blob[:len(blob) // 2]
            elif how == "flip":
                blob = flip_bytes(blob, 0, len(blob), r, 16) if blob else blob
            elif how == "empty":
                blob = b""
            else:
                blob = bytes(r.randrange(256) for _ in range(min(len(blob), 4096)))
            write(p, blob)
    return home


def cli_cases(ctx, rng):
    cases = []
    T_base = lambda ctx, d: ["--data", ctx.data, "--limit", "600", "--test-limit", "200", "--epochs", "1",
                             "--out", os.path.join(d, "run")]
    E_base = lambda ctx, d: ["--model", ctx.path("mlp-model.safetensors"), "--data", ctx.data, "--limit", "100"]
    P_base = lambda ctx, d: ["--model", ctx.path("mlp-model.safetensors"), "--data", ctx.data]
    S_base = lambda ctx, d: ["--architecture", "mlp"]

    for cmd, flag, value, policy in cli_table():
        def prepare(ctx, d, r, cmd=cmd, flag=flag, value=value):
            base = {"train": T_base, "evaluate": E_base, "predict": P_base, "summary": S_base}[cmd](ctx, d)
            if flag in base:          # the flag under test replaces the base's value
                i = base.index(flag)
                del base[i:i + 2]
            if cmd == "summary" and flag in ("--architecture",):
                base = []
            if cmd == "summary" and flag == "--input":
                base = ["--architecture", "cnn"]
            v = resolve(ctx, d, value)
            extra = []
            if flag == "--momentum":
                extra = ["--optimizer", "sgd"]
            if flag == "--resume" and value == "@MLPLAST":
                base[base.index("--epochs") + 1] = "3"
            if flag == "--dropout" or (flag == "--val-fraction"):
                pass
            return {"argv": ctx.kiln_argv(cmd, *base, *extra, flag, v), "inputs": []}
        timeout = 20 if value in ("@FIFO", "/dev/zero") else None
        cases.append(Case("cli", "%s %s" % (cmd, flag), "%s %s %r" % (cmd, flag, value), policy, prepare,
                          command=cmd, timeout=timeout))

    for desc, cmd, argv, policy, env, timeout in cli_extra():
        def prepare(ctx, d, r, cmd=cmd, argv=argv, env=env):
            a = []
            for x in argv:
                if x == "@T":
                    a += T_base(ctx, d)
                elif x == "@E":
                    a += E_base(ctx, d)
                else:
                    a.append(resolve(ctx, d, x))
            e = None
            pipe = False
            inputs_extra = []
            if env:
                e = dict(ctx.env)
                for k, v in env.items():
                    if k == "@PIPE":
                        pipe = True
                    elif v is None:
                        e.pop(k, None)
                    elif v.startswith("@CACHE-"):
                        e[k] = cache_copy(ctx, d, v[len("@CACHE-"):], r)
                        inputs_extra.append(e[k])
                    elif v == "@CACHEFILE":
                        os.makedirs(os.path.join(d, "c"))
                        write(os.path.join(d, "c", "kiln"), b"a file, not a folder")
                        e[k] = os.path.join(d, "c")
                    else:
                        e[k] = resolve(ctx, d, v)
            if e is not None and "XDG_CACHE_HOME" in env and "POCL_CACHE_DIR" not in e:
                # PoCL keeps its own kernel cache under XDG_CACHE_HOME too; keep it, so only Kiln's
                # cache is under test (a cold PoCL compile of every kernel takes about a minute).
                e["POCL_CACHE_DIR"] = os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                   os.path.expanduser("~/.cache"), "pocl")
            return {"argv": ctx.kiln_argv(*a), "env": e, "inputs": inputs_extra, "pipe": pipe,
                    "env_desc": {k: v for k, v in (env or {}).items()}}
        cases.append(Case("cli", "extra: " + desc, desc, policy, prepare, command=cmd, timeout=timeout))
    return cases


# ---- signals ----------------------------------------------------------------------------------

def signal_cases(ctx, rng):
    cases = []
    for name, desc in [("sigint", "SIGINT after some epochs"), ("sigterm", "SIGTERM after some epochs"),
                       ("double-sigint", "two SIGINTs 50 ms apart after some epochs"),
                       ("early-sigint", "SIGINT 0.2 s after start (device and data setup)"),
                       ("kill9", "kill -9 during checkpoint writes, 6 times")]:
        cases.append(Case("signals", name, desc, "must-accept", None, command="train", timeout=120,
                          check=lambda ctx, d, r, name=name: signal_scenario(ctx, d, r, name)))
    return cases


def safetensors_problems(folder):
    problems, stale = [], []
    for name in sorted(os.listdir(folder)):
        p = os.path.join(folder, name)
        if name.endswith(".tmp") or ".tmp" in name or name.startswith("."):
            stale.append(name)
            continue
        if name.endswith(".safetensors"):
            try:
                with open(p, "rb") as f:
                    st_parse(f.read())
            except STError as e:
                problems.append("%s does not parse: %s" % (name, e))
    return problems, stale


def signal_scenario(ctx, d, r, name):
    """Returns (outcome, reasons, Result of the interrupted run, argv)."""
    out = os.path.join(d, "run")
    log = os.path.join(d, "stdout.log")
    err = os.path.join(d, "stderr.log")
    train = ["--data", ctx.data, "--limit", "1000", "--test-limit", "300", "--out", out]
    if name == "kill9":
        argv = ctx.kiln_argv("train", *train, "--epochs", "100000", "--hidden", "1024,1024")
    else:
        argv = ctx.kiln_argv("train", *train, "--epochs", "100000")
    reasons, notes = [], []
    last = os.path.join(out, "last.safetensors")

    if name == "kill9":
        res = None
        caught = 0
        for attempt in range(6):
            deadline = r.uniform(0.0, 1.0)
            started = time.monotonic()
            proc = spawn(argv, env=ctx.env, cwd=d, stdout_path=log, stderr_path=err)
            res = Result()
            state = {"done": False}

            state["armed"] = attempt == 0   # the first attempt may hit the first write; later ones overwrite
            stale_before = set(n for n in os.listdir(out) if n.endswith(".tmp")) if os.path.isdir(out) else set()

            def tick(elapsed, proc=proc, state=state, stale_before=stale_before):
                if state["done"]:
                    return
                if not state["armed"]:
                    # Arm once this run has rewritten last.safetensors at least once (an overwrite).
                    try:
                        state["armed"] = os.path.getmtime(last) > time.time() - elapsed + 0.05
                    except OSError:
                        pass
                    if elapsed > deadline + 20:
                        state["armed"] = True
                    return
                tmp = os.path.isdir(out) and any(n.endswith(".tmp") and n not in stale_before for n in os.listdir(out))
                if tmp or elapsed > deadline + 20:
                    state["done"] = True
                    state["during_write"] = tmp
                    os.killpg(proc.pid, signal.SIGKILL)
            reap(proc, res, 60, None, started, on_tick=tick, max_delay=0.001)
            caught += 1 if state.get("during_write") else 0
            if res.sig != signal.SIGKILL:
                reasons.append("attempt %d ended by itself (%s) before the kill" % (attempt, res.status))
        notes.append("%d of 6 kills landed while a temporary file existed" % caught)
        problems, stale = safetensors_problems(out) if os.path.isdir(out) else (["no output folder"], [])
        reasons += problems
        if stale:
            notes.append("stale temporary files left: %s" % ", ".join(stale[:5]) + (" ..." if len(stale) > 5 else ""))
    else:
        started = time.monotonic()
        proc = spawn(argv, env=ctx.env, cwd=d, stdout_path=log, stderr_path=err)
        res = Result()
        state = {"sent": 0, "first": None}
        wait_extra = r.uniform(0.5, 1.5)

        def tick(elapsed):
            if name == "early-sigint":
                if not state["sent"] and elapsed > 0.2:
                    os.kill(proc.pid, signal.SIGINT)
                    state["sent"] = 1
                return
            if not state["sent"]:
                if state["first"] is None and os.path.exists(last):
                    state["first"] = elapsed
                if state["first"] is not None and elapsed > state["first"] + wait_extra:
                    os.kill(proc.pid, signal.SIGTERM if name == "sigterm" else signal.SIGINT)
                    state["sent"] = 1
                    state["at"] = elapsed
                elif elapsed > 60:
                    os.kill(proc.pid, signal.SIGINT)
                    state["sent"] = 1
                    reasons.append("no last.safetensors within 60 s of training")
            elif name == "double-sigint" and state["sent"] == 1 and elapsed > state["at"] + 0.05:
                os.kill(proc.pid, signal.SIGINT)
                state["sent"] = 2
        reap(proc, res, 90, None, started, on_tick=tick)
        expected = signal.SIGTERM if name == "sigterm" else signal.SIGINT
        code = 128 + expected
        if res.timed_out:
            reasons.append("did not exit after the signal")
        elif not (res.rc == code or res.sig == expected):
            reasons.append("%s after %s, expected exit %d" % (res.status, signal.Signals(expected).name, code))
        elif res.sig == expected:
            notes.append("died of %s itself (no handler; the shell sees %d)" % (signal.Signals(expected).name, code))
        if name != "early-sigint":
            with open(log, "rb") as f:
                logged = len(re.findall(rb"(?m)^epoch \d+", f.read()))
            done = None
            try:
                with open(last, "rb") as f:
                    done = int(st_parse(f.read())[1].get("epoch", ""))
            except (OSError, STError, ValueError):
                pass
            if done is not None and logged < done:
                reasons.append("stdout log holds %d epoch lines but last.safetensors is after epoch %d: output "
                               "lost at %s (stdout not flushed)" % (logged, done, signal.Signals(expected).name))
            elif os.path.getsize(log) == 0:
                reasons.append("stdout log is empty after %s" % signal.Signals(expected).name)
            if not os.path.exists(last):
                reasons.append("no last.safetensors after the interrupt")
            problems, stale = safetensors_problems(out)
            reasons += problems
            if stale:
                notes.append("stale temporary files left: %s" % ", ".join(stale[:5]))
    with open(log, "rb") as f:
        res.stdout = f.read(1 << 16)
    with open(err, "rb") as f:
        res.stderr = f.read(1 << 16)
    # Resume from what the interrupted run left.
    if name != "early-sigint" and os.path.exists(last):
        try:
            with open(last, "rb") as f:
                _, meta = st_parse(f.read())
            epoch = int(meta.get("epoch", "0"))
        except (STError, ValueError) as e:
            epoch = None
            reasons.append("last.safetensors unreadable: %s" % e)
        if epoch is not None:
            extra = ["--hidden", "1024,1024"] if name == "kill9" else []
            rargv = ctx.kiln_argv("train", *train, "--epochs", str(epoch + 1), "--resume", last, *extra)
            rr = run(rargv, env=ctx.env, timeout=120, cwd=d, scratch=ctx.scratch)
            if rr.rc != 0:
                reasons.append("--resume after the interrupt failed (%s): %s" % (
                    rr.status, rr.stderr.decode("utf-8", "replace").strip()[:200]))
            elif b"Resumed from" not in rr.stdout:
                reasons.append("--resume exit 0 but printed no 'Resumed from' line")
    text = (res.stdout + res.stderr).decode("utf-8", "replace")
    if res.sig in TRAP_SIGNALS or any(t in text for t in CRASH_TEXT):
        return "trap", reasons + notes, res, argv
    if res.timed_out:
        return "hang", reasons + notes, res, argv
    if reasons:
        return "signal", reasons + notes, res, argv
    if any("stale" in n for n in notes):
        return "note", notes, res, argv
    return "ok", notes, res, argv


# --------------------------------------------------------------------------------------------
# Classification

NEG_NUMBER = re.compile(r"^-(\d|\.\d|inf|nan)", re.I)


def message_problems(case, argv, res):
    text = res.stderr.decode("utf-8", "replace")
    lines = [l for l in text.splitlines() if l.strip()]
    sub = case.command
    problems = []
    essential = []
    for l in lines:
        s = l.strip()
        if s.startswith("Usage: "):
            if sub and not s.startswith("Usage: kiln %s" % sub):
                problems.append("usage line for another command: %r" % s[:80])
            continue
        if s.startswith("See 'kiln") or s.startswith("See 'kiln help"):
            if sub and ("kiln %s" % sub) not in s and ("help %s" % sub) not in s:
                problems.append("help pointer for another command: %r" % s[:80])
            continue
        if s.startswith("Help:  "):
            continue
        essential.append(s)
    if not essential:
        problems.append("no error message on stderr")
    elif len(essential) > 1:
        problems.append("%d-line error message" % len(essential))
    for bad in BAD_TEXT:
        if bad in text:
            problems.append("contains %r" % bad)
    if "Missing value for" in text and any(NEG_NUMBER.match(a) for a in argv[1:]):
        problems.append("'Missing value for' for a negative number")
    return problems


def classify(case, policy, argv, res, rss_mb):
    text = (res.stdout + res.stderr).decode("utf-8", "replace")
    reasons = []
    if res.sig in TRAP_SIGNALS:
        reasons.append("killed by %s" % res.status)
    crash = [t for t in CRASH_TEXT if t in text]
    if crash:
        reasons.append("crash text: %s" % ", ".join(crash))
    if reasons:
        return "trap", reasons
    if res.timed_out:
        return "hang", ["no exit within %.0f s" % res.wall]
    if res.mem_killed:
        return "memory", ["killed at the RSS cap (%d MB)" % (res.maxrss_kb // 1024)]
    if res.sig is not None and res.sig != signal.SIGPIPE:
        return "trap" if res.sig != signal.SIGKILL else "memory", ["ended by %s" % res.status]
    if res.maxrss_kb > rss_mb * 1024:
        return "memory", ["peak RSS %d MB > %d MB" % (res.maxrss_kb // 1024, rss_mb)]
    if res.sig == signal.SIGPIPE:
        return "ok", ["SIGPIPE"]
    if res.rc == 0:
        if policy == "must-reject":
            return "garbage", ["exit 0 for a must-reject input"]
        return "ok", []
    if policy == "must-accept":
        return "rejected-valid", ["%s for a valid input" % res.status]
    problems = message_problems(case, argv, res)
    if problems:
        return "unclear", problems
    return "ok", []


# --------------------------------------------------------------------------------------------
# Driver

def interleave(groups):
    out = []
    while any(groups):
        for g in groups:
            if g:
                out.append(g.pop(0))
    return out


def short(s, n=300):
    return s if len(s) <= n else s[:n] + "..."


def display_argv(argv):
    return " ".join(shlex.quote(a) for a in argv)


def cause_key(case, outcome, reasons):
    """Findings with one cause share this key: the outcome, the mutation or flag (without the
    subcommand for flags), and the first reason with numbers and paths taken out."""
    kind = case.kind
    if case.category == "cli" and not kind.startswith("extra:"):
        kind = kind.split(" ", 1)[-1]
    return "%s|%s|%s" % (outcome, kind, norm_message(reasons[0] if reasons else ""))


def norm_message(s):
    s = re.sub(r"/[^\s\"',:)]+", "PATH", s)
    s = re.sub(r"\d+(\.\d+)?", "N", s)
    return s[:120]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--kiln", required=True, help="the kiln binary")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", type=int, default=None, help="run at most N cases (default: all)")
    ap.add_argument("--budget-seconds", type=float, default=600, help="stop starting cases after this (default 600)")
    ap.add_argument("--out", default=None, help="folder for fixtures and saved non-ok inputs "
                    "(default /tmp/kiln-hostile-seedN; emptied first)")
    ap.add_argument("--json", default=None, help="write the JSON report here (default OUT/report.json)")
    ap.add_argument("--timeout", type=float, default=60, help="per-case timeout in seconds (default 60)")
    ap.add_argument("--rss-mb", type=int, default=1536, help="peak RSS above this is a memory finding (default 1536)")
    ap.add_argument("--rss-cap-mb", type=int, default=4096, help="kill a case at this RSS (default 4096)")
    ap.add_argument("--categories", default="model,data,arch,cli,signals")
    ap.add_argument("--data", default=FASHION, help="the MNIST-format folder the fixtures are cut from")
    ap.add_argument("--match", default=None, help="only cases whose kind or description contains this text")
    ap.add_argument("--keep-env", action="store_true", help="keep KILN_DEVICE from the environment")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()

    t0 = time.monotonic()
    out = os.path.abspath(args.out or "/tmp/kiln-hostile-seed%d" % args.seed)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    ctx = Ctx(args, out)
    try:
        make_fixtures(ctx)
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    makers = {"model": model_cases, "data": data_cases, "arch": arch_cases, "cli": cli_cases,
              "signals": signal_cases}
    groups = []
    for cat in [c.strip() for c in args.categories.split(",") if c.strip()]:
        cs = makers[cat](ctx, random.Random("%d:%s" % (args.seed, cat)))
        if args.match:
            cs = [c for c in cs if args.match in c.kind or args.match in c.desc]
        random.Random("%d:order:%s" % (args.seed, cat)).shuffle(cs)
        groups.append(cs)
    # Signals are slow: spread them through the run instead of front-loading them.
    sig = [g for g in groups if g and g[0].category == "signals"]
    rest = [g for g in groups if not (g and g[0].category == "signals")]
    cases = interleave(rest)
    if sig:
        step = max(1, len(cases) // (len(sig[0]) + 1))
        for i, c in enumerate(sig[0]):
            cases.insert(min(len(cases), (i + 1) * step + i), c)
    if args.cases is not None:
        cases = cases[:args.cases]
    for i, c in enumerate(cases):
        c.id = "%04d" % i

    counts = {}
    seconds = {}
    findings = []
    ran = 0
    skipped = 0
    cases_dir = os.path.join(out, "cases")
    os.makedirs(cases_dir)
    for c in cases:
        if time.monotonic() - t0 > args.budget_seconds:
            skipped += 1
            continue
        d = os.path.join(cases_dir, c.id)
        os.makedirs(d)
        r = random.Random("%d:%s:%s" % (args.seed, c.id, c.desc))
        env = None
        if c.check:
            outcome, reasons, res, argv = c.check(ctx, d, r)
            inputs = [os.path.join(d, "run")]
            policy = c.policy
            pipe = False
            env_desc = None
        else:
            try:
                prep = c.prepare(ctx, d, r)
            except NotApplicable:
                shutil.rmtree(d, ignore_errors=True)
                continue
            except Exception as e:   # a bug in this script: report it, keep going
                print("hostile.py: case %s (%s) could not be prepared: %r" % (c.id, c.desc, e), file=sys.stderr)
                shutil.rmtree(d, ignore_errors=True)
                continue
            argv = prep["argv"]
            env = prep.get("env") or ctx.env
            policy = prep.get("policy", c.policy)
            pipe = prep.get("pipe", False)
            env_desc = prep.get("env_desc")
            inputs = prep.get("inputs", [])
            timeout = c.timeout or args.timeout
            if pipe:
                res = run_piped(argv, env, timeout, ctx)
            else:
                res = run(argv, env=env, timeout=timeout, cwd=d, cap_kb=args.rss_cap_mb * 1024, scratch=ctx.scratch)
            outcome, reasons = classify(c, policy, argv, res, c.rss_mb or args.rss_mb)
        ran += 1
        seconds[c.category] = seconds.get(c.category, 0.0) + res.wall
        key = (c.category, outcome)
        counts[key] = counts.get(key, 0) + 1
        if outcome != "ok":
            err = res.stderr.decode("utf-8", "replace")
            first = next((l for l in err.splitlines() if l.strip()), "")
            env_prefix = ""
            if env_desc:
                keys = [k for k in env_desc if not k.startswith("@")]
                if "XDG_CACHE_HOME" in keys:
                    keys.append("POCL_CACHE_DIR")
                env_prefix = " ".join(("%s=%s" % (k, shlex.quote(env[k]))) if k in env else ("-u " + k)
                                      for k in keys)
                env_prefix = ("env " + env_prefix + " ") if env_prefix else ""
            rec = {
                "id": c.id, "category": c.category, "kind": c.kind, "input": c.desc, "policy": policy,
                "outcome": outcome, "reasons": reasons,
                "command": env_prefix + display_argv(argv) + (" | head -c 1" if pipe else ""),
                "status": res.status, "exit": res.rc, "signal": res.sig, "seconds": round(res.wall, 2),
                "peak_rss_mb": round(res.maxrss_kb / 1024, 1),
                "stderr": short(err), "stdout_tail": short(res.stdout.decode("utf-8", "replace")[-300:]),
                "saved": inputs, "cause": cause_key(c, outcome, reasons)
            }
            findings.append(rec)
            with open(os.path.join(d, "case.json"), "w") as f:
                json.dump(rec, f, indent=2)
            if not args.quiet:
                print("[%s] %-14s %-7s %s :: %s -> %s %s" % (c.id, outcome, c.category, c.kind, short(c.desc, 70),
                                                             res.status, short(first, 100)), flush=True)
        else:
            shutil.rmtree(d, ignore_errors=True)

    elapsed = time.monotonic() - t0
    cats = [c for c in ["model", "data", "arch", "cli", "signals"] if any(k[0] == c for k in counts)]
    print()
    print("kiln hostile-input run: seed %d, %d cases run, %d skipped (budget), %.0f s, binary %s" % (
        args.seed, ran, skipped, elapsed, ctx.kiln))
    shown = [o for o in OUTCOMES if any(k[1] == o for k in counts)]
    print("%-9s" % "category" + "".join("%15s" % o for o in shown) + "%8s%8s" % ("total", "secs"))
    for cat in cats:
        row = [counts.get((cat, o), 0) for o in shown]
        print("%-9s" % cat + "".join("%15d" % n for n in row) + "%8d%8.0f" % (sum(row), seconds.get(cat, 0)))
    total = [sum(counts.get((cat, o), 0) for cat in cats) for o in shown]
    print("%-9s" % "all" + "".join("%15d" % n for n in total) + "%8d" % sum(total))

    causes = {}
    for f in findings:
        causes.setdefault(f["cause"], []).append(f)
    if findings and not args.quiet:
        print()
        print("Distinct causes (outcome, kind, message), most severe first; one reproduction each:")
        order = sorted(causes.values(), key=lambda fs: (OUTCOMES.index(fs[0]["outcome"]), fs[0]["kind"]))
        for fs in order:
            f = fs[0]
            first = next((l for l in f["stderr"].splitlines() if l.strip()), "")
            print("- %s x%d  %s: %s" % (f["outcome"], len(fs), f["kind"], f["input"]))
            print("    $ %s" % f["command"])
            print("    -> %s%s%s" % (f["status"], (": " + short(first, 160)) if first else "",
                                    ("  [" + "; ".join(f["reasons"])[:300] + "]") if f["reasons"] else ""))
    report = {
        "kiln": ctx.kiln, "seed": args.seed, "cases_run": ran, "cases_skipped": skipped,
        "seconds": round(elapsed, 1), "budget_seconds": args.budget_seconds,
        "counts": {cat: {o: counts.get((cat, o), 0) for o in OUTCOMES if counts.get((cat, o))} for cat in cats},
        "distinct_causes": len(causes), "seconds_by_category": {k: round(v, 1) for k, v in seconds.items()},
        "findings": findings,
    }
    json_path = args.json or os.path.join(out, "report.json")
    with open(json_path, "w") as f:
        json.dump(report, f, indent=2)
    print("%d non-ok cases (%d distinct causes); report %s; inputs under %s" % (
        len(findings), len(causes), json_path, cases_dir))
    if not findings:
        shutil.rmtree(ctx.fx, ignore_errors=True)
    return 1 if any(f["outcome"] in FAILING for f in findings) else 0


def resolve_env_display(env, k):
    return env.get(k, "") if env else ""


def run_piped(argv, env, timeout, ctx):
    """Runs argv with its stdout into `head -c 1`, which exits at once (SIGPIPE / EPIPE for kiln)."""
    res = Result()
    fd, err_path = tempfile.mkstemp(prefix="err.", dir=ctx.scratch)
    os.close(fd)
    started = time.monotonic()
    with open(err_path, "wb") as err:
        head = subprocess.Popen(["head", "-c", "1"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=head.stdin, stderr=err, env=env,
                                cwd=ctx.scratch, start_new_session=True)
        head.stdin.close()
        reap(proc, res, timeout, ctx.args.rss_cap_mb * 1024, started)
        head.wait()
    with open(err_path, "rb") as f:
        res.stderr = f.read(1 << 20)
    os.unlink(err_path)
    return res


if __name__ == "__main__":
    sys.exit(main())
