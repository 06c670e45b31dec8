"""load() checks the net as a whole: every broken structure is one TnnFormatError naming the
file and the layer, before any command runs it."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import tnnformat
from tnnformat import BlobScale, RawBuffer, TnnFormatError

from conftest import shared_path

DATA = Path(__file__).resolve().parents[1] / "data"
PROTO, MODEL = DATA / "digits.tnnproto", DATA / "digits.tnnmodel"


def expect_error(proto, model, *fragments, **kwargs):
    with pytest.raises(TnnFormatError) as info:
        tnnformat.load(proto, model, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def proto_with(tmp_path, *replacements, count=None):
    """The demo's proto with text replaced (each must apply); the demo's own model beside it."""
    text = PROTO.read_text()
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, count or -1)
    path = tmp_path / "m.tnnproto"
    path.write_text(text)
    return path


@pytest.mark.parametrize("replacements, fragments", [
    # graph
    ([("ReLU relu2 1 1 conv2 relu2", "ReLU relu1 1 1 conv2 relu2")], ["layer 'relu1'", "second layer with this name"]),
    ([("ReLU relu2 1 1 conv2 relu2", "ReLU relu2 1 1 conv2 relu1")], ["layer 'relu2'", "'relu1'", "already produces"]),
    ([("Pooling pool1 1 1 relu1 pool1", "Pooling pool1 1 1 relu2 pool1")], ["layer 'pool1'", "only by a later layer"]),
    ([("Pooling pool1 1 1 relu1 pool1", "Pooling pool1 1 1 nothing pool1")], ["layer 'pool1'", "by no layer or input"]),
    ([('"prob ,"', '"prob2 ,"')], ["output blob 'prob2' is produced by no layer"]),
    ([("ReLU relu1 1 1 conv1 relu1", "ReLU relu1 1 1 conv1 input")], ["layer 'relu1'", "'input'", "the input already"]),
    # params: TNN's int32 and what they mean
    ([("1 1 8 3 3 1 1 1 1 1 -1", "1 1 8 3 2147483648 1 1 1 1 1 -1")], ["layer 'conv1'", "2147483648", "int32"]),
    ([("1 1 8 3 3 1 1 1 1 1 -1", "1 1 8 3 4294967295 1 1 1 1 1 -1")], ["layer 'conv1'", "int32"]),
    ([("1 1 8 3 3 1 1 1 1 1 -1", "1 1 8 0 3 1 1 1 1 1 -1")], ["layer 'conv1'", "kernel_h", "at least 1"]),
    ([("1 1 8 3 3 1 1 1 1 1 -1", "1 1 8 3 3 0 1 1 1 1 -1")], ["layer 'conv1'", "stride_h", "at least 1"]),
    ([("1 1 8 3 3 1 1 1 1 1 -1 1 1", "1 1 8 3 3 1 1 1 1 1 -1 0 1")], ["layer 'conv1'", "dilation_h"]),
    ([("1 1 8 3 3 1 1 1 1 1 -1", "1 1 8 3 3 1 1 -1 1 1 -1")], ["layer 'conv1'", "pad_h", "at least 0"]),
    ([("conv2 1 8 16 3 3", "conv2 3 8 16 3 3")], ["layer 'conv2'", "16 output channels", "3 groups"]),
    ([("conv2 1 8 16 3 3", "conv2 16 8 16 3 3")], ["layer 'conv2'", "8 channels", "16 groups"]),
    ([("pool1 0 2 2 2 2", "pool1 0 2 2 0 2")], ["layer 'pool1'", "stride_h"]),
    ([("pool1 0 2 2 2 2 0 0", "pool1 0 2 2 2 2 2 0")], ["layer 'pool1'", "pad_h", "larger than the kernel"]),
    ([("fc 10 1 0 1", "fc 0 1 0 1")], ["layer 'fc'", "num_output"]),
    ([("conv2 1 8 16 3 3 1 1 1 1 1 -1 1 1 0", "conv2 1 8 16 3 3 1 1 1 1 1 -1 1 1 7")],
     ["layer 'conv2'", "activation_type"]),
    ([("pool1 0 2 2 2 2", "pool1 2 2 2 2 2")], ["layer 'pool1'", "pool_type", "0 or 1"]),
    ([("conv2 1 8 16 3 3 1 1 1 1 1", "conv2 1 8 16 3 3 1 1 1 1 1000000")], ["layer 'conv2'", "'bias'", "0 or 1"]),
    ([("fc 10 1 0 1", "fc 10 2147483647 0 1")], ["layer 'fc'", "has_bias"]),
    ([("ReLU relu2", "ReLX relu2")], ["layer 'relu2'", "'ReLX' is not a TNN layer type"]),
    # resources against params and shapes
    ([("fc 10 1 0 1", "fc 12 1 0 1")], ["digits.tnnmodel", "layer 'fc'", "'weight' holds 320", "384"]),
    ([("conv2 1 8 16 3 3", "conv2 1 8 16 3 5")], ["layer 'conv2'", "'filter' holds 1152", "1920"]),
    ([("conv3 1 16 32 3 3", "conv3 1 16 24 3 3")], ["layer 'conv3'", "'filter'"]),
    # the memory cap: one number turns the demo into terabytes (the pad_h 1 -> 1000000)
    ([("1 1 8 3 3 1 1 1 1 1 -1", "1 1 8 3 3 1 1 1000000 1 1 -1")],
     ["layer 'conv1'", "pad_h", "larger than the kernel allows"]),
])
def test_broken_structure_is_refused_at_load(tmp_path, replacements, fragments):
    expect_error(proto_with(tmp_path, *replacements), MODEL, *fragments)


def test_float_params_must_be_finite(tmp_path):
    text = PROTO.read_text().replace('" 11 ,"', '" 12 ,"').replace('"prob ,"', '"clip ,"').replace(
        " conv1 ", " clip conv1 ", 1).replace('"1 12 1', '"1 13 1') + '"Clip clip 1 1 prob clip 0 1e39 ,"\n'
    path = tmp_path / "m.tnnproto"
    path.write_text(text)
    expect_error(path, MODEL, "layer 'clip'", "'max'", "finite")


def test_the_blob_cap_is_configurable():
    tnnformat.load(PROTO, MODEL)
    expect_error(PROTO, MODEL, "layer 'conv1'", "over the cap", blob_cap=1000)


def saved(tmp_path, net):
    proto, model = tmp_path / "n.tnnproto", tmp_path / "n.tnnmodel"
    tnnformat.save(net, proto, model)
    return proto, model


@pytest.mark.parametrize("layer, key, values", [
    ("conv1", "bias", np.zeros(7, np.float32)),
    ("fc", "bias", np.zeros(11, np.float32)),
    ("conv2", "filter", np.zeros(100, np.float32)),
])
def test_resource_sizes_must_fit(tmp_path, layer, key, values):
    net = tnnformat.load(PROTO, MODEL)
    net.resources[layer][key] = RawBuffer.from_array(values)
    expect_error(*saved(tmp_path, net), f"layer '{layer}'", f"'{key}' holds {values.size}")


def test_a_float_layer_with_int8_weights_is_refused(tmp_path):
    net = tnnformat.load(PROTO, MODEL)
    filter_ = net.resources["conv2"]["filter"]
    net.resources["conv2"]["filter"] = RawBuffer.from_array(np.zeros(filter_.data.size, np.int8))
    net.resources["conv2"]["zero_point"] = RawBuffer.from_array(np.zeros(1, np.int8))
    net.resources["conv2"]["scale"] = RawBuffer.from_array(np.ones(1, np.float32))
    expect_error(*saved(tmp_path, net), "layer 'conv2'", "INT8", "do not belong together")


def quantized_conv2(net, scale_count=16):
    """conv2 made a quantized layer with int8 weights and blob scales on its blobs."""
    layer = net.layer("conv2")
    layer.quantized = True
    filter_ = net.resources["conv2"]["filter"]
    net.resources["conv2"].update(filter=RawBuffer.from_array(np.zeros(filter_.data.size, np.int8)),
                                  zero_point=RawBuffer.from_array(np.zeros(scale_count, np.int8)),
                                  scale=RawBuffer.from_array(np.ones(scale_count, np.float32)),
                                  bias=RawBuffer.from_array(np.zeros(16, np.int32)))
    for blob in layer.inputs + layer.outputs:
        net.set_scale(blob, BlobScale(np.ones(1, np.float32), np.zeros(1, np.int8)))
    return net


def test_a_quantized_layer_needs_its_int8_data(tmp_path):
    tnnformat.load(*saved(tmp_path, quantized_conv2(tnnformat.load(PROTO, MODEL))))
    expect_error(*saved(tmp_path, quantized_conv2(tnnformat.load(PROTO, MODEL), 5)), "layer 'conv2'",
                 "'scale' holds 5")
    net = quantized_conv2(tnnformat.load(PROTO, MODEL))
    net.resources["conv2"]["filter"] = RawBuffer.from_array(np.zeros(1152, np.float32))
    expect_error(*saved(tmp_path, net), "layer 'conv2'", "is quantized", "FLOAT, not INT8")
    net = quantized_conv2(tnnformat.load(PROTO, MODEL))
    del net.resources["pool1_scale_data_"]
    expect_error(*saved(tmp_path, net), "layer 'conv2'", "blob 'pool1' has no blob scale")


@pytest.mark.parametrize("count", [3, 0])
def test_blob_scales_have_one_value_or_one_per_channel(tmp_path, count):
    net = quantized_conv2(tnnformat.load(PROTO, MODEL))
    net.set_scale("conv2", BlobScale(np.ones(count, np.float32), np.zeros(count, np.int8)))
    expect_error(*saved(tmp_path, net), "blob scale of 'conv2'", "1 or 16")


def test_every_resource_belongs_to_the_proto(tmp_path):
    proto = proto_with(tmp_path, ("conv3", "conv4"))
    expect_error(proto, MODEL, "digits.tnnmodel", "resource 'conv3' belongs to no layer")


def test_a_layer_with_weights_needs_its_resource(tmp_path):
    net = tnnformat.load(PROTO, MODEL)
    del net.resources["fc"]
    expect_error(*saved(tmp_path, net), "layer 'fc'", "needs a resource")


@pytest.fixture(scope="module")
def reference():
    return shared_path("tnn-reference", "squeezenet1.1")


def test_a_float_proto_with_an_int8_model_is_one_clear_error(reference):
    """The issue's case: it used to quantize 'successfully' to an all-NaN table."""
    expect_error(reference / "squeezenet1.1.tnnproto", reference / "b0_w0_t0.quantized.tnnmodel",
                 "layer 'conv1_1'", "INT8", "do not belong together")


def test_an_int8_proto_with_a_float_model_is_one_clear_error(reference):
    expect_error(reference / "b0_w0_t0.quantized.tnnproto", reference / "squeezenet1.1.tnnmodel",
                 "squeezenet1.1.tnnmodel", "layer 'conv1_1'", "no blob scale")


def test_the_real_files_still_load(reference):
    for proto in sorted(reference.glob("*.tnnproto")):
        model = proto.with_suffix(".tnnmodel")
        shapes = tnnformat.validate(tnnformat.load(proto, model), str(proto), str(model))
        assert re.match(r"prob|softmax", sorted(tnnformat.load(proto, model).outputs)[0]) or shapes


def one_layer(tmp_path, type_name, params, resource, inputs=("x",)):
    """A model of one layer on a (1, 4, 8, 8) input, saved and loaded back."""
    layer = tnnformat.Layer(type_name, "the_layer", list(inputs), ["y"], params)
    net = tnnformat.Net(inputs={"x": (1, 4, 8, 8)}, outputs=["y"], layers=[layer],
                        resources={"the_layer": {k: RawBuffer.from_array(np.asarray(v, np.float32))
                                                 for k, v in resource.items()}} if resource is not None else {})
    proto, model = tmp_path / "one.tnnproto", tmp_path / "one.tnnmodel"
    tnnformat.save(net, proto, model)
    return proto, model


DECONV = dict(group=1, input_channel=4, output_channel=2, kernel_h=2, kernel_w=2, stride_h=2, stride_w=2,
              pad_h=0, pad_w=0, bias=1, pad_type=-1, dilation_h=1, dilation_w=1, activation_type=0)


@pytest.mark.parametrize("type_name, params, good, bad, fragment", [
    ("Deconvolution", DECONV, {"filter": np.ones(32), "bias": np.ones(2)}, {"filter": np.ones(16), "bias": np.ones(2)},
     "'filter' holds 16"),
    ("Deconvolution", DECONV, {"filter": np.ones(32), "bias": np.ones(2)}, {"filter": np.ones(32), "bias": np.ones(4)},
     "'bias' holds 4"),
    ("BatchNormCxx", {}, {"scale": np.ones(4), "bias": np.ones(4)}, {"scale": np.ones(3), "bias": np.ones(4)},
     "'scale' holds 3"),
    ("InstBatchNormCxx", {"channels": 4, "eps": 1e-5}, {"scale": np.ones(4), "bias": np.ones(4)},
     {"scale": np.ones(4), "bias": np.ones(5)}, "'bias' holds 5"),
    ("Scale", {"axis": 1, "num_axes": 1, "bias_term": 1}, {"scale": np.ones(1), "bias": np.ones(4)},
     {"scale": np.ones(4), "bias": np.ones(2)}, "'bias' holds 2"),
    ("PReLU", {"channel_shared": 0, "has_filler": 0}, {"slope": np.ones(4)}, {"slope": np.ones(3)}, "'slope' holds 3"),
    ("PReLU", {"channel_shared": 1, "has_filler": 0}, {"slope": np.ones(1)}, {"slope": np.ones(4)}, "'slope' holds 4"),
    ("InnerProduct", {"num_output": 3, "has_bias": 1, "transpose": 0, "axis": 1},
     {"weight": np.ones(768), "bias": np.ones(3)}, {"weight": np.ones(768), "bias": np.ones(1)}, "'bias' holds 1"),
    ("Mul", {"weight_input_index": 1}, {"element": np.ones((1, 4, 1, 1))}, None, "needs its 'element' constant"),
])
def test_every_type_with_resources_is_checked(tmp_path, type_name, params, good, bad, fragment):
    tnnformat.load(*one_layer(tmp_path, type_name, params, good))
    expect_error(*one_layer(tmp_path, type_name, params, bad), "layer 'the_layer'", fragment)


def test_a_const_holds_what_its_dims_say(tmp_path):
    tnnformat.load(*one_layer(tmp_path, "Const", {"dims": [2, 3]}, {"weight": np.ones(6)}, inputs=()))
    expect_error(*one_layer(tmp_path, "Const", {"dims": [2, 3]}, {"weight": np.ones(5)}, inputs=()), "'weight' holds 5")


def test_buffer_dims_must_hold_its_values(tmp_path):
    net = tnnformat.load(PROTO, MODEL)
    filter_ = net.resources["conv2"]["filter"]
    net.resources["conv2"]["filter"] = RawBuffer(filter_.data_type, (16, 8, 3, 4), filter_.data)
    expect_error(*saved(tmp_path, net), "layer 'conv2'", "dims [16, 8, 3, 4] but 1152 values")


def test_a_softmax_axis_outside_the_input_is_refused(tmp_path):
    expect_error(proto_with(tmp_path, ("SoftmaxCaffe prob 1 1 fc prob 1", "SoftmaxCaffe prob 1 1 fc prob 1000000")),
                 MODEL, "layer 'prob'", "axis 1000000 is outside")


def test_special_files_are_not_read(tmp_path):
    """A FIFO would block the reader and /dev/zero never ends."""
    import os

    os.mkfifo(tmp_path / "fifo.tnnmodel")
    expect_error(PROTO, tmp_path / "fifo.tnnmodel", "fifo.tnnmodel", "not a regular file")
    expect_error("/dev/zero", MODEL, "/dev/zero", "not a regular file")
