"""tnnformat reads TNN's files and writes them back exactly as TNN's packer does."""
from __future__ import annotations

import re

import numpy as np
import pytest

import tnnformat
from kernels import with_random_resources
from tnnformat import DataType, Layer, Net, RawBuffer
from tnnformat.layer_types import spec
from tnnformat.params import write_params

from conftest import shared_path

PROTOS = ["densenet", "inception_v3", "inception_v4", "mobilenet_v1", "mobilenet_v2",
          "quant_inception_v3", "quant_mobilenet_v1", "quant_mobilenet_v2", "quant_resnet50",
          "quant_squeezenet_v1.0", "quant_squeezenet_v1.1", "resnet50", "shufflenet_v2",
          "squeezenet_v1.0", "squeezenet_v1.1"]
REFERENCE = ["squeezenet1.1", "b0_w0_t0.quantized", "b0_w0_t2.quantized", "b2_w1_t0.quantized",
             "b2_w1_t1.quantized", "b3_w3_t1.quantized"]


def proto_lines(path):
    return [line[1:-2].strip() for line in path.read_text().splitlines()]


@pytest.mark.parametrize("name", PROTOS)
def test_benchmark_proto_round_trips_in_packer_layout(name, tmp_path):
    source = shared_path("tnn-protos", name + ".tnnproto")
    net = tnnformat.load(source)
    out = tmp_path / "out.tnnproto"
    tnnformat.save(net, out)
    assert tnnformat.load(out) == net

    text = out.read_text()
    lines = text.splitlines()
    assert text.endswith("\n") and all(re.fullmatch(r'".*,"', line) for line in lines)
    assert lines[0] == f'"1 {len(net.all_blobs())} 1 4206624772 ,"'
    # v1 "name n c h w" becomes v2 "name rank dims... data_type"
    original = proto_lines(source)
    name0, *dims = original[1].split()
    assert lines[1] == '"' + " ".join([name0, str(len(dims)), *dims, "0"]) + ' ,"'
    assert lines[2] == '" ' + " ".join(net.all_blobs()) + ' ,"'
    assert lines[3] == '"' + " ".join(sorted(original[3].split())) + ' ,"'
    assert lines[4] == f'" {len(net.layers)} ,"'
    # each layer line keeps its tokens and appends only the declared defaults TNN's writer adds
    for before, after, layer in zip(original[5:], lines[5:], net.layers):
        old, new = before.split(), after[1:-2].split()
        assert new[:len(old)] == old, layer.name
        fields = spec(layer.type).params
        defaults = write_params(fields, {f.name: layer.params[f.name] for f in fields})
        assert new[len(new) - len(defaults):] == defaults


@pytest.mark.parametrize("prefix", REFERENCE)
def test_tnn_written_files_save_back_byte_identical(prefix, tmp_path):
    proto = shared_path("tnn-reference", "squeezenet1.1", prefix + ".tnnproto")
    model = proto.with_suffix(".tnnmodel")
    net = tnnformat.load(proto, model)
    tnnformat.save(net, tmp_path / "a.tnnproto", tmp_path / "a.tnnmodel")
    assert (tmp_path / "a.tnnproto").read_bytes() == proto.read_bytes()
    assert (tmp_path / "a.tnnmodel").read_bytes() == model.read_bytes()
    assert tnnformat.load(tmp_path / "a.tnnproto", tmp_path / "a.tnnmodel") == net


def test_reference_int8_model_content():
    """The int8 files carry what TNN-NOTES.md describes: BlobScales and int8 weights."""
    folder = shared_path("tnn-reference", "squeezenet1.1")
    net = tnnformat.load(folder / "b0_w0_t0.quantized.tnnproto", folder / "b0_w0_t0.quantized.tnnmodel")
    assert len(net.layers) == 39
    conv = net.layer("conv1_1")
    assert conv.type == "Convolution" and conv.quantized and conv.params["activation_type"] == 1
    res = net.resources["conv1_1"]
    # TNN's tool writes int8 weights without dims
    assert res["filter"].data_type == DataType.INT8 and res["filter"].data.size == 64 * 3 * 3 * 3
    assert res["bias"].data_type == DataType.INT32
    assert res["scale"].numpy().shape == (64,)
    scale = net.blob_scale("data_0")
    assert scale["scale"].numpy().shape == (3,) and scale["zero_point"].data_type == DataType.INT8
    for layer in net.layers:
        if layer.quantized:
            for blob in layer.inputs + layer.outputs:
                assert net.blob_scale(blob) is not None, blob


def _tiny_net(buffer_type=DataType.FLOAT) -> Net:
    filt = np.arange(2 * 3 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 3) / 10
    conv = Layer("Convolution", "conv", ["x"], ["y"], {
        "group": 1, "input_channel": 3, "output_channel": 2, "kernel_h": 3, "kernel_w": 3,
        "stride_h": 1, "stride_w": 1, "pad_h": 1, "pad_w": 1, "bias": 1, "pad_type": 0,
        "dilation_h": 1, "dilation_w": 1, "activation_type": 0})
    relu = Layer("ReLU", "relu", ["y"], ["z"], {})
    return Net(inputs={"x": (1, 3, 8, 8)}, outputs=["z"], layers=[conv, relu],
               input_types={"x": DataType.FLOAT},
               resources={"conv": {"filter": RawBuffer.from_array(filt, buffer_type),
                                   "bias": RawBuffer.from_array(np.ones(2, np.float32), buffer_type)}},
               constants={"k": RawBuffer.from_array(np.arange(4, dtype=np.int32))})


def test_model_round_trip_is_stable(tmp_path):
    net = _tiny_net()
    tnnformat.save(net, tmp_path / "a.tnnproto", tmp_path / "a.tnnmodel")
    loaded = tnnformat.load(tmp_path / "a.tnnproto", tmp_path / "a.tnnmodel")
    net.blobs = net.all_blobs()
    assert loaded == net
    tnnformat.save(loaded, tmp_path / "b.tnnproto", tmp_path / "b.tnnmodel")
    assert (tmp_path / "a.tnnmodel").read_bytes() == (tmp_path / "b.tnnmodel").read_bytes()
    assert (tmp_path / "a.tnnproto").read_bytes() == (tmp_path / "b.tnnproto").read_bytes()


def test_half_weights_are_kept_and_widen_to_float(tmp_path):
    net = _tiny_net(DataType.HALF)
    tnnformat.save(net, tmp_path / "h.tnnproto", tmp_path / "h.tnnmodel")
    loaded = tnnformat.load(tmp_path / "h.tnnproto", tmp_path / "h.tnnmodel")
    filt = loaded.resources["conv"]["filter"]
    assert filt.data_type == DataType.HALF
    widened = filt.numpy(np.float32)
    assert widened.dtype == np.float32 and widened.shape == (2, 3, 3, 3)
    np.testing.assert_allclose(widened, np.arange(54).reshape(2, 3, 3, 3) / 10, rtol=1e-3)
    tnnformat.save(loaded, tmp_path / "f.tnnproto", tmp_path / "f.tnnmodel", storage=DataType.FLOAT)
    as_float = tnnformat.load(tmp_path / "f.tnnproto", tmp_path / "f.tnnmodel")
    assert as_float.resources["conv"]["filter"].data_type == DataType.FLOAT
    np.testing.assert_array_equal(as_float.resources["conv"]["filter"].numpy(), widened)
    assert (tmp_path / "f.tnnmodel").stat().st_size > (tmp_path / "h.tnnmodel").stat().st_size


def test_unknown_layer_type_keeps_its_tokens(tmp_path):
    net = _tiny_net()
    net.layers.append(Layer("Einsum", "fancy", ["z"], ["w"], {"tokens": ["3", "0.5", "abc"]}))
    net.outputs = ["w"]
    tnnformat.save(net, tmp_path / "u.tnnproto", tmp_path / "u.tnnmodel")
    assert '"Einsum fancy 1 1 z w 3 0.5 abc ,"' in (tmp_path / "u.tnnproto").read_text()
    loaded = tnnformat.load(tmp_path / "u.tnnproto", tmp_path / "u.tnnmodel")
    assert loaded.layer("fancy").params == {"tokens": ["3", "0.5", "abc"]}


def test_quantized_prefix_round_trips(tmp_path):
    net = _tiny_net()
    net.layers[1] = Layer("ReLU", "relu", ["y"], ["z"], {}, quantized=True)
    tnnformat.save(net, tmp_path / "q.tnnproto")
    assert '"QuantizedReLU relu 1 1 y z ,"' in (tmp_path / "q.tnnproto").read_text()
    layer = tnnformat.load(tmp_path / "q.tnnproto").layer("relu")
    assert layer.type == "ReLU" and layer.quantized and layer.type_str == "QuantizedReLU"


def test_floats_keep_tnn_text_unless_that_loses_bits(tmp_path):
    net = _tiny_net()
    net.layers.append(Layer("HardSigmoid", "hs", ["z"], ["w"],
                            {"alpha": float(np.float32(1 / 6)), "beta": 0.5}))
    net.outputs = ["w"]
    tnnformat.save(net, tmp_path / "f.tnnproto")
    line = [l for l in (tmp_path / "f.tnnproto").read_text().splitlines() if "HardSigmoid" in l][0]
    assert line.endswith(' 0.166666672 0.5 ,"')
    assert tnnformat.load(tmp_path / "f.tnnproto").layer("hs").params["alpha"] == float(np.float32(1 / 6))


@pytest.mark.parametrize("name", PROTOS)
def test_random_resources_round_trip(name, tmp_path):
    net = with_random_resources(tnnformat.load(shared_path("tnn-protos", name + ".tnnproto")))
    again = with_random_resources(tnnformat.load(shared_path("tnn-protos", name + ".tnnproto")))
    assert net == again  # seeded
    tnnformat.save(net, tmp_path / "r.tnnproto", tmp_path / "r.tnnmodel")
    loaded = tnnformat.load(tmp_path / "r.tnnproto", tmp_path / "r.tnnmodel")
    assert loaded == net
    tnnformat.save(loaded, tmp_path / "s.tnnproto", tmp_path / "s.tnnmodel")
    assert (tmp_path / "r.tnnmodel").read_bytes() == (tmp_path / "s.tnnmodel").read_bytes()


def test_save_leaves_no_partial_output(tmp_path):
    net = _tiny_net()
    del net.resources["conv"]["bias"]
    with pytest.raises(tnnformat.TnnFormatError, match="conv.*bias"):
        tnnformat.save(net, tmp_path / "p.tnnproto", tmp_path / "p.tnnmodel")
    assert list(tmp_path.iterdir()) == []


def test_raw_buffers_of_every_data_type_keep_type_dims_and_bytes(tmp_path):
    net = _tiny_net()
    rng = np.random.default_rng(0)
    net.constants = {
        "f32": RawBuffer.from_array(rng.standard_normal((2, 3)).astype(np.float32)),
        "f16": RawBuffer.from_array(rng.standard_normal(5).astype(np.float16)),
        "i8": RawBuffer.from_array(np.arange(-4, 4, dtype=np.int8).reshape(2, 2, 2)),
        "i32": RawBuffer.from_array(np.arange(6, dtype=np.int32), dims=()),
        "bf16": RawBuffer(DataType.BFP16, (3,), np.array([0x3F80, 0x4000, 0xC040], np.uint16)),
        "i64": RawBuffer.from_array(np.array([1, -2**40], np.int64)),
        "u32": RawBuffer.from_array(np.array([7, 2**31], np.uint32)),
        "empty": RawBuffer.from_array(np.zeros(0, np.float32), dims=()),  # an empty buffer has no dims on disk
    }
    tnnformat.save(net, tmp_path / "t.tnnproto", tmp_path / "t.tnnmodel")
    loaded = tnnformat.load(tmp_path / "t.tnnproto", tmp_path / "t.tnnmodel")
    assert loaded.constants == net.constants
    assert loaded.constants["bf16"].numpy(np.float32).tolist() == [1.0, 2.0, -3.0]
    assert loaded.constants["i8"].numpy().shape == (2, 2, 2)


@pytest.mark.parametrize("line, params", [
    ("InstBatchNormCxx in 1 1 x y 16 1e-05", {"channels": 16, "eps": float(np.float32(1e-5))}),
    ("LayerNorm ln 1 1 x y 2", {"reduce_dims_size": 2, "eps": float(np.float32(1e-5))}),
    ("Power pw 1 1 x y 2 0.5", {"exponent": 2.0, "scale": 0.5, "shift": 0.0}),
    ("Tile t 1 1 x y 1 2 3 1", {"reps": [1, 2, 3, 1]}),
    ("Expand e 1 1 x y 4 1 3 8 8", {"shape": [1, 3, 8, 8]}),
    ("ArgMaxOrMin a 1 1 x y 1 1", {"mode": 1, "axis": 1, "keep_dims": 1, "select_last_index": 0}),
    ("PixelShuffle p 1 1 x y 2", {"upscale_factor": 2}),
])
def test_more_layer_types_read_with_tnn_defaults_and_round_trip(tmp_path, line, params):
    proto = tmp_path / "m.tnnproto"
    proto.write_text(f'"1 2 1 4206624772 ,"\n"x 4 1 3 8 8 0 ,"\n" x y ,"\n"y ,"\n" 1 ,"\n"{line} ,"\n')
    net = tnnformat.load(proto)
    assert net.layers[0].params == params
    tnnformat.save(net, tmp_path / "n.tnnproto")
    assert tnnformat.load(tmp_path / "n.tnnproto") == net
