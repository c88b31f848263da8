"""Converts models written in plain TensorFlow rather than Keras (tf.nn convolutions and
norms, a hand-written transformer, tf.map_fn/tf.scan/tf.while_loop, tf.signal, tf.image,
gathers and scatters, linear algebra, NMS, dilated convolutions on any size) and compares
each with TensorFlow at two input sizes: a measure of the general case, not a test.

    .venv/bin/python scripts/sweep_plain_tf.py [--out DIR] [MODEL ...]   # default: all

Prints one line per model: parity (max relative error) or why it failed, and the size of
the generated model.py.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# TF runs channels-first (NCHW) convolutions on the CPU only through oneDNN, which it turns
# on by itself only on CPUs with AVX-512: on everywhere, so the same models build anywhere.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import numpy as np
import tensorflow as tf
from general import spec

MODELS = {}


def model(f):
    MODELS[f.__name__] = f
    return f


R = np.random.RandomState(7)


def u(*s, lo=-1, hi=1):
    return R.uniform(lo, hi, s).astype(np.float32)


def var(*s, lo=-0.5, hi=0.5):
    return tf.constant(u(*s, lo=lo, hi=hi))


@model
def tfnn_mobilenet():
    w1 = var(3, 3, 3, 8)
    dw = var(3, 3, 8, 1)
    pw = var(1, 1, 8, 16)
    mean, varc = var(8), var(8, lo=0.5, hi=1.5)
    beta, gamma = var(8), var(8, lo=0.5, hi=1.5)
    fc = var(16, 5)
    fb = var(5)

    def fn(x):
        h = tf.nn.conv2d(x, w1, 2, "SAME")
        h = tf.nn.batch_normalization(h, mean, varc, beta, gamma, 1e-3)
        h = tf.nn.relu6(h)
        h = tf.nn.depthwise_conv2d(h, dw, [1, 2, 2, 1], "SAME")
        h = tf.nn.relu6(h)
        h = tf.nn.conv2d(h, pw, 1, "VALID")
        h = tf.nn.avg_pool2d(h, 2, 2, "SAME")
        h = tf.reduce_mean(h, [1, 2])
        return tf.nn.softmax(tf.matmul(h, fc) + fb)

    return fn, [spec(None, 17, 17, 3, name="x")], [[u(2, 17, 17, 3)], [u(1, 17, 17, 3)]]


@model
def tfnn_transformer():
    d, h = 16, 4
    wq, wk, wv, wo = var(d, d), var(d, d), var(d, d), var(d, d)
    w1, w2 = var(d, 32), var(32, d)
    g, b = var(d, lo=0.5, hi=1.5), var(d)

    def ln(x):
        m, v = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - m) * tf.math.rsqrt(v + 1e-5) * g + b

    def fn(x):
        bsz, t = tf.shape(x)[0], tf.shape(x)[1]
        y = ln(x)

        def heads(z):
            return tf.transpose(tf.reshape(z, [bsz, t, h, d // h]), [0, 2, 1, 3])

        q, k, v = heads(y @ wq), heads(y @ wk), heads(y @ wv)
        s = tf.matmul(q, k, transpose_b=True) / tf.sqrt(float(d // h))
        mask = tf.linalg.band_part(tf.ones([t, t]), -1, 0)
        s = s + (1.0 - mask) * -1e9
        a = tf.nn.softmax(s, axis=-1)
        o = tf.reshape(tf.transpose(a @ v, [0, 2, 1, 3]), [bsz, t, d])
        x = x + o @ wo
        y = ln(x)
        return x + tf.nn.gelu(tf.einsum("btd,df->btf", y, w1), approximate=False) @ w2

    return fn, [spec(None, None, d, name="x")], [[u(2, 6, d)], [u(1, 9, d)]]


@model
def map_fn_rows():
    w = var(5)

    def fn(x):
        return tf.map_fn(lambda r: tf.reduce_sum(r * w) + tf.reduce_max(r), x)

    return fn, [spec(None, 5, name="x")], [[u(3, 5)], [u(1, 5)]]


@model
def scan_decay():
    def fn(x):
        return tf.scan(
            lambda a, e: a * 0.9 + e,
            tf.transpose(x, [1, 0, 2]),
            initializer=tf.zeros_like(x[:, 0]),
        )

    return fn, [spec(None, None, 4, name="x")], [[u(2, 6, 4)], [u(3, 3, 4)]]


@model
def dilated_and_transposed():
    w = var(3, 3, 4, 6)
    wt = var(3, 3, 5, 6)

    def fn(x):
        h = tf.nn.conv2d(x, w, 1, "SAME", dilations=2)
        n = tf.shape(x)[0]
        out = tf.stack([n, tf.shape(x)[1] * 2, tf.shape(x)[2] * 2, 5])
        h2 = tf.nn.conv2d_transpose(h, wt, out, 2, "SAME")
        a = tf.nn.atrous_conv2d(x, w, 3, "SAME")
        return h2, a

    return (
        fn,
        [spec(None, None, None, 4, name="x")],
        [[u(2, 8, 8, 4)], [u(1, 6, 10, 4)]],
    )


@model
def gather_scatter():
    table = var(10, 4)

    def fn(x, ids):
        g = tf.gather(x, ids, batch_dims=1)  # [b, k, 4]
        nd = tf.gather_nd(table, tf.expand_dims(ids, -1))  # [b, k, 4]
        oh = tf.one_hot(ids, 10)
        seg = tf.math.unsorted_segment_sum(
            tf.reshape(nd, [-1, 4]), tf.reshape(ids, [-1]), 10
        )
        sc = tf.tensor_scatter_nd_add(
            tf.zeros([10, 4]), tf.reshape(ids, [-1, 1]), tf.reshape(g, [-1, 4])
        )
        return g + nd, oh, seg, sc

    return (
        fn,
        [spec(None, 6, 4, name="x"), spec(None, 3, dtype=tf.int32, name="ids")],
        [
            [u(2, 6, 4), R.randint(0, 6, (2, 3)).astype(np.int32)],
            [u(1, 6, 4), R.randint(0, 6, (1, 3)).astype(np.int32)],
        ],
    )


@model
def image_ops():
    def fn(x):
        a = tf.image.resize(x, [12, 10], "bilinear")
        b = tf.image.resize(x, [3, 5], "nearest")
        c = tf.image.resize(x, [13, 9], "bicubic")
        d = tf.image.extract_patches(
            x, [1, 2, 2, 1], [1, 2, 2, 1], [1, 1, 1, 1], "VALID"
        )
        e = tf.nn.depth_to_space(tf.nn.space_to_depth(x, 2), 2)
        f = tf.nn.local_response_normalization(x, 2, 1.0, 1e-2, 0.75)
        return a, b, c, d, e, f

    return fn, [spec(None, 6, 6, 4, name="x")], [[u(2, 6, 6, 4)], [u(1, 6, 6, 4)]]


@model
def elementwise_zoo():
    def fn(x):
        outs = [
            tf.math.reduce_logsumexp(x, -1),
            tf.cumsum(x, 1, exclusive=True, reverse=True),
            tf.math.cumprod(x, 1),
            tf.clip_by_value(x, -0.3, 0.4),
            tf.nn.l2_normalize(x, -1),
            tf.math.reduce_euclidean_norm(x, -1),
            tf.nn.softplus(x),
            tf.nn.elu(x),
            tf.nn.selu(x),
            tf.nn.leaky_relu(x, 0.1),
            tf.math.erfc(x),
            tf.math.log1p(tf.abs(x)),
            tf.math.expm1(x),
            tf.math.squared_difference(x, 0.5),
            tf.math.floormod(x, 0.3),
            tf.math.floordiv(x, 0.3),
            tf.nn.log_softmax(x),
            tf.math.sign(x),
            tf.math.reciprocal(x + 3.0),
            tf.nn.silu(x),
            tf.math.atan2(x, x + 2.0),
            tf.math.round(x * 3),
            tf.math.reduce_prod(x, 1),
            tf.math.reduce_std(x, 1),
            tf.math.reduce_variance(x, -1),
        ]
        return outs

    return fn, [spec(None, 5, 6, name="x")], [[u(2, 5, 6)], [u(1, 5, 6)]]


@model
def sort_topk():
    def fn(x):
        v, i = tf.math.top_k(x, 3)
        return (
            v,
            i,
            tf.argsort(x, -1, direction="DESCENDING"),
            tf.sort(x, 1),
            tf.argmax(x, 1),
            tf.math.argmin(x, -1),
        )

    return fn, [spec(None, 7, name="x")], [[u(2, 7)], [u(4, 7)]]


@model
def slicing_zoo():
    def fn(x):
        return (
            x[..., ::-1],
            x[:, tf.newaxis, 1:-1],
            x[:, ::2, 1],
            tf.reverse(x, [1]),
            tf.roll(x, 2, 1),
            tf.tile(x, [1, 2, 1]),
            tf.pad(x, [[0, 0], [2, 1], [1, 1]], "REFLECT"),
            tf.pad(x, [[0, 0], [1, 2], [0, 0]], "SYMMETRIC"),
            tf.linalg.matrix_transpose(x),
            tf.split(x, [1, 2, 3], axis=2)[1],
            tf.unstack(x, axis=1)[2],
        )

    return fn, [spec(None, 5, 6, name="x")], [[u(2, 5, 6)], [u(3, 5, 6)]]


@model
def linalg_zoo():
    def fn(x):
        sq = tf.matmul(x, x, transpose_b=True) + 4.0 * tf.eye(5)
        return (
            tf.linalg.diag_part(sq),
            tf.linalg.trace(sq),
            tf.linalg.band_part(sq, 1, 0),
            tf.linalg.diag(x[:, 0]),
            tf.linalg.det(sq),
            tf.linalg.inv(sq),
            tf.linalg.cholesky(sq),
        )

    return fn, [spec(None, 5, 5, name="x")], [[u(2, 5, 5)], [u(1, 5, 5)]]


@model
def boolean_mask_where():
    def fn(x):
        pos = tf.boolean_mask(x, x > 0.0)
        idx = tf.where(x > 0.5)
        return tf.reduce_sum(pos), tf.shape(idx)[0], tf.where(x > 0, x, 0.1 * x)

    return fn, [spec(None, 6, name="x")], [[u(2, 6)], [u(3, 6)]]


@model
def conv1d_pool1d():
    w = var(3, 4, 6)

    def fn(x):
        h = tf.nn.conv1d(x, w, 1, "SAME")
        h = tf.nn.pool(h, [2], "MAX", strides=[2], padding="SAME")
        return tf.nn.max_pool1d(h, 2, 1, "VALID")

    return fn, [spec(None, None, 4, name="x")], [[u(2, 9, 4)], [u(1, 12, 4)]]


@model
def signal_ops():
    def fn(x):
        st = tf.signal.stft(x, 16, 8, 16)
        mag = tf.abs(st)
        mel = tf.signal.linear_to_mel_weight_matrix(8, 9, 8000, 20.0, 3000.0)
        return (
            tf.math.log(tf.tensordot(mag, mel, 1) + 1e-6),
            tf.signal.frame(x, 4, 2),
            tf.math.real(tf.signal.rfft(x)),
        )

    return fn, [spec(None, 64, name="x")], [[u(2, 64)], [u(1, 64)]]


@model
def while_dynamic_rnn():
    w, uu = var(3, 4), var(4, 4)

    def fn(x):
        n = tf.shape(x)[1]

        def body(i, h, acc):
            h = tf.tanh(x[:, i] @ w + h @ uu)
            return i + 1, h, acc.write(i, h)

        _, h, acc = tf.while_loop(
            lambda i, h, a: i < n,
            body,
            [0, tf.zeros([tf.shape(x)[0], 4]), tf.TensorArray(tf.float32, size=n)],
        )
        return h, tf.transpose(acc.stack(), [1, 0, 2])

    return fn, [spec(None, None, 3, name="x")], [[u(2, 5, 3)], [u(1, 8, 3)]]


@model
def nms_boxes():
    def fn(boxes, scores):
        sel = tf.image.non_max_suppression(boxes, scores, 5, 0.5)
        return tf.gather(boxes, sel)

    b = np.sort(u(12, 4, lo=0, hi=1).reshape(12, 2, 2), axis=1).reshape(12, 4)
    b2 = np.sort(u(9, 4, lo=0, hi=1).reshape(9, 2, 2), axis=1).reshape(9, 4)
    return (
        fn,
        [spec(None, 4, name="boxes"), spec(None, name="scores")],
        [[b, u(12)], [b2, u(9)]],
    )


@model
def atrous_static():
    w = var(3, 3, 4, 6)
    dw = var(3, 3, 6, 1)

    def fn(x):
        a = tf.nn.atrous_conv2d(x, w, 2, "SAME")
        b = tf.nn.depthwise_conv2d(a, dw, [1, 1, 1, 1], "SAME", dilations=[3, 3])
        return tf.nn.atrous_conv2d(x, w, 2, "VALID"), b

    return fn, [spec(None, 9, 9, 4, name="x")], [[u(2, 9, 9, 4)], [u(1, 9, 9, 4)]]


@model
def keras_dilated_any_size():
    import keras

    inp = keras.Input((None, None, 3), name="img")
    h = keras.layers.SeparableConv2D(8, 3, dilation_rate=2, padding="same")(inp)
    h = keras.layers.DepthwiseConv2D(3, dilation_rate=3, padding="same")(h)
    h = keras.layers.Conv2D(4, 3, dilation_rate=2, padding="same")(h)
    m = keras.Model(inp, h)
    return (
        (lambda x: m(x)),
        [spec(None, None, None, 3, name="img")],
        [[u(2, 9, 11, 3)], [u(1, 8, 8, 3)]],
    )


@model
def keras_dilated_1d_any_len():
    import keras

    inp = keras.Input((None, 3), name="seq")
    h = keras.layers.Conv1D(8, 3, dilation_rate=2, padding="same")(inp)
    h = keras.layers.SeparableConv1D(8, 3, dilation_rate=4, padding="same")(h)
    m = keras.Model(inp, h)
    return (
        (lambda x: m(x)),
        [spec(None, None, 3, name="seq")],
        [[u(2, 9, 3)], [u(1, 14, 3)]],
    )


@model
def keras_separable_1d():
    import keras

    inp = keras.Input((12, 3), name="seq")
    h = keras.layers.SeparableConv1D(8, 3, padding="same", activation="relu")(inp)
    h = keras.layers.SeparableConv1D(8, 3, strides=2, padding="valid")(h)
    h = keras.layers.DepthwiseConv1D(3, padding="same")(h)
    m = keras.Model(inp, h)
    return (
        (lambda x: m(x)),
        [spec(None, 12, 3, name="seq")],
        [[u(2, 12, 3)], [u(1, 12, 3)]],
    )


def sweep(name, out_dir):
    from sweep import convert_and_compare, size, verdict, write_model

    fn, specs, feeds = MODELS[name]()
    write_model(out_dir, name, fn, specs, feeds)
    result = convert_and_compare(out_dir, name, [s.name for s in specs])
    if isinstance(result, str):
        return result
    error, code = result
    return f"{verdict(error)}  ({size(code)})"


if __name__ == "__main__":
    from sweep import cli

    cli(__doc__, sweep, list(MODELS), "sweep_plain_tf", 26)
