"""Every malformed file becomes one TnnFormatError naming the file and where; nothing else."""
from __future__ import annotations

import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tnnformat
from tnnformat import RawBuffer, TnnFormatError

from mutations import mutate, mutation
from conftest import shared_path

GOOD_PROTO = (
    '"1 3 1 4206624772 ,"\n'
    '"x 4 1 3 8 8 0 ,"\n'
    '" x y z ,"\n'
    '"z ,"\n'
    '" 2 ,"\n'
    '"Convolution conv 1 1 x y 1 3 2 3 3 1 1 1 1 1 0 1 1 0 ,"\n'
    '"ReLU relu 1 1 y z ,"\n'
)


def write(tmp_path, text=None, data=None, proto_text=GOOD_PROTO):
    proto = tmp_path / "m.tnnproto"
    proto.write_bytes(text.encode() if isinstance(text, str) else (text or proto_text.encode()))
    model = None
    if data is not None:
        model = tmp_path / "m.tnnmodel"
        model.write_bytes(data)
    return proto, model


def good_model(tmp_path) -> bytes:
    proto, _ = write(tmp_path)
    net = tnnformat.load(proto)
    net.resources["conv"] = {"filter": RawBuffer.from_array(np.ones((2, 3, 3, 3), np.float32)),
                             "bias": RawBuffer.from_array(np.zeros(2, np.float32))}
    tnnformat.save(net, tmp_path / "g.tnnproto", tmp_path / "g.tnnmodel")
    return (tmp_path / "g.tnnmodel").read_bytes()


def expect_error(proto, model, *fragments):
    with pytest.raises(TnnFormatError) as info:
        tnnformat.load(proto, model)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize("text, fragments", [
    (GOOD_PROTO.replace("4206624772", "1234"), ["line 1", "wrong magic number 1234"]),
    ("\n".join(GOOD_PROTO.splitlines()[:3]), ["header needs 5 lines"]),
    ("", ["header needs 5 lines"]),
    (GOOD_PROTO.replace('" 2 ,"', '" 3 ,"'), ["line 5", "announces 3 layers, the file has 2"]),
    (GOOD_PROTO.replace('"1 3 1', '"1 4 1'), ["line 3", "announces 4 blobs"]),
    (GOOD_PROTO.replace("1 3 2 3 3", "1 3 two 3 3"), ["line 6", "layer 'conv'", "output_channel",
                                                       "expected an integer, got 'two'"]),
    (GOOD_PROTO.replace(" 1 1 1 1 1 0 1 1 0 ,", " ,"), ["line 6", "layer 'conv'", "missing param 'stride_h'"]),
    (GOOD_PROTO.replace("1 1 0 ,\"\n\"ReLU", "1 1 0 7 ,\"\n\"ReLU"), ["layer 'conv'", "unexpected extra"]),
    (GOOD_PROTO.replace("x 4 1 3 8 8 0", "x 4 1 3 8 0"), ["line 2", "rank 4 needs 4 dims"]),
    (GOOD_PROTO.replace("x 4 1 3 8 8 0", "x 4 1 -3 8 8 0"), ["line 2", "negative dimension"]),
    (GOOD_PROTO.replace('"z ,"', '" ,"'), ["line 4", "no output blob"]),
    (GOOD_PROTO.replace("ReLU relu 1 1 y z", "ReLU relu 1 5 y z"), ["line 7", "layer 'relu'", "5 outputs"]),
    (GOOD_PROTO.replace("ReLU relu 1 1", "ReLU relu x 1"), ["line 7", "input count"]),
    (GOOD_PROTO.replace('"ReLU relu 1 1 y z ,"', '"ReLU ,"'), ["line 7", "needs a type, a name"]),
])
def test_bad_proto(tmp_path, text, fragments):
    proto, _ = write(tmp_path, text)
    expect_error(proto, None, str(proto), *fragments)


def test_undecodable_proto_names_the_line(tmp_path):
    data = GOOD_PROTO.encode().replace(b"ReLU relu", b"ReLU re\xfflu")
    proto, _ = write(tmp_path, data)
    expect_error(proto, None, "line 7", "not UTF-8")


def test_missing_file_is_named(tmp_path):
    expect_error(tmp_path / "nope.tnnproto", None, "nope.tnnproto", "cannot read the proto")
    proto, _ = write(tmp_path)
    expect_error(proto, tmp_path / "nope.tnnmodel", "nope.tnnmodel", "cannot read the model")


# ---- .tnnmodel -----------------------------------------------------------------------------
# layout of good_model(): magic(4) count(4) | header: type(4) "Convolution"(4+11) "conv"(4+4)
# | body: "conv"(4+4) has_bias(4) | filter buffer: magic(4) type(4) length(4) rank(4) dims(16) ...
HEADER_END = 8 + 4 + 15 + 8
FILTER_AT = HEADER_END + 8 + 4


def patch(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + struct.pack("<i", value) + data[offset + 4:]


@pytest.mark.parametrize("mutate, fragments", [
    (lambda d: d[:len(d) // 2], ["truncated file"]),
    (lambda d: d[:HEADER_END + 2], ["layer 'conv'", "truncated"]),
    (lambda d: patch(d, 4, 9999), ["resource count 9999 does not fit"]),
    (lambda d: patch(d, 4, -5), ["resource count"]),
    (lambda d: patch(d, FILTER_AT, 0x12345678), ["layer 'conv'", "bad buffer magic"]),
    (lambda d: patch(d, FILTER_AT + 4, 42), ["layer 'conv'", "unknown buffer data type 42"]),
    (lambda d: patch(d, FILTER_AT + 8, -8), ["layer 'conv'", "negative buffer length"]),
    (lambda d: patch(d, FILTER_AT + 8, 1 << 30), ["layer 'conv'", "needs 1073741824 bytes"]),
    (lambda d: patch(d, FILTER_AT + 8, 7), ["layer 'conv'", "not a whole number"]),
    (lambda d: patch(d, FILTER_AT + 12, 1 << 28), ["layer 'conv'", "rank 268435456 out of range"]),
    (lambda d: patch(d, FILTER_AT + 12, 16)[:FILTER_AT + 24], ["layer 'conv'", "buffer dims needs 64"]),
    (lambda d: patch(d, FILTER_AT + 16, -2), ["layer 'conv'", "negative buffer dims"]),
    (lambda d: patch(d, 12, 1 << 30), ["string needs 1073741824 bytes"]),
    (lambda d: patch(d, 12, -1), ["negative string size"]),
    (lambda d: patch(d, 8, 1 << 20), ["layer type number 1048576 out of range"]),
    (lambda d: d[:16] + b"\xff" + d[17:], ["not valid UTF-8"]),
    (lambda d: d + b"\x01\x02\x03\x04\x05", ["constant count"]),
    (lambda d: d + struct.pack("<Ii", 0x0FABC0004, 0) + b"xyz", ["3 unexpected bytes"]),
])
def test_bad_model(tmp_path, mutate, fragments):
    data = mutate(good_model(tmp_path))
    proto, model = write(tmp_path, data=data)
    message = expect_error(proto, model, str(model), "byte ", *fragments)
    assert "Traceback" not in message


def _string(text: str) -> bytes:
    return struct.pack("<i", len(text)) + text.encode()


def test_undeclared_type_with_resource_is_an_error(tmp_path):
    """LSTMONNX is a TNN type we do not declare: its proto line is kept, its resource refused."""
    text = GOOD_PROTO.replace('" 2 ,"', '" 3 ,"').replace('"1 3 1', '"1 4 1').replace(" x y z ,", " w x y z ,")
    text += '"LSTMONNX lstm 1 1 z w 0.5 64 ,"\n'
    proto, _ = write(tmp_path, text)
    assert tnnformat.load(proto).layer("lstm").params == {"tokens": ["0.5", "64"]}
    data = struct.pack("<Ii", 0x0FABC0004, 1) + struct.pack("<i", 310) + _string("LSTMONNX")
    data += _string("lstm") + b"\0" * 64
    proto, model = write(tmp_path, text, data)
    expect_error(proto, model, str(model), "layer 'lstm'", "LSTMONNX", "layout we do not know")


# ---- property test: mutated and truncated real files give only TnnFormatError -------------------
def _load_bytes(tmp_path, proto_bytes, model_bytes):
    proto, model = tmp_path / "f.tnnproto", tmp_path / "f.tnnmodel"
    proto.write_bytes(proto_bytes)
    model.write_bytes(model_bytes)
    tracemalloc.start()
    try:
        tnnformat.load(proto, model)
    except TnnFormatError as exc:
        assert str(exc).startswith(str(proto)) or str(exc).startswith(str(model))
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    # nothing is allocated from a count read in the file: memory stays within the files' size
    assert peak < 2 * (len(proto_bytes) + len(model_bytes)) + 2**20


@pytest.fixture(scope="module")
def reference_bytes():
    folder = shared_path("tnn-reference", "squeezenet1.1")
    return ((folder / "b2_w1_t0.quantized.tnnproto").read_bytes(),
            (folder / "b2_w1_t0.quantized.tnnmodel").read_bytes())


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(mutation, min_size=1, max_size=3), st.booleans())
def test_mutated_files_fail_cleanly(tmp_path_factory, reference_bytes, mutations, in_model):
    proto_bytes, model_bytes = reference_bytes
    for kind, where, value in mutations:
        if in_model:
            model_bytes = mutate(model_bytes, kind, where, value)
        else:
            proto_bytes = mutate(proto_bytes, kind, where, value)
    _load_bytes(tmp_path_factory.mktemp("m"), proto_bytes, model_bytes)
