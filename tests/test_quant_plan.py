"""Which layers become int8 and which blobs share a scale, on small graphs."""
from __future__ import annotations

from tnnformat import Layer, Net
from tnnformat.layer_types import spec
from tnnformat.params import default_params

from kernels.tnn_optimizer import fuse_conv_activation
from quantization_cmd.config import from_tnn_flags
from quantization_cmd.plan import make_plan

MIN_MAX, KL_DIVERGENCE, ASY_MIN_MAX = 0, 2, 3


def plan_of(net, blob_method, per_tensor_blobs, shapes):
    """The plan for TNN's flags -b blob_method and -t 1 (per-tensor blobs) or -t 0."""
    return make_plan(net, from_tnn_flags(blob_method, 0, 1 if per_tensor_blobs else 0), shapes)


def methods(plan):
    return {blob: config.method for blob, config in plan.blobs.items()}


def per_tensor(plan):
    return {blob for blob, config in plan.blobs.items() if config.per_tensor}


def layer(type_name, name, inputs, outputs, **params):
    return Layer(type_name, name, inputs, outputs, default_params(spec(type_name).params, **params))


def conv(name, inputs, outputs):
    return layer("Convolution", name, inputs, outputs, group=1, input_channel=4, output_channel=4,
                 kernel_h=1, kernel_w=1, stride_h=1, stride_w=1, pad_h=0, pad_w=0, bias=1)


def pool(name, inputs, outputs, pool_type=0):
    return layer("Pooling", name, inputs, outputs, pool_type=pool_type, kernel_h=2, kernel_w=2,
                 stride_h=2, stride_w=2, pad_h=0, pad_w=0)


def net_of(layers, outputs):
    return Net(inputs={"x": (1, 4, 16, 16)}, outputs=outputs, layers=layers)


def shapes_for(net):
    blobs = set(net.inputs)
    for l in net.layers:
        blobs.update(l.inputs + l.outputs)
    return {b: (1, 4, 16, 16) for b in blobs}


def test_relu_is_fused_into_the_convolution_before_it():
    net = net_of([conv("c1", ["x"], ["a"]), layer("ReLU", "r1", ["a"], ["b"]),
                  conv("c2", ["b"], ["c"]), layer("ReLU", "r2", ["b"], ["d"])], ["c", "d"])
    fused = fuse_conv_activation(net)
    assert [l.name for l in fused.layers] == ["c1", "c2", "r2"]
    assert fused.layers[0].outputs == ["b"] and fused.layers[0].params["activation_type"] == 1
    # c2's output is used by nothing else, but r2 does not consume it: no fusion
    assert fused.layers[1].params["activation_type"] == 0


def test_relu_not_fused_when_the_conv_output_has_other_users():
    net = net_of([conv("c1", ["x"], ["a"]), layer("ReLU", "r1", ["a"], ["b"]),
                  layer("Add", "add", ["a", "b"], ["c"])], ["c"])
    assert [l.name for l in fuse_conv_activation(net).layers] == ["c1", "r1", "add"]


def test_max_pool_takes_its_output_scale_upward_avg_pool_does_not():
    net = net_of([conv("c1", ["x"], ["a"]), layer("ReLU", "r1", ["a"], ["b"]),
                  pool("p1", ["b"], ["c"]), conv("c2", ["c"], ["d"]),
                  pool("p2", ["d"], ["e"], pool_type=1)], ["e"])
    plan = plan_of(net, KL_DIVERGENCE, False, shapes_for(net))
    assert plan.quantized == {"c1", "p1", "c2"}
    # the fused conv output b is the max pool's input: it shares the pool output's scale
    assert plan.scale_source["b"] == "c"
    assert plan.scale_source["c"] == "c" and plan.scale_source["d"] == "d"
    assert plan.scale_source["x"] == "x" and "e" not in plan.scale_source
    assert methods(plan) == {"x": "MIN_MAX", "c": "KL_DIVERGENCE", "d": "KL_DIVERGENCE"}


def test_chains_of_merging_layers_resolve_to_the_last_output():
    net = net_of([conv("c1", ["x"], ["a"]), pool("p1", ["a"], ["b"]),
                  layer("ReLU", "r", ["b"], ["c"]), pool("p2", ["c"], ["d"])], ["d"])
    plan = plan_of(net, MIN_MAX, False, shapes_for(net))
    assert plan.quantized == {"c1", "p1", "r", "p2"}
    assert {b: plan.scale_source[b] for b in "abcd"} == {b: "d" for b in "abcd"}


def test_add_with_a_constant_stays_float_and_concat_is_quantized():
    net = net_of([conv("c1", ["x"], ["a"]), layer("Add", "bias_add", ["a"], ["b"]),
                  layer("Concat", "cat", ["a", "b"], ["c"]), layer("Add", "sum", ["a", "c"], ["d"])],
                 ["d"])
    net.resources["bias_add"] = {}
    plan = plan_of(net, MIN_MAX, False, shapes_for(net))
    assert plan.quantized == {"c1", "cat", "sum"}


def test_inner_product_blobs_are_per_tensor_and_small_blobs_use_min_max():
    net = net_of([conv("c1", ["x"], ["a"]),
                  layer("InnerProduct", "fc", ["a"], ["b"], num_output=10, has_bias=1, transpose=0, axis=1)],
                 ["b"])
    shapes = shapes_for(net)
    shapes["b"] = (1, 10)
    plan = plan_of(net, KL_DIVERGENCE, False, shapes)
    assert per_tensor(plan) == {"a", "b"}
    assert methods(plan)["b"] == "MIN_MAX" and methods(plan)["a"] == "KL_DIVERGENCE"
    assert methods(plan_of(net, ASY_MIN_MAX, False, shapes))["b"] == "ASY_MIN_MAX"
    assert methods(plan_of(net, ASY_MIN_MAX, False, shapes))["x"] == "MIN_MAX"
    assert per_tensor(plan_of(net, MIN_MAX, True, shapes)) == {"x", "a", "b"}


def test_add_that_tnn_would_fuse_with_a_relu6_into_a_1x1_convolution_stays_float():
    """conv(1x1) -> Add -> ReLU6 (MediaPipe's pose models): TNN's runtime would fuse all
    three into the int8 convolution, which then writes the ReLU6's output, a blob no int8
    layer gives a scale (TNN has no int8 ReLU6), so TNN refuses the model. With ReLU the
    fusion is fine (the ReLU shares the Add's scale)."""
    for activation, add_quantized in (("ReLU6", False), ("ReLU", True)):
        net = net_of([conv("c0", ["x"], ["y"]), conv("c1", ["y"], ["a"]), layer("Add", "add", ["a", "y"], ["s"]),
                      layer(activation, "act", ["s"], ["out"])], ["out"])
        plan = plan_of(net, MIN_MAX, False, shapes_for(net))
        assert ("add" in plan.quantized) == add_quantized, activation
        assert {"c0", "c1"} <= plan.quantized
