"""Train the demo CNN on scikit-learn's handwritten digits and write it as TNN files.

    python data/train_digits.py            # regenerates everything in data/ (about 15 s)
    python data/train_digits.py OUT_DIR    # writes the same files to OUT_DIR instead

It is deterministic (seed 0): rerunning it rewrites byte-identical files.

The digits (1797 images, 8x8, 17 gray levels, UCI) ship inside scikit-learn. They are
upscaled to 16x16 8-bit images; the network reads pixel / 255, i.e. quantization_cmd's
`-n 0 -s 0.00392156862745098`. Network: conv 3x3 (1->8) ReLU, max pool 2, conv 3x3
(8->16) ReLU, max pool 2, conv 3x3 (16->32) ReLU, global average pool, fully connected
(32->10), softmax. Training is plain numpy: im2col convolutions, manual backprop, Adam.
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import tnnformat  # noqa: E402
from tnnformat import DataType, Layer, Net, RawBuffer  # noqa: E402
from tnnformat.layer_types import spec  # noqa: E402
from tnnformat.params import default_params  # noqa: E402

SIZE = 16
SEED = 0
CALIBRATION, HELD_OUT = 40, 400
CHANNELS = (1, 8, 16, 32)
EPOCHS, BATCH, LEARNING_RATE = 40, 32, 3e-3


Params = Dict[str, np.ndarray]


def load_images() -> Tuple[np.ndarray, np.ndarray]:
    """The digits as 16x16 uint8 images and their labels, in a fixed shuffled order."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = np.clip(np.round(digits.images * 255 / 16), 0, 255).astype(np.uint8)
    big = np.stack([np.asarray(Image.fromarray(im).resize((SIZE, SIZE), Image.BILINEAR)) for im in small])
    order = np.random.default_rng(SEED).permutation(len(big))
    return big[order], digits.target[order]


# ---- a tiny numpy CNN ---------------------------------------------------------------------------
def im2col(x: np.ndarray) -> np.ndarray:
    """(n, c, h, w) -> (n, h*w, c*9) for a 3x3 convolution with padding 1."""
    n, c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = np.stack([padded[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=2)
    return cols.reshape(n, c * 9, h * w).transpose(0, 2, 1)


def col2im(cols: np.ndarray, shape: Tuple[int, int, int, int]) -> np.ndarray:
    """The adjoint of `im2col`: (n, h*w, c*9) -> (n, c, h, w), overlapping taps summed."""
    n, c, h, w = shape
    cols = cols.transpose(0, 2, 1).reshape(n, c, 9, h, w)
    padded = np.zeros((n, c, h + 2, w + 2), cols.dtype)
    for k in range(9):
        i, j = divmod(k, 3)
        padded[:, :, i:i + h, j:j + w] += cols[:, :, k]
    return padded[:, :, 1:-1, 1:-1]


def init_params(rng: np.random.Generator) -> Params:
    """He-initialized convolution weights (cout, cin*9), zero biases, the 10-way classifier."""
    params = {}
    for index, (cin, cout) in enumerate(zip(CHANNELS[:-1], CHANNELS[1:])):
        params[f"w{index}"] = rng.standard_normal((cout, cin * 9)) * np.sqrt(2 / (cin * 9))
        params[f"b{index}"] = np.zeros(cout)
    params["fc_w"] = rng.standard_normal((10, CHANNELS[-1])) * np.sqrt(1 / CHANNELS[-1])
    params["fc_b"] = np.zeros(10)
    return params


def forward(params: Params, x: np.ndarray, keep: bool = False):
    """Logits for x (n, 1, 16, 16); with `keep`, also what `backward` needs."""
    cache = []
    for index in range(3):
        n, c, h, w = x.shape
        cols = im2col(x)
        y = (cols @ params[f"w{index}"].T + params[f"b{index}"]).transpose(0, 2, 1).reshape(n, -1, h, w)
        relu = np.maximum(y, 0)
        cache.append((x.shape, cols, y))
        if index < 2:
            pooled = relu.reshape(n, -1, h // 2, 2, w // 2, 2).max(axis=(3, 5))
            cache.append((relu, pooled))
            x = pooled
        else:
            x = relu
    features = x.mean(axis=(2, 3))
    logits = features @ params["fc_w"].T + params["fc_b"]
    return (logits, cache, x, features) if keep else logits


def backward(params: Params, x: np.ndarray, labels: np.ndarray) -> Tuple[float, Params]:
    """Mean softmax cross-entropy of a batch and its gradient for every parameter."""
    logits, cache, last, features = forward(params, x, keep=True)
    shifted = np.exp(logits - logits.max(1, keepdims=True))
    probs = shifted / shifted.sum(1, keepdims=True)
    loss = -np.mean(np.log(probs[np.arange(len(labels)), labels] + 1e-12))
    grads = {}
    d_logits = probs
    d_logits[np.arange(len(labels)), labels] -= 1
    d_logits /= len(labels)
    grads["fc_w"], grads["fc_b"] = d_logits.T @ features, d_logits.sum(0)
    d = (d_logits @ params["fc_w"])[:, :, None, None] * np.ones_like(last) / (last.shape[2] * last.shape[3])
    for index in (2, 1, 0):
        if index < 2:
            relu, pooled = cache.pop()
            n, c, h, w = relu.shape
            mask = relu == np.repeat(np.repeat(pooled, 2, axis=2), 2, axis=3)
            d = np.repeat(np.repeat(d, 2, axis=2), 2, axis=3) * mask
        shape, cols, y = cache.pop()
        d = d * (y > 0)
        d_flat = d.reshape(d.shape[0], d.shape[1], -1).transpose(0, 2, 1)  # (n, hw, cout)
        grads[f"w{index}"] = np.einsum("npo,npk->ok", d_flat, cols)
        grads[f"b{index}"] = d_flat.sum((0, 1))
        d = col2im(d_flat @ params[f"w{index}"], shape)
    return loss, grads


def train(images: np.ndarray, labels: np.ndarray) -> Params:
    """Adam on batches of 32, learning rate halved every 15 epochs."""
    rng = np.random.default_rng(SEED)
    params = init_params(rng)
    moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in params.items()}
    x = images[:, None].astype(np.float64) / 255.0
    step = 0
    for epoch in range(EPOCHS):
        order = rng.permutation(len(x))
        rate = LEARNING_RATE * (0.5 ** (epoch // 15))
        for start in range(0, len(x), BATCH):
            batch = order[start:start + BATCH]
            loss, grads = backward(params, x[batch], labels[batch])
            step += 1
            for key, grad in grads.items():
                m, v = moments[key]
                m[:] = 0.9 * m + 0.1 * grad
                v[:] = 0.999 * v + 0.001 * grad ** 2
                params[key] -= rate * (m / (1 - 0.9 ** step)) / (np.sqrt(v / (1 - 0.999 ** step)) + 1e-8)
        print(f"epoch {epoch + 1}/{EPOCHS}: loss {loss:.4f}", file=sys.stderr)
    return params


def accuracy(params: Params, images: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy on uint8 images read as pixel / 255."""
    logits = forward(params, images[:, None].astype(np.float64) / 255.0)
    return float(np.mean(logits.argmax(1) == labels))


# ---- the TNN model ----------------------------------------------------------------------------
def layer(type_name: str, name: str, inputs: Iterable[str], outputs: Iterable[str], **params) -> Layer:
    """A TNN layer with every parameter its type has, unnamed ones at TNN's defaults."""
    return Layer(type_name, name, list(inputs), list(outputs), default_params(spec(type_name).params, **params))


def to_tnn(params: Params) -> Net:
    """The trained network as a float TNN Net (input `input` 1x1x16x16, output `prob`)."""
    layers, resources, blob = [], {}, "input"
    for index, (cin, cout) in enumerate(zip(CHANNELS[:-1], CHANNELS[1:])):
        conv, relu = f"conv{index + 1}", f"relu{index + 1}"
        layers.append(layer("Convolution", conv, [blob], [conv], group=1, input_channel=cin, output_channel=cout,
                            kernel_h=3, kernel_w=3, stride_h=1, stride_w=1, pad_h=1, pad_w=1, bias=1, pad_type=-1))
        layers.append(layer("ReLU", relu, [conv], [relu]))
        resources[conv] = {"filter": RawBuffer.from_array(params[f"w{index}"].reshape(cout, cin, 3, 3).astype(np.float32)),
                           "bias": RawBuffer.from_array(params[f"b{index}"].astype(np.float32))}
        blob = relu
        if index < 2:
            pool = f"pool{index + 1}"
            layers.append(layer("Pooling", pool, [blob], [pool], pool_type=0, kernel_h=2, kernel_w=2,
                                stride_h=2, stride_w=2, pad_h=0, pad_w=0))
            blob = pool
    # kernel 0 is the input's size; pad_type -1 keeps the output 1x1 (with SAME it would not be)
    layers.append(layer("Pooling", "global_pool", [blob], ["global_pool"], pool_type=1, kernel_h=0, kernel_w=0,
                        stride_h=1, stride_w=1, pad_h=0, pad_w=0, pad_type=-1))
    layers.append(layer("InnerProduct", "fc", ["global_pool"], ["fc"], num_output=10, has_bias=1, transpose=0, axis=1))
    layers.append(layer("SoftmaxCaffe", "prob", ["fc"], ["prob"], axis=1))
    resources["fc"] = {"weight": RawBuffer.from_array(params["fc_w"].astype(np.float32)),
                       "bias": RawBuffer.from_array(params["fc_b"].astype(np.float32))}
    return Net(inputs={"input": (1, 1, SIZE, SIZE)}, outputs=["prob"], layers=layers,
               input_types={"input": DataType.FLOAT}, resources=resources)


def write_images(folder: Path, images: np.ndarray, labels: np.ndarray, prefix: str) -> List[Tuple[str, int]]:
    """Lossless 8-bit grayscale PNGs `<prefix>_NNN.png` in a fresh `folder`; (name, label) pairs."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    names = []
    for index, (image, label) in enumerate(zip(images, labels)):
        name = f"{prefix}_{index:03d}.png"
        Image.fromarray(image, mode="L").save(folder / name, optimize=True)
        names.append((name, int(label)))
    return names


def main(out: Path = HERE) -> None:
    """Train, then write the model, calibration/, heldout/ and heldout_labels.txt to `out`."""
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    images, labels = load_images()
    held_x, held_y = images[:HELD_OUT], labels[:HELD_OUT]
    cal_x, cal_y = images[HELD_OUT:HELD_OUT + CALIBRATION], labels[HELD_OUT:HELD_OUT + CALIBRATION]
    train_x, train_y = images[HELD_OUT + CALIBRATION:], labels[HELD_OUT + CALIBRATION:]
    params = train(train_x, train_y)
    tnnformat.save(to_tnn(params), out / "digits.tnnproto", out / "digits.tnnmodel")
    write_images(out / "calibration", cal_x, cal_y, "cal")
    names = write_images(out / "heldout", held_x, held_y, "digit")
    (out / "heldout_labels.txt").write_text("".join(f"{n} {k}\n" for n, k in names))
    print(f"trained in {time.perf_counter() - started:.0f} s; held-out accuracy "
          f"{100 * accuracy(params, held_x, held_y):.2f}% on {len(held_y)} images, "
          f"train {100 * accuracy(params, train_x, train_y):.2f}%")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
